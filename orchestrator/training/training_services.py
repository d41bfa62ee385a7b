"""The training feature's per-process services, built once from Settings and kept under one AppKey."""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web

from orchestrator.settings import Settings
from orchestrator.training.captioners import CaptionerUnavailable, captioner_from_settings
from orchestrator.training.hashing import FileHashCache
from trainer.config import LAUNCHER_PATH, SdScriptsInstall
from trainer.dataset import DatasetLimits, FaceDetector
from trainer.dataset.captioner import TransformersCaptioner
from trainer.supervisor import SupervisorOptions

log = logging.getLogger(__name__)


def tokenizer_cache_dir(settings: Settings) -> Path:
    """Where sd-scripts' offline CLIP tokenizers are (built there at start-up when missing)."""
    return settings.sd_scripts_tokenizer_cache_dir or settings.var_dir / "tokenizer_cache"


def sd_scripts_install(settings: Settings) -> SdScriptsInstall | None:
    """Where sd-scripts is, or None when this process is not configured to train."""
    if settings.sd_scripts_dir is None or settings.sd_scripts_python is None:
        return None
    return SdScriptsInstall(
        python=settings.sd_scripts_python.absolute(),
        scripts_dir=settings.sd_scripts_dir.absolute(),
        tokenizer_cache_dir=tokenizer_cache_dir(settings).absolute(),
        launcher=(settings.sd_scripts_launcher or LAUNCHER_PATH).absolute(),
    )


def photo_limits(settings: Settings) -> DatasetLimits:
    """The photo checks' limits from the ``ATELIER_PHOTO_*`` settings (the rest keep their defaults)."""
    return DatasetLimits(
        min_side=settings.photo_min_side,
        max_bytes=settings.photo_max_bytes,
        max_pixels=settings.photo_max_pixels,
        max_photos=settings.photo_max_count,
    )


@dataclass
class TrainingServices:
    """Shared by the API handlers and the job kinds of one process."""

    settings: Settings
    limits: DatasetLimits
    detector: FaceDetector
    hashes: FileHashCache
    install: SdScriptsInstall | None
    var_dir: Path
    models_dir: Path
    captioner: TransformersCaptioner | None = None
    captioner_problem: str | None = None  # why the configured captioner cannot be used

    @classmethod
    def create(cls, settings: Settings) -> TrainingServices:
        """Build the services (loads nothing heavy: the face detector loads its model per thread on use, the
        captioner its model on the first photos it describes).
        """
        var_dir = settings.var_dir.absolute()
        captioner, problem = None, None
        try:
            captioner = captioner_from_settings(settings)
        except CaptionerUnavailable as exc:
            problem = str(exc)
            log.error("auto-captioning is unavailable: %s", problem)
        return cls(
            settings=settings,
            limits=photo_limits(settings),
            detector=FaceDetector(),
            hashes=FileHashCache(var_dir / "training" / "file-hashes.json"),
            install=sd_scripts_install(settings),
            var_dir=var_dir,
            models_dir=settings.models_dir.absolute(),
            captioner=captioner,
            captioner_problem=problem,
        )

    @property
    def captioner_configured(self) -> bool:
        """Whether ``ATELIER_CAPTIONER`` is set (the default caption mode is then ``auto``)."""
        return bool(self.settings.captioner)

    @property
    def loras_dir(self) -> Path:
        """``<models_dir>/loras``, the folder ComfyUI lists LoRAs from."""
        return self.models_dir / "loras"

    def run_dir(self, job_id: uuid.UUID) -> Path:
        """The working directory of one training job (dataset, run files, sd-scripts output)."""
        return self.var_dir / "training" / "runs" / str(job_id)

    def model_file(self, configured: Path | None) -> Path | None:
        """A configured model path: absolute as given, else relative to the models store."""
        if configured is None:
            return None
        return configured if configured.is_absolute() else self.models_dir / configured

    def supervisor_options(self) -> SupervisorOptions:
        """Limits and grace periods of a training process."""
        return SupervisorOptions(
            wall_clock_limit_s=self.settings.training_wall_clock_limit_s,
            sigint_grace_s=self.settings.training_sigint_grace_s,
            sigterm_grace_s=self.settings.training_sigterm_grace_s,
        )


TRAINING = web.AppKey("training_services", TrainingServices)
