# SPDX-License-Identifier: Apache-2.0
"""``atelier models pull``: a known base model, a hub file (``REPO:FILE``), a URL or a local file into the store.

Hub files come through ``huggingface_hub`` (its progress bars, its resume of an interrupted download, the
token from ``HF_TOKEN`` for gated repositories, ``HF_ENDPOINT`` for a mirror). The hub announces the sha256
of every large file; the downloaded file's own sha256 must match it, else the file is deleted and the pull
fails. Downloads land in ``<models_dir>/.downloads`` and move into place only when complete and checked, so
ComfyUI never lists half a file. ``demo`` and ``demo-full`` are made here with random weights (no download).
"""

from __future__ import annotations

import re
import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from orchestrator.devtools.models import write_sd15_checkpoint
from orchestrator.modelfiles import family_of, tensor_names
from orchestrator.modelstore.known import KNOWN, HubFile, KnownModel
from orchestrator.modelstore.store import ModelStore, StoredFile, sha256_of
from orchestrator.training.captioners import KNOWN_CAPTIONERS, pull_captioner

FOLDERS = ("checkpoints", "loras", "vae", "text_encoders", "diffusion_models", "embeddings", "upscale_models")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_UNREACHABLE = ("ConnectError", "ConnectTimeout", "Timeout", "OfflineModeIsEnabled", "gaierror", "NetworkError")

Say = Callable[[str], None]
#: Exit code of `atelier models pull` when the source could not be reached at all (first runs fall back then).
UNREACHABLE_EXIT = 3


class PullError(RuntimeError):
    """A pull failed; ``unreachable`` when the source could not be reached at all."""

    def __init__(self, message: str, *, unreachable: bool = False) -> None:
        super().__init__(message)
        self.unreachable = unreachable


@dataclass(frozen=True)
class PullResult:
    """What a pull put in the store."""

    name: str
    files: list[StoredFile]
    entry: dict[str, Any] | None


def _is_unreachable(exc: BaseException) -> bool:
    seen: BaseException | None = exc
    while seen is not None:
        if any(marker in type(seen).__name__ for marker in _UNREACHABLE):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def _hub_failure(what: str, exc: Exception) -> PullError:
    name = type(exc).__name__
    text = f"{what}: {name}: {str(exc).splitlines()[0] if str(exc) else ''}"
    if "Gated" in name or "401" in str(exc):
        text += " (a gated repository: accept its licence on the hub and set HF_TOKEN)"
    return PullError(text, unreachable=_is_unreachable(exc))


def from_hub(store: ModelStore, item: HubFile, say: Say) -> StoredFile:
    """One hub file into ``<folder>/<filename>``, checked against the sha256 the hub announces."""
    from huggingface_hub import get_hf_file_metadata, hf_hub_download, hf_hub_url

    what = f"{item.repo}:{item.filename}"
    try:  # any failure of the hub client is reported as this pull's failure, with its class and message
        meta = get_hf_file_metadata(hf_hub_url(item.repo, item.filename, revision=item.revision))
    except Exception as exc:
        raise _hub_failure(what, exc) from exc
    expected = meta.etag if meta.etag and _SHA256.match(meta.etag) else None
    existing = store.recorded_file(item.folder, item.filename)
    if existing is not None and expected in (None, existing.sha256):
        say(f"{item.folder}/{item.filename}: already in the store (sha256 {existing.sha256[:12]})")
        return existing
    staging = store.root / ".downloads" / item.repo.replace("/", "--")
    try:
        local = Path(hf_hub_download(item.repo, item.filename, revision=item.revision, local_dir=staging))
    except Exception as exc:
        raise _hub_failure(what, exc) from exc
    sha = sha256_of(local)
    if expected is not None and sha != expected:
        local.unlink()
        raise PullError(f"{what}: sha256 mismatch: the hub announced {expected}, the download has {sha}; "
                        "the download was deleted, pull again")  # fmt: skip
    origin = f"hf://{item.repo}@{meta.commit_hash or item.revision}/{item.filename}"
    return _place(store, local, item.folder, item.filename, sha, origin, say)


def _place(store: ModelStore, source: Path, folder: str, filename: str, sha: str, origin: str, say: Say) -> StoredFile:
    target = store.path(folder, filename)
    target.parent.mkdir(parents=True, exist_ok=True)
    size = source.stat().st_size
    source.replace(target)
    say(f"{folder}/{filename}: {size / 1e6:.1f} MB, sha256 {sha}")
    return StoredFile(folder, filename, sha, size, origin)


def from_location(
    store: ModelStore, location: str, folder: str, filename: str, sha256: str | None, say: Say
) -> StoredFile:
    """A file from a local path (copied) or an http(s) URL (downloaded, resuming a partial download)."""
    staging = store.root / ".downloads"
    staging.mkdir(parents=True, exist_ok=True)
    partial = staging / (filename + ".part")
    scheme = urlparse(location).scheme
    if scheme in ("http", "https"):
        _download(location, partial)
    else:
        path = Path(location[7:] if scheme == "file" else location).expanduser()
        if not path.is_file():
            raise PullError(f"--from {location}: no such file")
        shutil.copyfile(path, partial)
    sha = sha256_of(partial)
    if sha256 is not None and sha != sha256.lower():
        partial.unlink()
        raise PullError(f"{location}: sha256 mismatch: expected {sha256}, the file has {sha}; it was not stored")
    return _place(store, partial, folder, filename, sha, location, say)


