"""HTTP routes, one module per resource.

Each module owns one `APIRouter`: validate, capacity, constraints, policies, portfolios,
reference data, reviews (violations and stored validations), replay (the decision log
run again under a candidate policy set), monitor (the status of `pes monitor`), the global
policy (one router per prefix: `/api/policy` and `/api/v1/policy`) and health. A route
authenticates first (its caller dependency), reads its body through `api.http.json_body`,
and leaves errors to `api.http.errors`. May import `api.http`'s dependencies and schemas,
the shared store, `engine` and `models`.
"""
