"""The caption mode decided at submission: defaults, refusals naming the field, the unavailable captioner."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from orchestrator.db.models import Photo
from orchestrator.errors import ServiceUnavailable, ValidationFailed
from orchestrator.settings import Settings
from orchestrator.training.caption_choice import decide_captions
from orchestrator.training.training_schemas import CaptionOptions
from orchestrator.training.training_services import TrainingServices
from trainer.dataset import CaptionMode

PHOTOS = [Photo(id=uuid.UUID(int=1), caption="mine"), Photo(id=uuid.UUID(int=2), caption=None)]


def _services(tmp_path: Path, captioner: str | None) -> TrainingServices:
    return TrainingServices.create(Settings(models_dir=tmp_path, var_dir=tmp_path / "var", captioner=captioner))


def _model_dir(tmp_path: Path) -> Path:
    model = tmp_path / "blip"
    model.mkdir()
    (model / "config.json").write_text('{"model_type": "blip"}')
    return model


def test_default_is_trigger_without_a_captioner_and_auto_with_one(tmp_path: Path) -> None:
    assert decide_captions(None, _services(tmp_path, None), PHOTOS).mode is CaptionMode.TRIGGER
    services = _services(tmp_path, str(_model_dir(tmp_path)))
    assert services.captioner is not None
    assert not services.captioner.loaded  # configuring costs nothing until photos are described
    decided = decide_captions(CaptionOptions(template="{trigger} x, {caption}"), services, PHOTOS)
    assert (decided.mode, decided.template) == (CaptionMode.AUTO, "{trigger} x, {caption}")


def test_auto_without_a_captioner_names_captions(tmp_path: Path) -> None:
    with pytest.raises(ValidationFailed) as refused:
        decide_captions(CaptionOptions(mode=CaptionMode.AUTO), _services(tmp_path, None), PHOTOS)
    assert refused.value.errors[0]["field"] == "captions"
    assert "ATELIER_CAPTIONER" in refused.value.errors[0]["reason"]


def test_a_configured_captioner_that_is_not_there_is_a_503_for_auto(tmp_path: Path) -> None:
    services = _services(tmp_path, "Salesforce/blip-image-captioning-base")
    assert services.captioner is None
    assert "not in the models store" in str(services.captioner_problem)
    with pytest.raises(ServiceUnavailable, match="not in the models store"):
        decide_captions(None, services, PHOTOS)
    assert decide_captions(CaptionOptions(mode=CaptionMode.TRIGGER), services, PHOTOS).mode is CaptionMode.TRIGGER


def test_manual_names_each_photo_without_a_caption(tmp_path: Path) -> None:
    services = _services(tmp_path, None)
    with pytest.raises(ValidationFailed) as refused:
        decide_captions(CaptionOptions(mode=CaptionMode.MANUAL), services, PHOTOS)
    assert [e["field"] for e in refused.value.errors] == [f"captions.per_photo.{PHOTOS[1].id}"]
    filled = CaptionOptions(mode=CaptionMode.MANUAL, per_photo={PHOTOS[1].id: "yours"})
    assert decide_captions(filled, services, PHOTOS).mode is CaptionMode.MANUAL


def test_unknown_photos_and_bad_templates_are_named(tmp_path: Path) -> None:
    stranger = uuid.UUID(int=99)
    options = CaptionOptions(template="no trigger", per_photo={stranger: "x"})
    with pytest.raises(ValidationFailed) as refused:
        decide_captions(options, _services(tmp_path, None), PHOTOS)
    assert [e["field"] for e in refused.value.errors] == [f"captions.per_photo.{stranger}", "captions.template"]