def _download(url: str, partial: Path) -> None:
    from huggingface_hub.file_download import http_get

    resume = partial.stat().st_size if partial.exists() else 0
    try:
        with partial.open("ab") as handle:
            http_get(url, handle, resume_size=resume, displayed_filename=partial.name.removesuffix(".part"))
    except Exception as exc:  # the HTTP client's errors, reported with their class; the partial file stays
        raise PullError(f"{url}: {type(exc).__name__}: {exc}", unreachable=_is_unreachable(exc)) from exc


def generate(store: ModelStore, model: KnownModel, say: Say) -> StoredFile:
    """The random-weight demo checkpoint (regenerated only when missing or made with other parameters)."""
    filename = str(model.entry["checkpoint"])
    path = store.path("checkpoints", filename)
    say(f"making {filename} with random weights ({model.generated}); its images are noise")
    write_sd15_checkpoint(path, variant="full" if model.generated == "full" else "slim", seed=0)
    return StoredFile("checkpoints", filename, sha256_of(path), path.stat().st_size, "generated: random weights")


def _entry_for_file(store: ModelStore, stored: StoredFile) -> dict[str, Any] | None:
    if stored.folder != "checkpoints":
        return None
    family = family_of(tensor_names(store.path(stored.folder, stored.filename)))
    return {"family": family, "checkpoint": stored.filename} if family in ("sd15", "sdxl") else None


def captioner_from_hub(store: ModelStore, name: str, repo: str, say: Say) -> PullResult:
    """A captioning model's repository (configs, tokenizer, safetensors) into ``captioners/<org>--<name>``;
    recorded like other pulls (each file's sha256), with no catalog entry: it is no base model.
    """
    try:  # the hub client's failures and a model we cannot run, reported as this pull's failure
        target = pull_captioner(repo, store.root)
    except Exception as exc:
        raise _hub_failure(repo, exc) from exc
    folder = str(target.relative_to(store.root))
    files = [StoredFile(folder, path.name, sha256_of(path), path.stat().st_size, f"hf://{repo}/{path.name}")
             for path in sorted(target.iterdir()) if path.is_file()]  # fmt: skip
    store.record(name, f"hf://{repo}", files, None)
    say(f"{folder}: {len(files)} files; caption with it: ATELIER_CAPTIONER={name}")
    return PullResult(name, files, None)


def pull(store: ModelStore, target: str, *, location: str | None = None, folder: str = "checkpoints",
         name: str | None = None, sha256: str | None = None, captioner: bool = False,
         say: Say | None = None) -> PullResult:  # fmt: skip
    """Pull ``target``: a known name, ``REPO:FILE`` from the hub, or (with ``location``) a file for that name;
    a captioner by known name, or any hub repository ``REPO`` with ``captioner``.
    """
    say = say or say_to_stderr
    if target in KNOWN_CAPTIONERS:
        return captioner_from_hub(store, target, KNOWN_CAPTIONERS[target].repo, say)
    if captioner:
        return captioner_from_hub(store, name or target, target, say)
    model = KNOWN.get(target)
    if model is not None:
        return _pull_known(store, model, location, sha256, say)
    if location is not None:
        filename = Path(urlparse(location).path).name if "://" in location else Path(location).name
        stored = from_location(store, location, folder, filename, sha256, say)
        result_name = name or target
    elif "/" in target and ":" in target:
        repo, _, filename = target.partition(":")
        stored = from_hub(store, HubFile(repo, filename, folder), say)
        result_name = name or Path(filename).stem
    else:
        known = ", ".join([*KNOWN, *KNOWN_CAPTIONERS])
        raise PullError(f"{target!r} is no known model ({known}), no REPO:FILE, and no --from was given")
    entry = _entry_for_file(store, stored)
    store.record(result_name, location or target, [stored], entry)
    return PullResult(result_name, [stored], entry)


def _pull_known(store: ModelStore, model: KnownModel, location: str | None, sha256: str | None, say: Say) -> PullResult:
    if model.generated:
        files = [generate(store, model, say)]
    elif location is not None:
        if len(model.files) != 1:
            raise PullError(f"{model.name} is {len(model.files)} files; --from takes one (pull each as REPO:FILE)")
        item = model.files[0]
        files = [from_location(store, location, item.folder, item.filename, sha256, say)]
    else:
        files = [from_hub(store, item, say) for item in model.files]
    store.record(model.name, location or "hub", files, model.entry)
    return PullResult(model.name, files, model.entry)


def say_to_stderr(text: str) -> None:
    """Progress lines of a pull on stderr (stdout stays for results)."""
    sys.stderr.write(text + "\n")
