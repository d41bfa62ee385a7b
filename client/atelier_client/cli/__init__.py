"""The ``atelier`` command line (see :func:`atelier_client.cli.main.main`)."""

from __future__ import annotations

from atelier_client.cli.main import build_parser, main

__all__ = ["build_parser", "main"]
