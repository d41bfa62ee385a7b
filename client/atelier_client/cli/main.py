"""The ``atelier`` command: the user commands of the SDK, plus the server's admin commands when the service is
installed (it declares them in the ``atelier.commands`` entry-point group, so this package never imports it)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from importlib.metadata import entry_points

import httpx
from rich.console import Console

from atelier_client import __version__
from atelier_client.cli import jobs_commands, work_commands
from atelier_client.cli.output import print_error
from atelier_client.errors import ApiError, AtelierError

COMMAND_GROUP = "atelier.commands"


def _common_options() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--url", help="the service (default: ATELIER_URL, the config file, http://127.0.0.1:8000)")
    common.add_argument("--api-key", help="an API key (default: ATELIER_API_KEY or the config file)")
    common.add_argument("--json", action="store_true", help="print one JSON document for scripts")
    return common


def _server_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    for entry in entry_points(group=COMMAND_GROUP):
        try:
            entry.load()(sub)
        except Exception as exc:  # a broken server install must not take the user commands down with it
            sys.stderr.write(f"atelier: the {entry.name!r} commands are unavailable: {exc}\n")


def build_parser() -> argparse.ArgumentParser:
    """The whole command line: user commands, then the server's when installed."""
    parser = argparse.ArgumentParser(prog="atelier", description="LoRA Atelier: train LoRAs, generate images.")
    parser.add_argument("--version", action="version", version=f"atelier {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    common = _common_options()
    work_commands.register(sub, common)
    jobs_commands.register(sub, common)
    _server_commands(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``atelier`` console script."""
    args = build_parser().parse_args(argv)
    console = Console(stderr=True)
    try:
        return int(args.func(args))
    except ApiError as exc:
        print_error(console, exc)
        return 1
    except httpx.TransportError as exc:
        console.print(f"[bold red]error[/]: cannot reach the service: {exc}")
        return 1
    except AtelierError as exc:
        console.print(f"[bold red]error[/]: {exc}")
        return 1
