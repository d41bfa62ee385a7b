"""The ``atelier`` command: serve, worker, migrate, keys, engines, models, dev tools."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys
from collections.abc import Callable, Iterator, Sequence

from aiohttp import web

from orchestrator import __version__
from orchestrator.api.auth import issue_key
from orchestrator.app import create_app
from orchestrator.cli_support import add_setting_flags, configure_logging, settings_from
from orchestrator.db.embedded import EmbeddedDatabaseError, database_in_use
from orchestrator.db.engine import create_engine, migrate
from orchestrator.devtools.commands import register_dev_commands
from orchestrator.engines.commands import register_engine_commands
from orchestrator.engines.runtime import with_installed_engines
from orchestrator.jobs.shares import owner_id_by_name, set_owner_weight
from orchestrator.key_commands import register_key_admin_commands
from orchestrator.modelstore.commands import register_model_commands
from orchestrator.serving import serve
from orchestrator.settings import Settings

log = logging.getLogger("atelier")


@contextlib.contextmanager
def _database(settings: Settings) -> Iterator[tuple[Settings, str]]:
    """The run's database (the embedded one held for as long as the block runs), migrated; says which."""
    try:
        with database_in_use(settings.database_url, settings.var_dir) as choice:
            log.info("database: %s", choice.reason)
            asyncio.run(migrate(choice.url))
            yield settings.model_copy(update={"database_url": choice.url}), choice.reason
    except EmbeddedDatabaseError as exc:
        print(f"atelier: {exc}", file=sys.stderr)
        raise SystemExit(1) from exc


def _loop_factory(settings: Settings) -> Callable[[], asyncio.AbstractEventLoop]:
    """uvloop when asked for or (``auto``) when installed; it halves per-socket write costs in SSE fan-out."""
    if settings.event_loop != "asyncio":
        try:
            import uvloop
        except ImportError:
            if settings.event_loop == "uvloop":
                raise
        else:
            return uvloop.new_event_loop
    return asyncio.new_event_loop


async def _run_without_http(app: web.Application) -> None:
    runner = web.AppRunner(app, handle_signals=False)
    await runner.setup()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()


def cmd_serve(args: argparse.Namespace) -> int:
    """API + worker in one process (the worker can be turned off with ATELIER_WORKER_ENABLED=false)."""
    settings = settings_from(args)
    configure_logging(settings)
    with _database(settings) as (settings, which), asyncio.Runner(loop_factory=_loop_factory(settings)) as runner:
        runner.run(serve(settings, which))
    return 0


def cmd_worker(args: argparse.Namespace) -> int:
    """Workers alone, for scale-out; ``--kinds`` limits what this process claims."""
    settings = settings_from(args)
    if args.kinds:
        settings = settings.model_copy(update={"worker_kinds": args.kinds.split(","), "worker_enabled": True})
    configure_logging(settings)
    with _database(settings) as (settings, _which), asyncio.Runner(loop_factory=_loop_factory(settings)) as runner:
        runner.run(_run_without_http(create_app(with_installed_engines(settings), serve_http=False)))
    return 0


def cmd_migrate(args: argparse.Namespace) -> int:
    """Create the database if needed and apply migrations (idempotent)."""
    settings = settings_from(args)
    configure_logging(settings)
    with _database(settings) as (_settings, which):
        print(f"database is up to date ({which})")
    return 0


def cmd_keys_create(args: argparse.Namespace) -> int:
    """Issue an API key for an owner (created when new); prints the key once."""
    settings = settings_from(args)

    async def issue(url: str) -> str:
        engine = create_engine(url, pool_size=1)
        try:
            return (await issue_key(engine, args.owner, admin=args.admin, adult_content=args.adult)).secret
        finally:
            await engine.dispose()

    with _database(settings) as (settings, _which):
        print(asyncio.run(issue(settings.database_url)))
    return 0


