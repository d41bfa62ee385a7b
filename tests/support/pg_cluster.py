"""A Postgres cluster of the test's own, on a port of its own, that a test may crash and restart.

Never the shared cluster the rest of the suite uses. The server binaries are found on PATH, through
``pg_config --bindir``, or in the Debian layout (``/usr/lib/postgresql/<version>/bin``). Postgres refuses
to run as root: as root the tools run as the ``postgres`` user (``runuser``), in a folder it owns.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from tests.support.service import free_port


def server_bindir() -> Path | None:
    """The folder holding ``initdb`` and ``pg_ctl``, or None."""
    found = shutil.which("pg_ctl")
    if found and shutil.which("initdb"):
        return Path(found).resolve().parent
    pg_config = shutil.which("pg_config")
    if pg_config:
        out = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True, check=False).stdout.strip()
        if out and (Path(out) / "pg_ctl").exists():
            return Path(out)
    debian = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"))
    return debian[-1].parent if debian else None


def _run_as() -> list[str] | None:
    """The command prefix that runs Postgres tools as a user they accept (None: impossible here)."""
    if os.geteuid() != 0:
        return []
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        return None
    runuser = shutil.which("runuser")
    return [runuser, "-u", "postgres", "--"] if runuser else None


def why_unavailable() -> str | None:
    """Why no own cluster can be started here (None when one can)."""
    if server_bindir() is None:
        return "no Postgres server binaries (initdb, pg_ctl) on PATH, via pg_config or in /usr/lib/postgresql"
    if _run_as() is None:
        return "running as root without a 'postgres' user and runuser to start Postgres as"
    return None


@dataclass
class OwnCluster:
    """A cluster in a temporary folder: ``start``, ``restart_immediately`` (crash recovery), ``destroy``."""

    bindir: Path
    root: Path
    port: int
    prefix: list[str]

    @classmethod
    def create(cls) -> OwnCluster:
        """initdb a new cluster (trust authentication, user ``postgres``) on a free port."""
        bindir, prefix = server_bindir(), _run_as()
        if bindir is None or prefix is None:
            raise RuntimeError(why_unavailable())
        root = Path(tempfile.mkdtemp(prefix="atelier-own-pg-"))
        if prefix:
            entry = pwd.getpwnam("postgres")
            os.chown(root, entry.pw_uid, entry.pw_gid)
        cluster = cls(bindir, root, free_port(), prefix)
        cluster._tool("initdb", "-D", str(cluster.data), "-U", "postgres", "-A", "trust", "--no-sync", "-E", "UTF8")
        return cluster

    @property
    def data(self) -> Path:
        """The data directory."""
        return self.root / "data"

    @property
    def url(self) -> str:
        """The SQLAlchemy URL of database ``atelier`` on it."""
        return f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/atelier"

    def _tool(self, name: str, *args: str) -> None:
        command = [*self.prefix, str(self.bindir / name), *args]
        subprocess.run(command, check=True, capture_output=True, cwd=self.root)

    def _options(self) -> str:
        return f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c max_connections=60"

    def start(self) -> None:
        """Start it and wait until it accepts connections."""
        self._tool("pg_ctl", "-D", str(self.data), "-o", self._options(), "-l", str(self.root / "log"), "-w", "start")

    def restart_immediately(self) -> None:
        """Stop without a checkpoint (like a crash: the next start runs crash recovery), then start again."""
        self._tool("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")
        self.start()

    def destroy(self) -> None:
        """Stop it (if it runs) and remove its folder."""
        subprocess.run(
            [*self.prefix, str(self.bindir / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w", "stop"],
            capture_output=True,
            check=False,
            cwd=self.root,
        )
        shutil.rmtree(self.root, ignore_errors=True)
