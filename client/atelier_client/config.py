"""Where the service is and which key to use: arguments, then ``ATELIER_URL`` / ``ATELIER_API_KEY``, then the
config file (``ATELIER_CONFIG``, else ``~/.config/atelier/config.toml``), then ``http://127.0.0.1:8000``.

The config file is TOML::

    url = "https://atelier.example.org"
    api_key = "atl_..."
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass
from pathlib import Path

from atelier_client.errors import AtelierError

DEFAULT_URL = "http://127.0.0.1:8000"


def config_path() -> Path:
    """The config file this process would read."""
    explicit = os.environ.get("ATELIER_CONFIG")
    if explicit:
        return Path(explicit).expanduser()
    base = Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config")
    return base / "atelier" / "config.toml"


@dataclass(frozen=True)
class Connection:
    """The resolved base URL and API key (None: single-user mode, no key sent)."""

    url: str
    api_key: str | None


def _from_file(path: Path) -> dict[str, str]:
    if not path.is_file():
        return {}
    try:
        data = tomllib.loads(path.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise AtelierError(f"cannot read the config file {path}: {exc}") from exc
    return {k: str(v) for k, v in data.items() if k in ("url", "api_key") and isinstance(v, str)}


def resolve(url: str | None = None, api_key: str | None = None) -> Connection:
    """Arguments first, then the environment, then the config file, then the default URL."""
    file = _from_file(config_path())
    chosen_url = url or os.environ.get("ATELIER_URL") or file.get("url") or DEFAULT_URL
    chosen_key = api_key or os.environ.get("ATELIER_API_KEY") or file.get("api_key") or None
    return Connection(url=chosen_url.rstrip("/"), api_key=chosen_key)
