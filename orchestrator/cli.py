"""The ``atelier`` command: serve, worker, migrate, keys, dev tools."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from collections.abc import Callable, Sequence

from aiohttp import web
from pydantic import ValidationError

from orchestrator import __version__
from orchestrator.api.auth import issue_key
from orchestrator.api.request_log import AccessLogger
from orchestrator.app import create_app
from orchestrator.db.engine import create_engine, migrate
from orchestrator.devtools.commands import register_dev_commands
from orchestrator.jobs.shares import owner_id_by_name, set_owner_weight
from orchestrator.key_commands import register_key_admin_commands
from orchestrator.logs import configure as configure_logging
from orchestrator.settings import Settings

log = logging.getLogger("atelier")


def _settings() -> Settings:
    try:
        return Settings()
    except ValidationError as exc:
        print(f"atelier: invalid configuration:\n{exc}", file=sys.stderr)
        raise SystemExit(2) from exc


def _configure_logging(settings: Settings) -> None:
    configure_logging(settings.log_level, settings.log_format)


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


def _run(app: web.Application, settings: Settings, *, http: bool) -> int:
    loop_factory = _loop_factory(settings)
    if http:
        web.run_app(
            app,
            loop=loop_factory(),
            host=settings.host,
            port=settings.port,
            handler_cancellation=True,
            shutdown_timeout=settings.shutdown_timeout_s + 5,
            access_log=logging.getLogger("atelier.access") if settings.access_log else None,
            access_log_class=AccessLogger,
            print=lambda msg: log.info("%s", msg),
        )
    else:
        # A worker-only process has no routes; bind nothing and just run the cleanup contexts.
        with asyncio.Runner(loop_factory=loop_factory) as runner:
            runner.run(_run_without_http(app))
    return 0


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


def cmd_serve(_args: argparse.Namespace) -> int:
    """API + worker in one process (the worker can be turned off with ATELIER_WORKER_ENABLED=false)."""
    settings = _settings()
    _configure_logging(settings)
    asyncio.run(migrate(settings.database_url))
    log.info("serving on http://%s:%d (auth: %s)", settings.host, settings.port, settings.auth)
    return _run(create_app(settings), settings, http=True)


def cmd_worker(args: argparse.Namespace) -> int:
    """Workers alone, for scale-out; ``--kinds`` limits what this process claims."""
    settings = _settings()
    if args.kinds:
        settings = settings.model_copy(update={"worker_kinds": args.kinds.split(","), "worker_enabled": True})
    _configure_logging(settings)
    asyncio.run(migrate(settings.database_url))
    return _run(create_app(settings, serve_http=False), settings, http=False)


def cmd_migrate(_args: argparse.Namespace) -> int:
    """Create the database if needed and apply migrations (idempotent)."""
    settings = _settings()
    _configure_logging(settings)
    asyncio.run(migrate(settings.database_url))
    print("database is up to date")
    return 0


def cmd_keys_create(args: argparse.Namespace) -> int:
    """Issue an API key for an owner (created when new); prints the key once."""
    settings = _settings()

    async def issue() -> str:
        await migrate(settings.database_url)
        engine = create_engine(settings.database_url, pool_size=1)
        try:
            return (await issue_key(engine, args.owner)).secret
        finally:
            await engine.dispose()

    print(asyncio.run(issue()))
    return 0


def cmd_owners_weight(args: argparse.Namespace) -> int:
    """Set an owner's weight in the scheduler's fair share (2 = twice the turns of an owner with 1)."""
    settings = _settings()

    async def set_weight() -> bool:
        await migrate(settings.database_url)
        engine = create_engine(settings.database_url, pool_size=1)
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
    if not asyncio.run(set_weight()):
        print(f"atelier: no owner named {args.owner!r}", file=sys.stderr)
        return 1
    print(f"owner {args.owner} now has weight {args.weight:g}")
    return 0


def register_server_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """The server's commands (serve, worker, migrate, keys, owners, dev) on ``sub``; the ``atelier`` command of the
    client package finds this through the ``atelier.commands`` entry point."""
    sub.add_parser("serve", help=cmd_serve.__doc__).set_defaults(func=cmd_serve)
    worker = sub.add_parser("worker", help=cmd_worker.__doc__)
    worker.add_argument("--kinds", help="comma list of job kinds to claim, e.g. training")
    worker.set_defaults(func=cmd_worker)
    sub.add_parser("migrate", help=cmd_migrate.__doc__).set_defaults(func=cmd_migrate)
    keys = sub.add_parser("keys", help="manage API keys").add_subparsers(dest="keys_command", required=True)
    create = keys.add_parser("create", help=cmd_keys_create.__doc__)
    create.add_argument("--owner", required=True, help="owner name")
    create.set_defaults(func=cmd_keys_create)
    register_key_admin_commands(keys)
    owners = sub.add_parser("owners", help="manage owners").add_subparsers(dest="owners_command", required=True)
    weight = owners.add_parser("weight", help=cmd_owners_weight.__doc__)
    weight.add_argument("--owner", required=True, help="owner name")
    weight.add_argument("--weight", required=True, type=float, help="share weight (default for everyone: 1)")
    weight.set_defaults(func=cmd_owners_weight)
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
