"""Running a command's coroutine so that Ctrl-C always ends it.

``asyncio.run`` answers Ctrl-C by cancelling the main task once. A cancellation that something below
swallows (a library's timeout racing the cancel, a cleanup that retries) then leaves the command running:
once in CI, ``atelier watch`` kept its display going for the 30 s the test waited after Ctrl-C. Here the task
is cancelled again every :data:`RECANCEL_S` until it has stopped, and the caller gets ``KeyboardInterrupt``.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")

RECANCEL_S = 0.5  # time the work gets to clean up after each cancel before the next one


def run_interruptibly(work: Coroutine[Any, Any, T]) -> T:
    """Run ``work`` on a fresh event loop; Ctrl-C (SIGINT) cancels it until it stops -> ``KeyboardInterrupt``."""
    interrupted: list[bool] = []

    async def main() -> T:
        loop = asyncio.get_running_loop()
        task = asyncio.current_task()

        def cancel_until_stopped() -> None:
            if task is not None and not task.done():
                task.cancel()
                loop.call_later(RECANCEL_S, cancel_until_stopped)

        def on_sigint() -> None:
            interrupted.append(True)
            cancel_until_stopped()

        try:
            loop.add_signal_handler(signal.SIGINT, on_sigint)
        except (NotImplementedError, RuntimeError, ValueError):  # no signal handlers here (Windows, a thread)
            return await work
        try:
            return await work
        finally:
            loop.remove_signal_handler(signal.SIGINT)

    try:
        return asyncio.run(main())
    except asyncio.CancelledError:
        if interrupted:
            raise KeyboardInterrupt from None
        raise
