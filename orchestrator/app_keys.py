"""Typed application keys for the per-process services created by :func:`orchestrator.app.create_app`."""

from __future__ import annotations

from collections.abc import Callable

from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncEngine

from orchestrator.events.broadcaster import Broadcaster
from orchestrator.events.feed import EventFeed
from orchestrator.events.listener import PgListener
from orchestrator.jobs.kinds import JobKind
from orchestrator.jobs.store import JobStore
from orchestrator.jobs.worker import Worker
from orchestrator.metrics import Metrics
from orchestrator.settings import Settings
from orchestrator.storage import Storage

SETTINGS = web.AppKey("settings", Settings)
ENGINE = web.AppKey("engine", AsyncEngine)
STORE = web.AppKey("store", JobStore)
LISTENER = web.AppKey("listener", PgListener)
FEED = web.AppKey("feed", EventFeed)
BROADCASTER = web.AppKey("broadcaster", Broadcaster)
WORKER = web.AppKey("worker", Worker)
METRICS = web.AppKey("metrics", Metrics)
STORAGE = web.AppKey("storage", Storage)
# A factory returns a job kind for this process, or None when the kind is not configured here.
KindFactory = Callable[[web.Application], JobKind | None]
KIND_FACTORIES = web.AppKey("kind_factories", list[KindFactory])
