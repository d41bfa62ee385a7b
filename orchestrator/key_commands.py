"""``atelier keys list`` and ``atelier keys revoke``: operators' view of API keys (``keys create`` is beside
serve in :mod:`orchestrator.cli`)."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Awaitable, Callable
from typing import TypeVar

from pydantic import ValidationError

from orchestrator.api.key_admin import KeyInfo, list_keys, revoke_key
from orchestrator.db.embedded import database_in_use
from orchestrator.db.engine import create_engine, migrate
from orchestrator.settings import Settings

T = TypeVar("T")


def _with_engine(work: Callable[..., Awaitable[T]], *args: object) -> T:
    try:
        settings = Settings()
    except ValidationError as exc:
        sys.stderr.write(f"atelier: invalid configuration:\n{exc}\n")
        raise SystemExit(2) from exc

    async def run(url: str) -> T:
        await migrate(url)
        engine = create_engine(url, pool_size=1)
        try:
            return await work(engine, *args)
        finally:
            await engine.dispose()

    with database_in_use(settings.database_url, settings.var_dir) as database:
        return asyncio.run(run(database.url))


def _row(key: KeyInfo) -> dict[str, str | None]:
    return {
        "id": str(key.id),
        "owner": key.owner,
        "prefix": f"atl_{key.prefix}",
        "created_at": key.created_at.isoformat(),
        "revoked_at": key.revoked_at.isoformat() if key.revoked_at else None,
    }


def cmd_keys_list(args: argparse.Namespace) -> int:
    """List API keys (never their secrets): id, owner, prefix, created, revoked."""
    keys = _with_engine(lambda engine: list_keys(engine, args.owner, revoked=args.all))
    if args.json:
        sys.stdout.write(json.dumps([_row(k) for k in keys], indent=2) + "\n")
        return 0
    for key in keys:
        row = _row(key)
        revoked = f"  revoked {row['revoked_at']}" if row["revoked_at"] else ""
        sys.stdout.write(f"{row['id']}  {row['prefix']}  {row['owner']}  {row['created_at']}{revoked}\n")
    return 0


def cmd_keys_revoke(args: argparse.Namespace) -> int:
    """Revoke a key by id, prefix or the key itself; running services refuse it within 30 s."""
    revoked = _with_engine(revoke_key, args.key)
    if revoked is None:
        sys.stderr.write(f"atelier: no API key {args.key!r}\n")
        return 1
    sys.stdout.write(f"revoked {revoked.id} (atl_{revoked.prefix}, owner {revoked.owner})\n")
    return 0


def register_key_admin_commands(keys: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``list`` and ``revoke`` to the ``keys`` group."""
    listing = keys.add_parser("list", help=cmd_keys_list.__doc__)
    listing.add_argument("--owner", help="only this owner's keys")
    listing.add_argument("--all", action="store_true", help="revoked keys too")
    listing.add_argument("--json", action="store_true", help="print JSON")
    listing.set_defaults(func=cmd_keys_list)
    revoke = keys.add_parser("revoke", help=cmd_keys_revoke.__doc__)
    revoke.add_argument("key", help="the key's id, its prefix (atl_xxxxxxxxxxxx) or the whole key")
    revoke.set_defaults(func=cmd_keys_revoke)