def cmd_owners_weight(args: argparse.Namespace) -> int:
    """Set an owner's weight in the scheduler's fair share (2 = twice the turns of an owner with 1)."""
    settings = settings_from(args)

    async def set_weight(url: str) -> bool:
        engine = create_engine(url, pool_size=1)
        try:
            owner = await owner_id_by_name(engine, args.owner)
            if owner is None:
                return False
            await set_owner_weight(engine, owner, args.weight)
            return True
        finally:
            await engine.dispose()

    if args.weight <= 0:
        print("atelier: a weight must be positive", file=sys.stderr)
        return 2
    with _database(settings) as (settings, _which):
        found = asyncio.run(set_weight(settings.database_url))
    if not found:
        print(f"atelier: no owner named {args.owner!r}", file=sys.stderr)
        return 1
    print(f"owner {args.owner} now has weight {args.weight:g}")
    return 0


SERVE_FLAGS = ("host", "port", "auth", "database_url", "var_dir", "models_dir", "storage_url", "log_level")
DATABASE_FLAGS = ("database_url", "var_dir", "log_level")


def register_server_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """The server's commands (serve, worker, migrate, keys, engines, models, dev) on ``sub``; the ``atelier``
    command of the client package finds this through the ``atelier.commands`` entry point."""
    serve_cmd = sub.add_parser("serve", help=cmd_serve.__doc__)
    add_setting_flags(serve_cmd, *SERVE_FLAGS)
    serve_cmd.set_defaults(func=cmd_serve)
    worker = sub.add_parser("worker", help=cmd_worker.__doc__)
    worker.add_argument("--kinds", help="comma list of job kinds to claim, e.g. training")
    add_setting_flags(worker, *DATABASE_FLAGS, "models_dir", "storage_url")
    worker.set_defaults(func=cmd_worker)
    migrate_cmd = sub.add_parser("migrate", help=cmd_migrate.__doc__)
    add_setting_flags(migrate_cmd, *DATABASE_FLAGS)
    migrate_cmd.set_defaults(func=cmd_migrate)
    keys = sub.add_parser("keys", help="manage API keys").add_subparsers(dest="keys_command", required=True)
    create = keys.add_parser("create", help=cmd_keys_create.__doc__)
    create.add_argument("--owner", required=True, help="owner name")
    add_setting_flags(create, *DATABASE_FLAGS)
    create.add_argument("--admin", action="store_true", help="the key may read the audit log (GET /v1/audit)")
    create.add_argument(
        "--adult", action="store_true", help="the key may get sexual content when ATELIER_CONTENT_POLICY=permissive"
    )
    create.set_defaults(func=cmd_keys_create)
    register_key_admin_commands(keys)
    owners = sub.add_parser("owners", help="manage owners").add_subparsers(dest="owners_command", required=True)
    weight = owners.add_parser("weight", help=cmd_owners_weight.__doc__)
    weight.add_argument("--owner", required=True, help="owner name")
    weight.add_argument("--weight", required=True, type=float, help="share weight (default for everyone: 1)")
    add_setting_flags(weight, *DATABASE_FLAGS)
    weight.set_defaults(func=cmd_owners_weight)
    register_engine_commands(sub)
    register_model_commands(sub)
    _add_dev_commands(sub)


def build_parser() -> argparse.ArgumentParser:
    """The server's own parser (``python -m orchestrator.cli``; exposed for tests and docs)."""
    parser = argparse.ArgumentParser(prog="atelier", description="LoRA Atelier service")
    parser.add_argument("--version", action="version", version=f"atelier {__version__}")
    register_server_commands(parser.add_subparsers(dest="command", required=True))
    return parser


def _add_dev_commands(sub: argparse._SubParsersAction) -> None:
    dev = sub.add_parser("dev", help="developer tools (test models)")
    register_dev_commands(dev.add_subparsers(dest="dev_command", required=True))


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``atelier`` console script."""
    args = build_parser().parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    raise SystemExit(main())
