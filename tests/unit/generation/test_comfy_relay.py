"""How a running prompt's progress ticks become job.progress writes: every tick kept, written in batches."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from orchestrator.comfy import Executed, OutputImage, Preview, Progress
from orchestrator.events.types import EventType
from orchestrator.generation.comfy_relay import ComfyEventRelay
from orchestrator.storage.local import LocalStorage

GRAPH = {"3": {"class_type": "KSampler", "inputs": {}}, "8": {"class_type": "VAEDecode", "inputs": {}}}


class RecordingContext:
    """The slice of a JobContext the relay uses, keeping each write as one batch."""

    def __init__(self) -> None:
        self.job = SimpleNamespace(id=uuid.uuid4())
        self.writes: list[list[tuple[str, Any]]] = []
        self.written = asyncio.Event()

    async def record_progress(self, ticks: Sequence[Mapping[str, Any]]) -> None:
        self.writes.append([("progress", tick["step"]) for tick in ticks])
        self.written.set()

    async def emit(self, event_type: EventType, data: Mapping[str, Any]) -> None:
        self.writes.append([(event_type.value, data["step"])])
        self.written.set()


def _relay(ctx: RecordingContext, tmp_path: Path, *, progress_interval_s: float, previews: bool = False) -> Any:
    return ComfyEventRelay(
        ctx,  # type: ignore[arg-type]
        LocalStorage(tmp_path),
        GRAPH,
        preview_key=f"generations/{ctx.job.id}/preview",
        preview_url="/preview",
        preview_interval_s=0.001 if previews else 0,
        progress_interval_s=progress_interval_s,
    )


def _tick(step: int, total: int = 4, node: str = "3") -> Progress:
    return Progress(step, total, 100.0 * step / total, None, None, node)


async def test_ticks_are_held_for_the_interval_and_the_last_step_goes_at_once_with_them(tmp_path: Path) -> None:
    ctx = RecordingContext()
    relay = _relay(ctx, tmp_path, progress_interval_s=3600)
    for step in (1, 2, 3):
        await relay.on_event(_tick(step))
    assert ctx.writes == []  # held: the interval has not ended (and no write was queued)
    await relay.on_event(_tick(4))  # the sampler's last step
    await asyncio.wait_for(ctx.written.wait(), 5)
    assert ctx.writes == [[("progress", 1), ("progress", 2), ("progress", 3), ("progress", 4)]]
    await relay.close()
    assert len(ctx.writes) == 1


async def test_held_ticks_go_when_the_interval_ends_an_output_node_ran_or_the_run_ends(tmp_path: Path) -> None:
    ctx = RecordingContext()
    relay = _relay(ctx, tmp_path, progress_interval_s=0.05)
    for step in (1, 2, 3):
        await relay.on_event(_tick(step, total=10))
    await asyncio.wait_for(ctx.written.wait(), 5)  # the interval's timer writes them, with no further tick
    assert ctx.writes == [[("progress", 1), ("progress", 2), ("progress", 3)]]
    await relay.close()

    ctx = RecordingContext()
    relay = _relay(ctx, tmp_path, progress_interval_s=3600)
    for step in (1, 2, 3):
        await relay.on_event(_tick(step, total=10))
    await relay.on_event(Executed("9", (OutputImage("9", "a.png", "", "output"),)))
    await relay.on_event(_tick(1, total=10, node="12"))  # a node after the output node's
    await relay.on_event(_tick(2, total=10, node="12"))
    await relay.close()
    assert ctx.writes == [[("progress", 1), ("progress", 2), ("progress", 3)], [("progress", 1), ("progress", 2)]]


async def test_a_zero_interval_writes_each_tick_at_once(tmp_path: Path) -> None:
    ctx = RecordingContext()
    relay = _relay(ctx, tmp_path, progress_interval_s=0)
    for step in (1, 2, 3):
        await relay.on_event(_tick(step, total=3))
    await relay.close()
    assert ctx.writes == [[("progress", 1)], [("progress", 2)], [("progress", 3)]]


async def test_a_preview_goes_after_the_ticks_before_it(tmp_path: Path) -> None:
    ctx = RecordingContext()
    relay = _relay(ctx, tmp_path, progress_interval_s=3600, previews=True)
    await relay.on_event(_tick(1))
    await relay.on_event(_tick(2))
    await relay.on_event(Preview(b"\x89PNG not really", "image/png", "3"))
    await relay.close()
    assert ctx.writes == [[("progress", 1), ("progress", 2)], [("job.preview", 2)]]


async def test_an_aborted_relay_writes_nothing_more(tmp_path: Path) -> None:
    ctx = RecordingContext()
    relay = _relay(ctx, tmp_path, progress_interval_s=0.01)
    for step in (1, 2, 3):  # held for 0.01 s
        await relay.on_event(_tick(step, total=10))
    await relay.abort()
    written = list(ctx.writes)
    ctx.written.clear()
    late = asyncio.ensure_future(ctx.written.wait())
    done, _ = await asyncio.wait([late], timeout=0.1)  # the interval (0.01 s) has passed ten times over
    late.cancel()
    assert not done
    assert ctx.writes == written
    assert written == []  # a cancelled run's held ticks are dropped
