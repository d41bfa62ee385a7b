"""From a training payload to sd-scripts' plan: paths resolved, presets applied, every problem named.

Used twice: when a training is submitted (so that a request sd-scripts would reject is refused before it
is queued) and when the job runs (the same inputs give the same plan).
"""

from __future__ import annotations

from pathlib import Path

from pydantic import ValidationError

from orchestrator.errors import ServiceUnavailable, ValidationFailed, validation_errors
from orchestrator.loras.registry import insert_trigger_word
from orchestrator.training.base_models import UnknownBaseModel, checkpoint_path
from orchestrator.training.training_schemas import TrainingPayload
from orchestrator.training.training_services import TrainingServices
from trainer.config import ConfigError, SamplePrompt, TrainingPlan, TrainingRequest, preflight, resolve_request
from trainer.presets import PRESETS, ModelFamily

_FLUX_PARTS = {"clip_l": "training_flux_clip_l", "t5xxl": "training_flux_t5xxl", "ae": "training_flux_ae"}
_FIELD_NAMES = {"family": "base_family"}


def _sample_prompts(payload: TrainingPayload, trigger: str) -> list[SamplePrompt]:
    resolution = payload.resolution or PRESETS[payload.base_family][payload.preset].resolution
    return [
        SamplePrompt(
            prompt=insert_trigger_word(p.prompt, trigger),
            negative_prompt=p.negative_prompt,
            width=p.width or resolution,
            height=p.height or resolution,
            steps=p.steps,
            scale=p.scale,
            seed=p.seed,
        )
        for p in payload.sample_prompts
    ]


def _request(
    payload: TrainingPayload, services: TrainingServices, trigger: str, resume: Path | None
) -> TrainingRequest:
    settings = services.settings
    flux = payload.base_family is ModelFamily.FLUX
    parts = {
        name: services.model_file(getattr(settings, setting)) if flux else None for name, setting in _FLUX_PARTS.items()
    }
    return TrainingRequest(
        family=payload.base_family,
        preset=payload.preset,
        cpu=settings.training_cpu,
        base_model=checkpoint_path(services.models_dir, payload.base_model),
        steps=payload.steps,
        network_dim=payload.network_dim,
        network_alpha=payload.network_alpha,
        learning_rate=payload.learning_rate,
        optimizer=payload.optimizer,
        resolution=payload.resolution,
        batch_size=payload.batch_size,
        save_every_n_steps=payload.save_every_n_steps,
        sample_prompts=_sample_prompts(payload, trigger),
        sample_every_n_steps=payload.sample_every_n_steps,
        seed=payload.seed,
        resume=resume,
        **parts,
    )


def _unavailable(field: str, reason: str) -> ServiceUnavailable:
    if field in _FLUX_PARTS:
        setting = "ATELIER_" + _FLUX_PARTS[field].upper()
        return ServiceUnavailable(f"flux training is not configured here: set {setting} ({reason})")
    return ServiceUnavailable(f"training is not set up correctly on this service: {field}: {reason}")


def plan_training(
    payload: TrainingPayload, services: TrainingServices, trigger: str, *, resume: Path | None = None
) -> TrainingPlan:
    """The plan for a payload. Raises ValidationFailed naming the request's fields, or ServiceUnavailable
    when this service is not set up to run it (sd-scripts, flux parts).
    """
    if services.install is None:
        raise ServiceUnavailable("training is not configured: set ATELIER_SD_SCRIPTS_DIR and ATELIER_SD_SCRIPTS_PYTHON")
    try:
        plan = resolve_request(_request(payload, services, trigger, resume))
    except UnknownBaseModel as exc:
        raise ValidationFailed([{"field": "base_model", "reason": str(exc)}]) from exc
    except ValidationError as exc:
        errors = validation_errors(exc)
        for error in errors:
            if error["field"] in _FLUX_PARTS:
                raise _unavailable(error["field"], error["reason"]) from exc
            error["field"] = _FIELD_NAMES.get(error["field"], error["field"])
        raise ValidationFailed(errors) from exc
    except ConfigError as exc:
        raise ValidationFailed([{"field": exc.field, "reason": exc.message}]) from exc
    problems = preflight(plan, services.install)
    for problem in problems:
        if problem.field not in ("base_model", "resume"):
            raise _unavailable(problem.field, problem.message)
    if problems:
        raise ValidationFailed([{"field": p.field, "reason": p.message} for p in problems])
    return plan
