"""The training feature plugged into the app: routers, services (cleanup context) and job kinds.

``training`` is only offered where sd-scripts is configured (``ATELIER_SD_SCRIPTS_DIR`` and its Python);
``erasure`` everywhere. A process that supervises trainings becomes a child subreaper, so that members of
a run's process group left behind by their leader are reaped here, and at start-up it ends training
processes that outlived an earlier run of the service (:mod:`orchestrator.training.orphans`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from aiohttp import web

from orchestrator.api.routing import ROUTERS
from orchestrator.app_keys import ENGINE, KIND_FACTORIES, SETTINGS, STORAGE, STORE
from orchestrator.jobs.kinds import JobKind
from orchestrator.training import photos_api, presign_api, subjects_api, trainings_api
from orchestrator.training.erasure import ErasureKind
from orchestrator.training.kind import KIND as TRAINING_KIND
from orchestrator.training.kind import TrainingKind
from orchestrator.training.orphans import sweep_orphans
from orchestrator.training.training_services import TRAINING, TrainingServices
from trainer.config import SdScriptsInstall
from trainer.supervisor_process import become_subreaper
from trainer.tokenizer_cache import BpeNotFoundError, ensure_tokenizer_cache

log = logging.getLogger(__name__)


def install(app: web.Application) -> None:
    """Add the subjects, photos and trainings endpoints, the services and the job kinds."""
    app[ROUTERS].extend([subjects_api.router, presign_api.router, photos_api.router, trainings_api.router])
    app[KIND_FACTORIES].extend([training_kind, erasure_kind])
    app.cleanup_ctx.append(training_services)


def supervises_trainings(app: web.Application) -> bool:
    """Whether this process's worker runs training jobs."""
    settings = app[SETTINGS]
    return settings.worker_enabled and TRAINING_KIND in settings.worker_kinds and app[TRAINING].install is not None


async def training_services(app: web.Application) -> AsyncIterator[None]:
    """The shared services (one face detector for every upload); orphan clean-up where trainings run."""
    app[TRAINING] = TrainingServices.create(app[SETTINGS])
    sweep: asyncio.Task[int] | None = None
    if supervises_trainings(app):
        become_subreaper()
        await _ensure_tokenizers(app[TRAINING].install)
        sweep = asyncio.create_task(sweep_orphans(app[ENGINE], app[TRAINING].supervisor_options()))
    yield
    if sweep is not None:
        sweep.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await sweep


async def _ensure_tokenizers(install: SdScriptsInstall | None) -> None:
    """sd-scripts runs offline: build its CLIP tokenizer cache from its own CLIP package if missing."""
    if install is None or install.tokenizer_cache_dir is None:
        return
    try:
        await asyncio.to_thread(ensure_tokenizer_cache, install.tokenizer_cache_dir, install.python)
    except (BpeNotFoundError, OSError) as exc:
        log.error(
            "no CLIP tokenizer for sd-scripts in %s and none could be built (%s): trainings will fail until "
            "open_clip_torch or clip-anytorch is installed in sd-scripts' Python, or "
            "`python -m trainer.tokenizer_cache` fills the folder",
            install.tokenizer_cache_dir,
            exc,
        )


def training_kind(app: web.Application) -> JobKind | None:
    """The training kind, or None where sd-scripts is not configured."""
    services = app[TRAINING]
    if services.install is None:
        return None
    return TrainingKind(app[ENGINE], app[STORAGE], services)


def erasure_kind(app: web.Application) -> JobKind:
    """The erasure kind (every process can erase: it needs storage and the database only)."""
    return ErasureKind(app[ENGINE], app[STORAGE], app[STORE], app[TRAINING])
