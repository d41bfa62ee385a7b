# SPDX-License-Identifier: Apache-2.0
"""Where the LoRA Atelier server is and the API key for it: the environment, else the pack's settings file.

``ATELIER_URL`` and ``ATELIER_API_KEY`` in ComfyUI's environment win (an administrator's choice); otherwise
what the Atelier sidebar saved in ``<ComfyUI user directory>/atelier/connection.json`` (created with mode
0600). The key is kept on the ComfyUI server: the sidebar reaches the LoRA Atelier server through the pack's
routes on ComfyUI's own server (:mod:`.server_routes`), so the key is never sent to a browser.

Standard library only: this module imports without ComfyUI.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

URL_VARIABLE = "ATELIER_URL"
KEY_VARIABLE = "ATELIER_API_KEY"
SETTINGS_FILE = Path("atelier") / "connection.json"
"""Relative to ComfyUI's user directory."""

Source = Literal["environment", "settings"]


class ConnectionSettingsError(ValueError):
    """A server URL or key that cannot be used (the message says why)."""


@dataclass(frozen=True)
class Connection:
    """A LoRA Atelier server address and the API key to use there (None: the server runs without keys)."""

    server_url: str
    api_key: str | None
    url_source: Source
    key_source: Source | None

    def key_hint(self) -> str | None:
        """The key's last four characters, for showing which key is set without showing it."""
        return f"…{self.api_key[-4:]}" if self.api_key else None


def check_server_url(url: str) -> str:
    """``url`` without a trailing slash; raises :class:`ConnectionSettingsError` unless it is http(s)://host."""
    url = url.strip().rstrip("/")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConnectionSettingsError(f"the server URL must look like http://host:port, got {url!r}")
    if parts.query or parts.fragment:
        raise ConnectionSettingsError("the server URL must not carry a query or a fragment")
    return url


def _saved(user_dir: Path | None) -> dict[str, str]:
    if user_dir is None:
        return {}
    try:
        data = json.loads((user_dir / SETTINGS_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return {k: v for k, v in data.items() if isinstance(v, str) and v} if isinstance(data, dict) else {}


def load_connection(environ: Mapping[str, str], user_dir: Path | None) -> Connection | None:
    """The connection to use now, or None when no server URL is set anywhere (an unusable one counts as unset)."""
    saved = _saved(user_dir)
    url_source: Source = "environment" if environ.get(URL_VARIABLE) else "settings"
    raw_url = environ.get(URL_VARIABLE) or saved.get("server_url")
    if not raw_url:
        return None
    try:
        url = check_server_url(raw_url)
    except ConnectionSettingsError:
        return None
    key_source: Source | None = None
    key = environ.get(KEY_VARIABLE) or None
    if key:
        key_source = "environment"
    elif saved.get("api_key"):
        key, key_source = saved["api_key"], "settings"
    return Connection(url, key, url_source, key_source)


def save_connection(user_dir: Path, server_url: str, api_key: str | None) -> None:
    """Store the sidebar's settings (``api_key`` None keeps the stored key; "" forgets it), readable by the
    ComfyUI user only, replacing the file in one step."""
    url = check_server_url(server_url)
    previous = _saved(user_dir)
    data = {"server_url": url}
    key = previous.get("api_key") if api_key is None else api_key.strip()
    if key:
        data["api_key"] = key
    path = user_dir / SETTINGS_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=".connection-")  # mode 0600
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as file:
            json.dump(data, file)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
