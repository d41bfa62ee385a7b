"""The caption mode of a training, decided at submission so that a request that cannot be captioned is refused.

``auto`` needs the service's captioner (422 naming ``captions`` where none is configured, 503 where one is
configured but cannot be used here); ``manual`` needs a user caption for every photo (422 naming each photo
without one); ``trigger`` always works. Without a mode, ``auto`` when a captioner is configured, else
``trigger``. The decided mode is written into the job's payload, so a retry captions the same way.
"""

from __future__ import annotations

from collections.abc import Sequence

from orchestrator.db.models import Photo
from orchestrator.errors import ServiceUnavailable, ValidationFailed
from orchestrator.training.training_schemas import CaptionOptions
from orchestrator.training.training_services import TrainingServices
from trainer.dataset import CaptionError, CaptionMode, CaptionTemplate


def decide_captions(
    requested: CaptionOptions | None, services: TrainingServices, photos: Sequence[Photo]
) -> CaptionOptions:
    """The request's caption options with the mode decided; raises a problem naming the field otherwise."""
    options = requested or CaptionOptions()
    photo_ids = {p.id for p in photos}
    errors = [
        {"field": f"captions.per_photo.{pid}", "reason": "not an accepted photo of this subject"}
        for pid in options.per_photo
        if pid not in photo_ids
    ]
    if options.template is not None:
        try:
            CaptionTemplate(options.template)
        except CaptionError as exc:
            errors.append({"field": "captions.template", "reason": str(exc)})
    mode = options.mode or (CaptionMode.AUTO if services.captioner_configured else CaptionMode.TRIGGER)
    if mode is CaptionMode.AUTO:
        errors.extend(_auto_problems(services))
    if mode is CaptionMode.MANUAL:
        captioned = {p.id for p in photos if p.caption and p.caption.strip()}
        captioned |= {pid for pid, text in options.per_photo.items() if text.strip()}
        errors.extend(
            {"field": f"captions.per_photo.{p.id}", "reason": "captions 'manual': this photo has no caption"}
            for p in photos
            if p.id not in captioned
        )
    if errors:
        raise ValidationFailed(errors)
    return options.model_copy(update={"mode": mode})


def _auto_problems(services: TrainingServices) -> list[dict[str, str]]:
    if not services.captioner_configured:  # only an explicit "auto" gets here: the default is then "trigger"
        return [{"field": "captions", "reason": "this service has no captioner (ATELIER_CAPTIONER); use 'trigger'"}]
    if services.captioner is None:
        raise ServiceUnavailable(f"auto-captioning is configured but unavailable: {services.captioner_problem}")
    return []
