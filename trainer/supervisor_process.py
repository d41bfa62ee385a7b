"""Process-group housekeeping: who is in a group, killing it all, orphans after a restart, reaping.

A training run is its own session and process group (``start_new_session=True``), so its pgid is the
leader's pid. Signals always go to the whole group: under ``accelerate launch`` signalling the parent alone
leaves the training child running (recorded in the sd-scripts reference runs).

Processes left in a group after its leader exits are re-parented to the nearest "child subreaper", else to
PID 1. Where PID 1 does not reap (some container inits; this machine's), killed members stay zombies and
the group id stays in use; :func:`become_subreaper` makes this process adopt them so that the supervisor
can reap them (:func:`wait_group_gone`).
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import select
import signal
import sys
import time

import psutil

_PR_SET_CHILD_SUBREAPER = 36


def become_subreaper(enabled: bool = True) -> bool:
    """Make this process adopt orphaned descendants (Linux ``PR_SET_CHILD_SUBREAPER``); False elsewhere.

    Call once at worker start when training runs are supervised from this process (``enabled=False``
    undoes it).
    """
    if not sys.platform.startswith("linux"):
        return False
    libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    return bool(libc.prctl(_PR_SET_CHILD_SUBREAPER, int(enabled), 0, 0, 0) == 0)


_UNCATCHABLE = frozenset({signal.SIGKILL, signal.SIGSTOP})


def restore_default_signals() -> None:
    """``preexec_fn`` of a training process: every signal back to its default action, none blocked.

    Ignored signals and the signal mask survive ``exec`` (handlers do not). A service started as a
    background job of a non-interactive shell has SIGINT ignored, and so would sd-scripts: Python only
    installs its KeyboardInterrupt handler where SIGINT is not ignored, so a cancel's SIGINT would do
    nothing. ``subprocess``'s ``restore_signals`` covers only SIGPIPE, SIGXFZ and SIGXFSZ. Runs in the
    forked child before ``exec``: only ``sigprocmask`` and ``sigaction`` calls, no locks.
    """
    signal.pthread_sigmask(signal.SIG_SETMASK, ())
    for sig in signal.valid_signals():
        if sig not in _UNCATCHABLE:
            with contextlib.suppress(OSError, ValueError):  # signals reserved by the C library
                signal.signal(sig, signal.SIG_DFL)


def group_members(pgid: int) -> list[psutil.Process]:
    """Live (non-zombie) processes whose process group is ``pgid``."""
    members = []
    for process in psutil.process_iter():
        try:
            if os.getpgid(process.pid) == pgid and process.status() != psutil.STATUS_ZOMBIE:
                members.append(process)
        except (ProcessLookupError, psutil.NoSuchProcess, psutil.AccessDenied, PermissionError):
            continue
    return members


def group_alive(pgid: int) -> bool:
    """Whether any live process is left in the group."""
    return bool(group_members(pgid))


def signal_group(pgid: int, sig: int) -> bool:
    """Send ``sig`` to every process of the group; False when the group no longer exists."""
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        return False
    return True


def wait_group_gone(pgid: int, timeout: float) -> bool:
    """Wait until no live process is left in the group, reaping those that are our children.

    Waits on a pidfd per member (readable once that process has exited; Linux 5.3+), falling back to
    psutil elsewhere. Blocking: run it in a thread from async code. True when the group is empty.
    """
    members = group_members(pgid)
    if hasattr(os, "pidfd_open"):
        _wait_pidfds(pgid, [p.pid for p in members], timeout)
    else:  # pragma: no cover - not Linux
        psutil.wait_procs(members, timeout=timeout)
    _reap_adopted(pgid)
    return not group_alive(pgid)


def _wait_pidfds(pgid: int, pids: list[int], timeout: float) -> None:
    poller = select.poll()
    open_fds: set[int] = set()
    try:
        for pid in pids:
            try:
                fd = os.pidfd_open(pid)
            except ProcessLookupError:
                continue
            open_fds.add(fd)
            with contextlib.suppress(ProcessLookupError):
                if os.getpgid(pid) == pgid:  # still ours, not a reused pid
                    poller.register(fd, select.POLLIN)
                    continue
            open_fds.discard(fd)
            os.close(fd)
        deadline = time.monotonic() + timeout
        waiting = set(open_fds)
        while waiting:
            remaining_ms = int((deadline - time.monotonic()) * 1000)
            if remaining_ms <= 0:
                return
            for fd, _ in poller.poll(remaining_ms):
                poller.unregister(fd)
                waiting.discard(fd)
    finally:
        for fd in open_fds:
            os.close(fd)


def _reap_adopted(pgid: int) -> None:
    """Collect zombies of the group that were re-parented to us (we are their subreaper).

    The leader (pid == pgid) is skipped: when it is our own child, its exit status belongs to whoever
    started it (asyncio's child watcher, ``Popen.wait``).
    """
    me = os.getpid()
    for process in psutil.process_iter():
        if process.pid == pgid:
            continue
        try:
            adopted = process.ppid() == me and os.getpgid(process.pid) == pgid
        except (ProcessLookupError, psutil.NoSuchProcess, psutil.AccessDenied, PermissionError):
            continue
        if adopted and process.status() == psutil.STATUS_ZOMBIE:
            with contextlib.suppress(ChildProcessError):
                os.waitpid(process.pid, os.WNOHANG)


def kill_group_and_wait(pgid: int, timeout: float) -> bool:
    """SIGKILL whatever is left of the group and wait for it to vanish; True when none is left."""
    signal_group(pgid, signal.SIGKILL)
    return wait_group_gone(pgid, timeout)


def find_orphan(pgid: int, expected_cmdline_marker: str) -> bool:
    """Whether a live process of group ``pgid`` still runs a command line containing the marker.

    After a service restart, a recorded pgid may have been reused by something else; the marker (for
    example the run's ``config.toml`` path, :attr:`trainer.config.LaunchSpec.cmdline_marker`) tells ours.
    """
    for process in group_members(pgid):
        try:
            cmdline = " ".join(process.cmdline())
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
        if expected_cmdline_marker in cmdline:
            return True
    return False


def terminate_orphan_group(
    pgid: int,
    expected_cmdline_marker: str,
    *,
    sigint_grace_s: float = 30.0,
    sigterm_grace_s: float = 10.0,
    reap_timeout_s: float = 5.0,
) -> bool:
    """Stop an orphaned run's group: SIGINT, then SIGTERM, then SIGKILL, each after a grace period.

    Does nothing unless :func:`find_orphan` recognises the group. Blocking. Returns True when no process
    of the group is left (also when there was none).
    """
    if not find_orphan(pgid, expected_cmdline_marker):
        return not group_alive(pgid)
    for sig, grace in ((signal.SIGINT, sigint_grace_s), (signal.SIGTERM, sigterm_grace_s)):
        if not signal_group(pgid, sig):
            return True
        if wait_group_gone(pgid, grace):
            return True
    return kill_group_and_wait(pgid, reap_timeout_s)
