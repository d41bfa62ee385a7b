"""Ctrl-C ends a CLI command even when something below swallows the first cancellation."""

from __future__ import annotations

import asyncio
import os
import signal

import pytest

from atelier_client.cli.interrupt import run_interruptibly

pytestmark = pytest.mark.timeout(20)


async def _swallows_one_cancel(seen: list[str]) -> str:
    asyncio.get_running_loop().call_soon(os.kill, os.getpid(), signal.SIGINT)
    try:
        await asyncio.sleep(60)
    except asyncio.CancelledError:
        seen.append("first cancel swallowed")  # what a library racing its own timeout can do
    try:
        await asyncio.sleep(60)
    except asyncio.CancelledError:
        seen.append("cancelled again")
        raise
    return "ran to the end"


def test_ctrl_c_ends_work_that_swallowed_the_first_cancellation() -> None:
    seen: list[str] = []
    with pytest.raises(KeyboardInterrupt):
        run_interruptibly(_swallows_one_cancel(seen))
    assert seen == ["first cancel swallowed", "cancelled again"]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler, "Ctrl-C handling is given back"


async def _answer() -> int:
    await asyncio.sleep(0)
    return 42


def test_work_without_ctrl_c_returns_its_result() -> None:
    assert run_interruptibly(_answer()) == 42
