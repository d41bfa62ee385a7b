# SPDX-License-Identifier: Apache-2.0
"""The few calls the pack makes to a LoRA Atelier server: list your LoRAs, download one version.

Blocking ``urllib`` on purpose: ComfyUI calls the nodes from synchronous code (schemas, validation, execution),
and the pack should need nothing beyond ComfyUI. The API key travels as ``Authorization: Bearer`` and is never
forwarded on a redirect (an S3 store answers a download with a presigned URL of another host).

Standard library only: this module imports without ComfyUI.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from .atelier_connection import Connection

PAGE_SIZE = 200
CHUNK_BYTES = 1 << 20
USER_AGENT = "atelier-nodes/0.2"


class AtelierServerError(RuntimeError):
    """The server could not give what was asked; the message says why, in words for the ComfyUI user."""


class KeyRefused(AtelierServerError):
    """The server refused the API key (401/403)."""


class ServerUnreachable(AtelierServerError):
    """No answer from the server (down, wrong address, timeout)."""


class ChecksumMismatch(AtelierServerError):
    """A downloaded file's sha256 differs from the one the server published; the file was not kept."""


@dataclass(frozen=True)
class RemoteLora:
    """One version of one of your LoRAs on the server."""

    lora_id: str
    name: str
    subject: str
    version: int
    sha256: str
    size_bytes: int
    file_url: str
    comfy_name: str
    trigger_word: str | None
    base_family: str

    @property
    def key(self) -> str:
        """``<subject>/<name>/v<version>``: how the remote loader names it."""
        return f"{self.subject}/{self.name}/v{self.version}"


def _problem_text(error: urllib.error.HTTPError) -> str:
    try:
        body = json.loads(error.read(64 * 1024) or b"{}")
    except ValueError:
        body = {}
    detail = body.get("detail") or body.get("title") if isinstance(body, dict) else None
    return f"HTTP {error.code}" + (f": {detail}" if detail else "")


def _read(response: Any, lora: RemoteLora) -> bytes:
    try:
        chunk: bytes = response.read(CHUNK_BYTES)
    except (OSError, http.client.HTTPException) as exc:
        raise ServerUnreachable(f"{lora.key}: the download broke off ({exc!r})") from exc
    return chunk


class AtelierServer:
    """One LoRA Atelier server, reached with one connection's URL and key."""

    def __init__(self, connection: Connection, timeout_s: float = 5.0) -> None:
        self.connection = connection
        self.timeout_s = timeout_s

    def _open(self, path: str) -> Any:
        request = urllib.request.Request(self.connection.server_url + path, headers={"User-Agent": USER_AGENT})
        if self.connection.api_key:
            request.add_unredirected_header("Authorization", f"Bearer {self.connection.api_key}")
        where = self.connection.server_url
        try:
            return urllib.request.urlopen(request, timeout=self.timeout_s)
        except urllib.error.HTTPError as exc:
            if exc.code in (401, 403):
                raise KeyRefused(
                    f"the LoRA Atelier server at {where} refused the API key ({_problem_text(exc)}); set the right "
                    "key in the Atelier sidebar (or ATELIER_API_KEY)"
                ) from exc
            raise AtelierServerError(f"the LoRA Atelier server at {where} answered {_problem_text(exc)}") from exc
        except (TimeoutError, urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise ServerUnreachable(f"cannot reach the LoRA Atelier server at {where} ({reason})") from exc

    def get_json(self, path: str) -> Any:
        """The JSON answer to ``GET path``."""
        with self._open(path) as response:
            try:
                return json.load(response)
            except ValueError as exc:
                where = self.connection.server_url
                raise AtelierServerError(f"{where}{path} did not answer JSON: is it a LoRA Atelier server?") from exc

    def _pages(self, path: str) -> Iterator[dict[str, Any]]:
        cursor: str | None = None
        while True:
            query = {"limit": PAGE_SIZE, **({"cursor": cursor} if cursor else {})}
            page = self.get_json(f"{path}?{urlencode(query)}")
            yield from page.get("items", [])
            cursor = page.get("next_cursor")
            if not cursor:
                return

    def list_loras(self) -> list[RemoteLora]:
        """Every version of every LoRA of the key's owner, by subject, name and version."""
        subjects = {item["id"]: item["name"] for item in self._pages("/v1/subjects")}
        found = []
        for lora in self._pages("/v1/loras"):
            subject = subjects.get(lora.get("subject_id"), "no-subject")
            for version in lora.get("versions", []):
                found.append(
                    RemoteLora(
                        lora_id=str(lora["id"]),
                        name=str(lora["name"]),
                        subject=subject,
                        version=int(version["version"]),
                        sha256=str(version["sha256"]).lower(),
                        size_bytes=int(version["size_bytes"]),
                        file_url=str(version["file_url"]),
                        comfy_name=str(version["comfy_name"]),
                        trigger_word=lora.get("trigger_word"),
                        base_family=str(lora.get("base_family", "")),
                    )
                )
        return sorted(found, key=lambda item: (item.subject.lower(), item.name.lower(), item.version))

    def download(self, lora: RemoteLora, destination: Path) -> None:
        """Fetch ``lora``'s file to ``destination``, keeping it only when its sha256 is the published one."""
        destination.parent.mkdir(parents=True, exist_ok=True)
        partial = destination.with_name(f".{destination.name}.{os.getpid()}.part")
        digest = hashlib.sha256()
        try:
            with self._open(lora.file_url) as response, partial.open("wb") as out:
                while chunk := _read(response, lora):
                    digest.update(chunk)
                    out.write(chunk)
            if digest.hexdigest() != lora.sha256:
                raise ChecksumMismatch(
                    f"{lora.key}: the downloaded file's sha256 is {digest.hexdigest()}, the server published "
                    f"{lora.sha256}; the file was refused (not kept)"
                )
            os.replace(partial, destination)
        finally:
            partial.unlink(missing_ok=True)
