"""Operations on subjects, photos, trainings and LoRAs."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from atelier_client._calls import Call, Id, body, file_field, model, nothing, operation, path, query, saved
from atelier_client.models import (
    Accepted,
    LoraList,
    LoraOut,
    PhotoList,
    PhotoOut,
    PhotoUploadResult,
    PresignResult,
    SubjectList,
    SubjectOut,
    TrainingList,
    TrainingOut,
)


@operation("create_subject")
def create_subject(
    name: str,
    kind: str,
    trigger_word: str,
    *,
    consent_confirmed: bool | None = None,
    subject_is_adult: bool | None = None,
    consent_statement: str | None = None,
    class_word: str | None = None,
) -> Call[SubjectOut]:
    """A person, style, product or character to train on. A person needs both attestations true."""
    payload: dict[str, Any] = {"name": name, "kind": kind, "trigger_word": trigger_word}
    if class_word is not None:
        payload["class_word"] = class_word
    if consent_confirmed is not None or subject_is_adult is not None:
        consent = {"confirmed": bool(consent_confirmed), "subject_is_adult": bool(subject_is_adult)}
        payload["consent"] = consent | ({"statement": consent_statement} if consent_statement else {})
    return Call("create_subject", "POST", "/v1/subjects", model(SubjectOut), json=payload)


@operation("list_all_subjects")
def list_subjects(*, limit: int | None = None, cursor: str | None = None) -> Call[SubjectList]:
    """A page of the caller's subjects."""
    return Call(
        "list_all_subjects", "GET", "/v1/subjects", model(SubjectList), params=query(limit=limit, cursor=cursor)
    )


@operation("get_one_subject")
def get_subject(subject_id: Id) -> Call[SubjectOut]:
    """One subject."""
    return Call("get_one_subject", "GET", path("/v1/subjects/{id}", id=subject_id), model(SubjectOut))


@operation("erase_subject")
def delete_subject(subject_id: Id) -> Call[Accepted]:
    """Erase a subject with its photos, datasets and LoRA files (a job: follow it like any other)."""
    return Call("erase_subject", "DELETE", path("/v1/subjects/{id}", id=subject_id), model(Accepted))


@operation("upload_photos")
def upload_photos(subject_id: Id, files: Iterable[Path | str]) -> Call[PhotoUploadResult]:
    """Upload photos from paths (multipart); a verdict per file, accepted or why not."""
    parts = [file_field("photo", f) for f in files]
    url = path("/v1/subjects/{id}/photos", id=subject_id)
    return Call("upload_photos", "POST", url, model(PhotoUploadResult), files=parts)


@operation("presign_photos")
def presign_photos(subject_id: Id, files: list[Mapping[str, Any]]) -> Call[PresignResult]:
    """S3 storage: presigned PUT URLs for ``[{filename, content_type, size_bytes}]``; then complete_photos."""
    url = path("/v1/subjects/{id}/photos/presign", id=subject_id)
    return Call("presign_photos", "POST", url, model(PresignResult), json={"files": list(files)})


@operation("complete_photos")
def complete_photos(subject_id: Id, photo_ids: list[Id]) -> Call[PhotoUploadResult]:
    """Check presigned uploads that have finished, like multipart uploads."""
    url = path("/v1/subjects/{id}/photos/complete", id=subject_id)
    ids = [str(i) for i in photo_ids]
    return Call("complete_photos", "POST", url, model(PhotoUploadResult), json={"photo_ids": ids})


@operation("list_subject_photos")
def list_photos(subject_id: Id) -> Call[PhotoList]:
    """A subject's photos."""
    return Call("list_subject_photos", "GET", path("/v1/subjects/{id}/photos", id=subject_id), model(PhotoList))


