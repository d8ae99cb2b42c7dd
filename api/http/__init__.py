"""The HTTP service: the FastAPI app, its routes, dependencies, middleware and schemas.

Owns the app factory (`app.create_app`), the routes (`routes`, one module per resource), the
request services behind them (`services`), security, body parsing, heap and metrics, and the
one place errors become HTTP codes (`errors`). Exposes nothing here: import from the modules.
May import `models`, `engine` and the shared edges (`api.settings`, `api.store`,
`api.events`, `api.files`, `api.field_messages`, `api.references`, `api.logsafe`); never `api.cli`.
"""
