"""The application factory: one ``create_app(settings)``; every service lives in a cleanup context."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

from aiohttp import web

from orchestrator.api import docs_ui
from orchestrator.api import events as events_api
from orchestrator.api import health as health_api
from orchestrator.api import jobs as jobs_api
from orchestrator.api import openapi as openapi_api
from orchestrator.api.auth import (
    KEY_RESOLVER,
    LOCAL_OWNER,
    LOCAL_OWNER_NAME,
    PUBLIC_PATHS,
    QUERY_TOKEN_PATHS,
    KeyResolver,
    auth_middleware,
    ensure_owner,
)
from orchestrator.api.cors import install_cors
from orchestrator.api.health import READINESS_CHECKS
from orchestrator.api.hygiene import hygiene_middleware
from orchestrator.api.problems import problem_middleware
from orchestrator.api.request_log import request_context_middleware, send_request_id
from orchestrator.api.routing import ROUTERS, Router
from orchestrator.app_keys import (
    BROADCASTER,
    ENGINE,
    FEED,
    KIND_FACTORIES,
    LISTENER,
    METRICS,
    SETTINGS,
    STORAGE,
    STORE,
    WORKER,
    KindFactory,
)
from orchestrator.db.engine import asyncpg_dsn, create_engine
from orchestrator.events.broadcaster import Broadcaster
from orchestrator.events.feed import EventFeed
from orchestrator.events.listener import PgListener
from orchestrator.events.model import JobEventRecord
from orchestrator.generation import feature as generation_feature
from orchestrator.jobs.dispatcher import SchedulingConfig
from orchestrator.jobs.kinds import JobKind, NoopKind
from orchestrator.jobs.store import CANCEL_CHANNEL, EVENTS_CHANNEL, JOBS_CHANNEL, JobStore
from orchestrator.jobs.webhook_targets import targets_for, webhook_session
from orchestrator.jobs.webhooks import WEBHOOKS_CHANNEL, WebhookConfig, WebhookDispatcher
from orchestrator.jobs.worker import Worker, WorkerConfig
from orchestrator.loras import feature as loras_feature
from orchestrator.metrics import Metrics
from orchestrator.policy import feature as policy_feature
from orchestrator.settings import Settings
from orchestrator.storage import open_storage
from orchestrator.training import feature as training_feature
from orchestrator.webhooks import feature as webhooks_feature

log = logging.getLogger(__name__)

CORE_ROUTERS: list[Router] = [
    health_api.router,
    openapi_api.router,
    docs_ui.router,
    jobs_api.router,
    events_api.router,
]
Feature = Callable[[web.Application], None]
FEATURES: list[Feature] = [
    policy_feature.install,
    training_feature.install,
    loras_feature.install,
    generation_feature.install,
    webhooks_feature.install,
]


CLIENT_CLOSED = 499  # nginx's code for "the client closed the connection before the answer"


@web.middleware
async def metrics_middleware(request: web.Request, handler: Any) -> web.StreamResponse:
    """Count requests by route template and status; time the non-streaming ones.

    A client that goes away (an SSE subscriber disconnecting, a cancelled request) is counted as 499,
    not as a server error.
    """
    started = time.perf_counter()
    status = 500
    try:
        response: web.StreamResponse = await handler(request)
        status = response.status
        return response
    except (asyncio.CancelledError, ConnectionResetError):
        status = CLIENT_CLOSED
        raise
    finally:
        resource = request.match_info.route.resource
        route = resource.canonical if resource is not None else "unmatched"
        metrics = request.app[METRICS]
        metrics.http_requests.labels(request.method, route, str(status)).inc()
        if not route.endswith("/events"):
            metrics.http_seconds.labels(route).observe(time.perf_counter() - started)


async def _database(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    app[ENGINE] = create_engine(settings.database_url, pool_size=settings.db_pool_size)
    app[STORE] = JobStore(app[ENGINE])
    yield
    await app[STORE].close()
    await app[ENGINE].dispose()


async def _owners(app: web.Application) -> AsyncIterator[None]:
    if app[SETTINGS].auth == "disabled":
        app[LOCAL_OWNER] = await ensure_owner(app[ENGINE], LOCAL_OWNER_NAME)
        log.warning("authentication is disabled: every request acts as owner %r", LOCAL_OWNER_NAME)
    else:
        app[KEY_RESOLVER] = KeyResolver(app[ENGINE])
    yield


async def _events(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    channels = [EVENTS_CHANNEL, JOBS_CHANNEL, CANCEL_CHANNEL, WEBHOOKS_CHANNEL]
    listener = PgListener(asyncpg_dsn(settings.database_url), channels)
    await listener.start()
    feed = EventFeed(listener)
    metrics = app[METRICS]
    broadcaster = Broadcaster(byte_limit=settings.sse_buffer_limit_bytes, observe_round=metrics.fanout_seconds.observe)

    def publish(events: list[JobEventRecord]) -> None:
        metrics.release_lag.observe(time.time() - events[-1].created_at.timestamp())
        broadcaster.publish(events)

    feed.on_release(publish)
    await feed.start()
    app[STORE].on_committed(feed)
    app[LISTENER], app[FEED], app[BROADCASTER] = listener, feed, broadcaster
    app[METRICS].gauge("atelier_sse_subscribers", "Open SSE subscriptions", lambda: broadcaster.subscriber_count)
    app[METRICS].gauge("atelier_event_feed_cursor", "Highest settled event id", lambda: feed.cursor)
    app[METRICS].gauge("atelier_event_feed_reads", "Reads of job_events by the event feed", lambda: feed.reads)
    yield
    app[STORE].on_committed(None)
    await feed.stop()
    await listener.stop()


def _noop_kind(_app: web.Application) -> JobKind:
    return NoopKind()


async def _storage(app: web.Application) -> AsyncIterator[None]:
    async with open_storage(app[SETTINGS]) as store:
        app[STORAGE] = store
        yield


async def _end_streams(app: web.Application) -> None:
    """At shutdown, end every SSE stream so the server can close; clients resume by event id."""
    if BROADCASTER in app:
        app[BROADCASTER].close_all()


def _worker_config(settings: Settings, kinds: dict[str, JobKind]) -> WorkerConfig:
    runnable = tuple(k for k in settings.worker_kinds if k in kinds)
    skipped = sorted(set(settings.worker_kinds) - set(runnable))
    if skipped:
        log.info("this process claims no %s jobs (not configured here)", ", ".join(skipped))
    return WorkerConfig(
        kinds=runnable,
        concurrency=settings.worker_concurrency,
        heartbeat_interval_s=settings.heartbeat_interval_s,
        heartbeat_timeout_s=settings.heartbeat_timeout_s,
        shutdown_timeout_s=settings.shutdown_timeout_s,
        idle_poll_s=settings.idle_poll_s,
        scheduling=SchedulingConfig(
            fair=settings.scheduling == "fair",
            affinity_max_wait_s=settings.affinity_max_wait_s,
            owner_max_running=settings.owner_max_running,
        ),
    )


async def _worker(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    if not settings.worker_enabled:
        yield
        return
    kinds: dict[str, JobKind] = {}
    for factory in app[KIND_FACTORIES]:
        kind = factory(app)
        if kind is not None:
            kinds[kind.name] = kind
    durations = app[METRICS].job_duration
    worker = Worker(
        app[STORE],
        kinds,
        _worker_config(settings, kinds),
        lambda kind, outcome, seconds: durations.labels(kind, outcome).observe(seconds),
    )
    listener = app[LISTENER]
    listener.on(JOBS_CHANNEL, worker.job_available)
    listener.on(CANCEL_CHANNEL, worker.cancel_requested)
    listener.on_reconnect(worker.job_available)
    app[WORKER] = worker
    async with webhook_session(targets_for(tuple(settings.webhook_allow_hosts))) as session:
        outcomes = app[METRICS].webhook_deliveries
        webhooks = WebhookDispatcher(
            app[ENGINE], session, _webhook_config(settings), lambda outcome: outcomes.labels(outcome).inc()
        )
        listener.on(WEBHOOKS_CHANNEL, webhooks.wake)
        await worker.start()
        app[STORE].attach_handoff(worker.dispatcher)
        await webhooks.start()
        yield
        app[STORE].attach_handoff(None)
        await worker.stop()
        await webhooks.stop()


def _webhook_config(settings: Settings) -> WebhookConfig:
    return WebhookConfig(
        max_attempts=settings.webhook_max_attempts,
        base_delay_s=settings.webhook_retry_base_s,
        secret=settings.webhook_secret,
        allow_hosts=tuple(settings.webhook_allow_hosts),
    )


def create_app(settings: Settings, *, serve_http: bool = True) -> web.Application:
    """Build the service. ``serve_http`` False gives a worker-only process (no routes).

    Core services come first (database, owners, events, storage); then each feature in
    ``FEATURES`` adds its routers, services (cleanup contexts) and job kinds; the worker starts
    last, so every kind finds its services, and stops first.
    """
    app = web.Application(
        client_max_size=settings.max_upload_bytes,
        middlewares=[
            request_context_middleware,
            metrics_middleware,
            problem_middleware,
            auth_middleware,
            hygiene_middleware,
        ],
    )
    app[SETTINGS] = settings
    app[METRICS] = Metrics()
    app[ROUTERS] = list(CORE_ROUTERS)
    kind_factories: list[KindFactory] = [_noop_kind]
    app[KIND_FACTORIES] = kind_factories
    app[READINESS_CHECKS] = []
    app.cleanup_ctx.extend([_database, _owners, _events, _storage])
    for feature in FEATURES:
        feature(app)
    app.cleanup_ctx.append(_worker)
    routers = app[ROUTERS]
    operations = [op for router in routers for op in router.operations]
    app[PUBLIC_PATHS] = frozenset(op.path for op in operations if not op.auth)
    app[QUERY_TOKEN_PATHS] = frozenset(op.path for op in operations if op.event_stream)
    app[openapi_api.OPENAPI_DOC] = openapi_api.build_openapi(routers)
    if serve_http:
        for router in routers:
            router.install(app)
        install_cors(app, settings.cors_origins)
    app.on_shutdown.append(_end_streams)
    app.on_response_prepare.append(send_request_id)
    return app
