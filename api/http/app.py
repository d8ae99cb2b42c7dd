"""The FastAPI application: thin routes over the engine and the store."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from fastapi import FastAPI
from sqlalchemy import make_url
from sqlalchemy.exc import SQLAlchemyError

from api.escalation import EscalationWorker, Escalator, WebhookSender
from api.events import OutboxRelay, Publisher, publisher_for
from api.global_notify import GlobalPolicyListener
from api.http.docs_pages import install_docs
from api.http.errors import install_error_handlers
from api.http.heap import Heap, SettleAfterResponse
from api.http.json_body import document_bodies
from api.http.metrics import Metrics
from api.http.middleware import BodyLimit, RequestMetrics, UnexpectedErrors
from api.http.routes import (
    analytics,
    capacity,
    constraints,
    global_policy,
    health,
    monitor,
    policies,
    portfolios,
    reference_data,
    replay,
    reviews,
    stress,
    validate,
    violations,
)
from api.http.services import Services
from api.http.ui import install_ui
from api.settings import Settings
from api.store import DatabaseTimeouts, Invalid, Store, read_monitor_status
from api.store.db import listen_connector
from engine import PolicyEngine
from models import GlobalPolicy, defaults_from_environment

__all__ = ["create_app"]

log = logging.getLogger("pes.app")


def _services_of(app: FastAPI) -> Services | None:
    services: Services | None = getattr(app.state, "services", None)
    return services


def _heap_of(app: FastAPI) -> Heap | None:
    services = _services_of(app)
    return None if services is None else services.heap


def _metrics_of(app: FastAPI) -> Metrics | None:
    services = _services_of(app)
    return None if services is None else services.metrics


def _timeouts(settings: Settings) -> DatabaseTimeouts:
    return DatabaseTimeouts(
        connect_s=settings.db_connect_timeout_s,
        statement_s=settings.db_statement_timeout_s,
        pool_s=settings.db_pool_timeout_s,
    )


def _open_store(
    settings: Settings, global_defaults: Callable[[], GlobalPolicy] = defaults_from_environment
) -> Store:
    """Open (and migrate) the store; say which, whether it was just created, what it holds.

    A store without a global policy gets version 1 from `global_defaults` here, so that
    every worker starts from a stored version (several starting at once store one).
    """
    try:
        store = Store.open(
            settings.database_url, timeouts=_timeouts(settings), global_defaults=global_defaults
        )
        current = store.global_policy.current()
    except Invalid as exc:  # a QT_* variable the initial global policy cannot take
        log.error("cannot store the initial global policy: %s", exc)
        raise
    except SQLAlchemyError as exc:
        shown = make_url(settings.database_url).render_as_string(hide_password=True)
        log.error("cannot open the store at %s: %s", shown, str(exc).splitlines()[0])
        raise
    url = store.engine.url.render_as_string(hide_password=True)
    try:
        held = f"{len(store.policies.list())} policies"
    except SQLAlchemyError as exc:  # opened and migrated; a count is not worth failing for
        held = f"policies not counted ({exc.__class__.__name__})"
    state = "created (empty schema, migrated)" if store.created else "existing"
    log.info("store %s: %s, %s", url, state, held)
    log.info(
        "global policy version %d (%s, %s by %s)",
        current.version,
        current.policy.risk_mode.value,
        current.change,
        current.updated_by,
    )
    return store


def create_app(
    settings: Settings | None = None,
    *,
    publisher: Publisher | None = None,
    relay: bool = True,
    global_defaults: Callable[[], GlobalPolicy] = defaults_from_environment,
) -> FastAPI:
    """Build the app. The store opens (and migrates) at start-up; the relay runs with it.

    `publisher` overrides the one the settings name (tests); `relay=False` leaves events in
    the outbox. `global_defaults` is the global policy of a store without one (default:
    the `QT_*` environment variables).
    """
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        store = _open_store(settings, global_defaults)
        engine = PolicyEngine(cache_size=settings.engine_cache_size)
        metrics = Metrics(engine, lambda: store.outbox.counts()[0], store.trends.open_by_severity)
        services = Services(settings, store, engine, metrics)
        sink = publisher if publisher is not None else publisher_for(settings)
        if sink is not None and relay:
            # The relay connects in the background: a broker that is down delays events
            # (they wait in the outbox), never the service.
            services.relay = OutboxRelay(
                store.outbox, sink, batch=settings.relay_batch, interval_s=settings.relay_interval_s
            )
            services.relay.start()
        if settings.global_policy_listen and store.engine.dialect.name == "postgresql":
            # Connects in the background too: until it listens, polling applies changes.
            assert services.global_policy is not None
            services.global_listener = GlobalPolicyListener(
                services.global_policy, listen_connector(store.engine, _timeouts(settings))
            )
            services.global_listener.start()
        assert services.global_policy is not None
        metrics.watch_global_policy(services.global_policy, services.listening)
        metrics.watch_monitors(lambda: read_monitor_status(store.engine))
        escalation = None
        if settings.escalation_interval_s > 0:
            escalation = EscalationWorker(
                Escalator(store),
                WebhookSender(store.escalations, settings),
                interval_s=settings.escalation_interval_s,
            )
            escalation.start()
        app.state.services = services
        services.heap.settle()  # imports and start-up objects: out of every full collection
        log.info(
            "ready: database %s, events %s",
            store.engine.url.render_as_string(hide_password=True),
            sink.name if sink else "none",
        )
        try:
            yield
        finally:
            if services.global_listener is not None:
                await asyncio.to_thread(services.global_listener.stop)
            if escalation is not None:
                await escalation.stop()
            if services.relay is not None:
                await services.relay.stop()
            if sink is not None and relay:
                await sink.close()
            store.engine.dispose()

    app = FastAPI(
        title="Policy Enforcement Service",
        version="0.1.0",
        summary="Pre-trade compliance: check trading decisions against portfolio policies "
        "and return the closest compliant decision.",
        lifespan=lifespan,
        docs_url=None,  # served by install_docs from packaged assets, not from a CDN
        redoc_url=None,
    )

    install_error_handlers(app)
    document_bodies(app)
    # Added last is outermost: the heap settles after the response, the body limit refuses
    # before anything else reads the body, the metrics see every routed request (500s
    # included), and an unexpected error is answered innermost, before Starlette's own
    # outermost handler would re-raise it and make the server drop the connection.
    app.add_middleware(UnexpectedErrors)
    app.add_middleware(RequestMetrics, metrics=lambda: _metrics_of(app))
    app.add_middleware(
        BodyLimit,
        max_bytes=settings.max_body_bytes,
        reference_bytes=settings.max_reference_body_bytes,
    )
    app.add_middleware(SettleAfterResponse, heap=lambda: _heap_of(app))
    routers = (
        validate,
        capacity,
        stress,
        constraints,
        policies,
        portfolios,
        reference_data,
        reviews,
        replay,
        analytics,
        violations,
        monitor,
    )
    for module in (*routers, health):
        app.include_router(module.router)
    for router in global_policy.routers():  # at /api/policy and /api/v1/policy
        app.include_router(router)
    install_docs(app)
    install_ui(app)
    return app
