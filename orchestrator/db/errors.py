"""Which database errors mean "the database is unavailable right now" (retry later) rather than a bug.

SQLAlchemy wraps asyncpg's exceptions (``DBAPIError`` whose ``orig`` wraps the asyncpg error as its
cause) and marks only some of them ``connection_invalidated``; a failed *connect* is wrapped without
that mark. So the whole cause chain is inspected, by SQLSTATE where Postgres sent one:

- class 08 (connection exception), 57P01 to 57P03 (admin shutdown, crash shutdown, "cannot connect now"
  while the server starts or recovers from a crash), 53300 (too many connections);
- a connection that broke or could not be made (``OSError``, asyncpg's connection-closed interface
  errors, timeouts while connecting or waiting for a pooled connection).
"""

from __future__ import annotations

import asyncio

import asyncpg
from sqlalchemy import exc as sa_exc

UNAVAILABLE_SQLSTATES = frozenset({"57P01", "57P02", "57P03", "53300"})
RETRY_AFTER_S = 1
_CLOSED_MESSAGES = ("connection is closed", "connection was closed", "underlying connection is closed")


def _causes(exc: BaseException) -> list[BaseException]:
    chain: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in chain and len(chain) < 16:
        chain.append(current)
        orig = current.orig if isinstance(current, sa_exc.DBAPIError) else None
        current = current.__cause__ or orig or current.__context__
    return chain


def _one_is_unavailable(exc: BaseException) -> bool:
    if isinstance(exc, sa_exc.DBAPIError) and exc.connection_invalidated:
        return True
    if isinstance(exc, OSError | TimeoutError | asyncio.TimeoutError | sa_exc.TimeoutError):
        return True
    sqlstate = getattr(exc, "sqlstate", None)
    if isinstance(sqlstate, str) and (sqlstate.startswith("08") or sqlstate in UNAVAILABLE_SQLSTATES):
        return True
    if isinstance(exc, asyncpg.PostgresConnectionError | asyncpg.exceptions.ConnectionDoesNotExistError):
        return True
    return isinstance(exc, asyncpg.InterfaceError) and any(m in str(exc) for m in _CLOSED_MESSAGES)


def is_unavailable(exc: BaseException) -> bool:
    """True when ``exc`` (or what caused it) says the database cannot be reached or is restarting."""
    return any(_one_is_unavailable(e) for e in _causes(exc))


def is_database_error(exc: BaseException) -> bool:
    """True when the database driver or SQLAlchemy raised ``exc`` or one of its causes."""
    return any(
        isinstance(e, sa_exc.SQLAlchemyError | asyncpg.PostgresError | asyncpg.InterfaceError) for e in _causes(exc)
    )
