"""Where the captioning model is: ``ATELIER_CAPTIONER`` resolved to a directory, and hub ids pulled into the store.

``ATELIER_CAPTIONER`` is a directory holding a model in the Hugging Face layout, a hub id (``org/name``)
or one of :data:`KNOWN_CAPTIONERS` (``blip-base``...), whose files live in
``<models_dir>/captioners/<org>--<name>``, put there by ``atelier models pull`` through
:func:`pull_captioner` (``huggingface_hub.snapshot_download``: resumable, verified, cached by revision).
Only configs, tokenizer files and safetensors weights are pulled: no pickled weights, no remote code.
The service itself never downloads at start-up: a hub id that is not in the store is reported as unavailable.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from orchestrator.settings import Settings
from trainer.dataset.captioner import CaptionerError, TransformersCaptioner, model_type_of

CAPTIONERS_DIR = "captioners"


@dataclass(frozen=True)
class KnownCaptioner:
    """A captioning model ``atelier models pull`` knows by name."""

    repo: str
    description: str


KNOWN_CAPTIONERS: dict[str, KnownCaptioner] = {
    "blip-base": KnownCaptioner("Salesforce/blip-image-captioning-base", "BLIP base captioner (~1 GB)"),
    "blip-large": KnownCaptioner("Salesforce/blip-image-captioning-large", "BLIP large captioner (~1.9 GB)"),
    "florence2-base": KnownCaptioner("florence-community/Florence-2-base", "Florence-2 base captioner (~0.5 GB)"),
    "florence2-large": KnownCaptioner("florence-community/Florence-2-large", "Florence-2 large captioner (~1.6 GB)"),
}
PULLED_FILES = ("*.json", "*.safetensors", "*.txt")
_HUB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,95}/[A-Za-z0-9][A-Za-z0-9._-]{0,95}$")


class CaptionerUnavailable(Exception):
    """The configured captioner cannot be used here; the message says why and what to do."""


def is_hub_id(spec: str) -> bool:
    """Whether ``spec`` has the form of a hub repository id (``org/name``)."""
    return bool(_HUB_ID.match(spec)) and ".." not in spec


def store_dir(models_dir: Path, hub_id: str) -> Path:
    """The models-store directory of a pulled hub model: ``<models_dir>/captioners/<org>--<name>``."""
    if not is_hub_id(hub_id):
        raise ValueError(f"{hub_id!r} is not a hub id (org/name)")
    return models_dir / CAPTIONERS_DIR / hub_id.replace("/", "--")


def resolve_captioner_dir(spec: str, models_dir: Path) -> Path:
    """The directory ``ATELIER_CAPTIONER`` names: itself when it is a directory, else the store's copy."""
    path = Path(spec).expanduser()
    if path.is_dir():
        return path
    hub_id = KNOWN_CAPTIONERS[spec].repo if spec in KNOWN_CAPTIONERS else spec
    if not is_hub_id(hub_id):
        known = ", ".join(KNOWN_CAPTIONERS)
        raise CaptionerUnavailable(
            f"ATELIER_CAPTIONER={spec!r} is neither a directory, a hub id (org/name) nor a known captioner ({known})"
        )
    local = store_dir(models_dir, hub_id)
    if not (local / "config.json").is_file():
        raise CaptionerUnavailable(
            f"the captioner {spec} is not in the models store ({local}); pull it first "
            f"(atelier models pull {spec}{'' if spec in KNOWN_CAPTIONERS else ' --captioner'}) "
            "or point ATELIER_CAPTIONER at a model directory"
        )
    return local


def captioner_from_settings(settings: Settings) -> TransformersCaptioner | None:
    """The configured captioner (not loaded yet), None when none is configured; raises CaptionerUnavailable."""
    if not settings.captioner:
        return None
    model_dir = resolve_captioner_dir(settings.captioner, settings.models_dir.absolute())
    try:
        return TransformersCaptioner(
            model_dir,
            name=settings.captioner,
            device=settings.captioner_device,
            batch_size=settings.captioner_batch_size,
            max_new_tokens=settings.captioner_max_new_tokens,
            threads=settings.captioner_threads,
        )
    except CaptionerError as exc:
        raise CaptionerUnavailable(str(exc)) from exc


def pull_captioner(hub_id: str, models_dir: Path, *, revision: str | None = None, endpoint: str | None = None) -> Path:
    """Download a captioning model from the hub into the models store and check it is one we can run.

    Blocking (network); returns the directory. ``endpoint`` overrides the hub's URL (a mirror).
    """
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HfHubHTTPError

    target = store_dir(models_dir, hub_id)
    try:
        snapshot_download(
            repo_id=hub_id, revision=revision, local_dir=target, allow_patterns=list(PULLED_FILES), endpoint=endpoint
        )
    except HfHubHTTPError as exc:
        raise CaptionerUnavailable(f"cannot pull {hub_id}: {exc}") from exc
    try:
        model_type_of(target)
    except CaptionerError as exc:
        raise CaptionerUnavailable(str(exc)) from exc
    return target