@operation("get_one_photo")
def get_photo(subject_id: Id, photo_id: Id) -> Call[PhotoOut]:
    """One photo."""
    url = path("/v1/subjects/{id}/photos/{photo_id}", id=subject_id, photo_id=photo_id)
    return Call("get_one_photo", "GET", url, model(PhotoOut))


@operation("delete_one_photo")
def delete_photo(subject_id: Id, photo_id: Id) -> Call[None]:
    """Remove one photo."""
    url = path("/v1/subjects/{id}/photos/{photo_id}", id=subject_id, photo_id=photo_id)
    return Call("delete_one_photo", "DELETE", url, nothing)


@operation("create_training")
def create_training(
    request: Mapping[str, Any] | BaseModel | None = None,
    /,
    *,
    subject_id: Id | None = None,
    base_model: str | None = None,
    **fields: Any,
) -> Call[Accepted]:
    """Train a LoRA: ``subject_id``, ``base_model`` and any of preset, steps, resolution, ... (TrainingCreate)."""
    payload = body(request, {"subject_id": str(subject_id) if subject_id else None, "base_model": base_model, **fields})
    return Call("create_training", "POST", "/v1/trainings", model(Accepted), json=payload)


@operation("list_trainings")
def list_trainings(
    *, status: str | None = None, limit: int | None = None, cursor: str | None = None
) -> Call[TrainingList]:
    """A page of the caller's trainings."""
    params = query(status=status, limit=limit, cursor=cursor)
    return Call("list_trainings", "GET", "/v1/trainings", model(TrainingList), params=params)


@operation("get_training")
def get_training(training_id: Id) -> Call[TrainingOut]:
    """One training: progress, run, the LoRA it published."""
    return Call("get_training", "GET", path("/v1/trainings/{id}", id=training_id), model(TrainingOut))


@operation("cancel_training")
def cancel_training(training_id: Id) -> Call[TrainingOut]:
    """Stop a training (its whole process group)."""
    return Call("cancel_training", "POST", path("/v1/trainings/{id}/cancel", id=training_id), model(TrainingOut))


@operation("resume_training")
def resume_training(training_id: Id) -> Call[Accepted]:
    """Continue a stopped training from its last saved state (a new job)."""
    return Call("resume_training", "POST", path("/v1/trainings/{id}/resume", id=training_id), model(Accepted))


@operation("get_artifact")
def download_training_artifact(training_id: Id, folder: str, name: str, dest: Path | str) -> Call[Path]:
    """Save a training's file (a sample image, a checkpoint) to ``dest``."""
    url = path("/v1/trainings/{id}/artifacts/{folder}/{name}", id=training_id, folder=folder, name=name)
    return Call("get_artifact", "GET", url, saved(Path(dest)), download_to=Path(dest))


@operation("list_all_loras")
def list_loras(*, subject_id: Id | None = None, limit: int | None = None, cursor: str | None = None) -> Call[LoraList]:
    """A page of the caller's LoRAs with their versions."""
    params = query(subject_id=subject_id, limit=limit, cursor=cursor)
    return Call("list_all_loras", "GET", "/v1/loras", model(LoraList), params=params)


@operation("get_one_lora")
def get_lora(lora_id: Id) -> Call[LoraOut]:
    """One LoRA with its versions and their metadata."""
    return Call("get_one_lora", "GET", path("/v1/loras/{id}", id=lora_id), model(LoraOut))


@operation("delete_one_lora")
def delete_lora(lora_id: Id) -> Call[None]:
    """Delete a LoRA, its versions and files."""
    return Call("delete_one_lora", "DELETE", path("/v1/loras/{id}", id=lora_id), nothing)


@operation("download_version")
def download_lora(lora_id: Id, version: int, dest: Path | str) -> Call[Path]:
    """Save a LoRA version's ``.safetensors`` to ``dest``."""
    url = path("/v1/loras/{id}/versions/{n}/file", id=lora_id, n=version)
    return Call("download_version", "GET", url, saved(Path(dest)), download_to=Path(dest))
