"""Which database errors are "unavailable, retry" (503) and which are bugs (500)."""

from __future__ import annotations

import asyncpg
import pytest
from sqlalchemy import exc as sa_exc

from orchestrator.db.errors import is_database_error, is_unavailable


def _wrapped(cause: BaseException) -> sa_exc.DBAPIError:
    """What SQLAlchemy's asyncpg dialect raises: a DBAPIError whose orig has the asyncpg error as cause."""
    orig = Exception(str(cause))
    orig.__cause__ = cause
    return sa_exc.DBAPIError("SELECT 1", {}, orig)


@pytest.mark.parametrize(
    "cause",
    [
        asyncpg.exceptions.CannotConnectNowError("the database system is in recovery mode"),
        asyncpg.exceptions.AdminShutdownError("terminating connection due to administrator command"),
        asyncpg.exceptions.CrashShutdownError("terminating connection because of crash of another server process"),
        asyncpg.exceptions.TooManyConnectionsError("sorry, too many clients already"),
        asyncpg.exceptions.ConnectionDoesNotExistError("connection was closed in the middle of operation"),
        asyncpg.exceptions.InterfaceError("cannot call Connection.fetch(): connection is closed"),
        ConnectionRefusedError(111, "Connect call failed"),
        TimeoutError(),
    ],
)
def test_connection_and_recovery_errors_are_unavailable(cause: BaseException) -> None:
    assert is_unavailable(cause)
    assert is_unavailable(_wrapped(cause))
    assert is_database_error(_wrapped(cause))


def test_a_pool_timeout_is_unavailable() -> None:
    assert is_unavailable(sa_exc.TimeoutError("QueuePool limit reached"))


@pytest.mark.parametrize(
    "cause",
    [
        asyncpg.exceptions.UniqueViolationError("duplicate key"),
        asyncpg.exceptions.NumericValueOutOfRangeError("integer out of range"),
        asyncpg.exceptions.UntranslatableCharacterError("unsupported Unicode escape sequence"),
        asyncpg.exceptions.InterfaceError("cannot perform operation: another operation is in progress"),
        ValueError("a bug of ours"),
    ],
)
def test_other_errors_are_not_unavailable(cause: BaseException) -> None:
    assert not is_unavailable(cause)
    assert not is_unavailable(_wrapped(cause))
