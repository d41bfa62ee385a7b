"""Live progress of one or more jobs with rich: steps, percent, loss, it/s and ETA per job, previews saved.

Each watched job is followed by its own event stream (the SDK resumes it across dropped connections);
``job.preview`` images and training samples are saved under the output folder as they arrive.
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, Progress, TaskID, TextColumn

from atelier_client.async_client import AsyncClient
from atelier_client.errors import ApiError
from atelier_client.events import Event
from atelier_client.models import JobOut


def eta_text(seconds: float | None) -> str:
    """An ETA as h:mm:ss (``--:--`` when unknown)."""
    if seconds is None:
        return "ETA --:--"
    whole = round(seconds)
    return f"ETA {whole // 3600}:{whole % 3600 // 60:02d}:{whole % 60:02d}"


def progress_fields(data: dict[str, Any]) -> dict[str, str]:
    """The text columns of one job.progress event."""
    loss = data.get("loss")
    its = data.get("it_per_s")
    return {
        "steps": f"step {data.get('step', 0)}/{data.get('total', 0)}",
        "percent": f"{data.get('percent') or 0:5.1f}%",
        "loss": f"loss {loss:.4f}" if isinstance(loss, int | float) else "",
        "speed": f"{its:.2f} it/s" if isinstance(its, int | float) else "",
        "eta": eta_text(data.get("eta_s")),
    }


@dataclass
class WatchedJob:
    """One job on the display, and what it produced."""

    job_id: uuid.UUID
    label: str
    task: TaskID
    saved: list[Path] = field(default_factory=list)
    final: JobOut | None = None


def new_progress(console: Console) -> Progress:
    """The display: one line per job."""
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(bar_width=24),
        TextColumn("{task.fields[steps]}"),
        TextColumn("{task.fields[percent]}"),
        TextColumn("{task.fields[loss]}"),
        TextColumn("{task.fields[speed]}"),
        TextColumn("{task.fields[eta]}"),
        TextColumn("{task.fields[state]}"),
        console=console,
        refresh_per_second=8,
    )


class JobWatcher:
    """Follows jobs on a shared display until each has ended."""

    def __init__(self, client: AsyncClient, progress: Progress, out_dir: Path | None) -> None:
        self._client = client
        self._progress = progress
        self._out_dir = out_dir

    def add(self, job_id: uuid.UUID, label: str) -> WatchedJob:
        """Put a job on the display."""
        fields: dict[str, Any] = {"steps": "", "percent": "", "loss": "", "speed": "", "eta": "", "state": "queued"}
        task = self._progress.add_task(label, total=None, **fields)
        return WatchedJob(job_id=job_id, label=label, task=task)

    async def follow(self, watched: WatchedJob) -> JobOut:
        """Show the job's events until it ends; the finished job."""
        async for event in self._client.events(watched.job_id):
            await self._show(watched, event)
        watched.final = await self._client.get_job(watched.job_id)
        return watched.final

    async def _show(self, watched: WatchedJob, event: Event) -> None:
        data = event.data
        if event.type == "job.progress":
            total = data.get("total") or None
            shown: dict[str, Any] = progress_fields(data)
            self._progress.update(watched.task, total=total, completed=data.get("step", 0), **shown)
            self._progress.update(watched.task, state=str(data.get("stage", "")))
        elif event.type in ("job.started", "job.retrying", "job.succeeded", "job.failed", "job.cancelled"):
            state = event.type.removeprefix("job.")
            self._progress.update(watched.task, state=state)
            if event.type == "job.succeeded":
                task = self._progress.tasks[watched.task]
                self._progress.update(watched.task, completed=task.total or 1, total=task.total or 1)
        elif event.type == "job.preview":
            await self._save(watched, str(data["url"]), f"{watched.job_id}-preview.png", "previews")
        elif event.type == "job.artifact" and data.get("kind") == "sample":
            await self._save(watched, str(data["url"]), Path(str(data["url"])).name, "samples")

    async def _save(self, watched: WatchedJob, url: str, name: str, folder: str) -> None:
        if self._out_dir is None:
            return
        dest = self._out_dir / folder / name
        try:
            await self._client.download_url(url, dest)
        except ApiError:
            return  # a preview superseded or gone: the next one will do
        if dest not in watched.saved:
            watched.saved.append(dest)


async def watch_jobs(
    client: AsyncClient, jobs: list[tuple[uuid.UUID, str]], console: Console, out_dir: Path | None
) -> list[WatchedJob]:
    """Follow several jobs at once on one display; their final states."""
    with new_progress(console) as progress:
        watcher = JobWatcher(client, progress, out_dir)
        watched = [watcher.add(job_id, label) for job_id, label in jobs]
        await asyncio.gather(*(watcher.follow(w) for w in watched))
    return watched
