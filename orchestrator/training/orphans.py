"""Training processes that outlived their supervisor: found by their recorded process group, then ended.

A run's process group id and host are recorded when it starts. When the job runs again (a retry, or the
reaper requeued it after its worker died) the earlier attempt's group, if still alive on this host and
still running this run's command line, is stopped before anything else happens. At start-up, runs whose
job is no longer running but which still record a process are swept the same way.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncEngine

from orchestrator.db.models import TrainingRun
from orchestrator.jobs.kinds import JobFailed
from orchestrator.training.run_queries import lingering_runs, update_run
from trainer.config import RunLayout
from trainer.supervisor import SupervisorOptions
from trainer.supervisor_process import find_orphan, terminate_orphan_group

log = logging.getLogger(__name__)

HOST = socket.gethostname()


def launch_marker(run_dir: Path) -> str:
    """What only this run's command line contains (its config file path; see LaunchSpec.cmdline_marker)."""
    return str(RunLayout(run_dir).config_file)


async def end_orphan(engine: AsyncEngine, run: TrainingRun, options: SupervisorOptions) -> None:
    """Stop a previous attempt's process group if it is still alive here; JobFailed (retryable) if it stays."""
    if run.pgid is None:
        return
    if run.host != HOST:
        log.warning("training %s: its last process ran on %s, not here; it cannot be checked", run.job_id, run.host)
        await update_run(engine, run.job_id, pid=None, pgid=None)
        return
    marker = launch_marker(Path(run.run_dir))
    if not await asyncio.to_thread(find_orphan, run.pgid, marker):
        await update_run(engine, run.job_id, pid=None, pgid=None)  # gone, or the id now belongs to another program
        return
    gone = await asyncio.to_thread(
        terminate_orphan_group,
        run.pgid,
        marker,
        sigint_grace_s=options.sigint_grace_s,
        sigterm_grace_s=options.sigterm_grace_s,
    )
    if not gone:
        raise JobFailed("orphan_alive", f"process group {run.pgid} of an earlier attempt would not end", retryable=True)
    log.info("training %s: ended the earlier attempt's process group %d", run.job_id, run.pgid)
    await update_run(engine, run.job_id, pid=None, pgid=None)


async def sweep_orphans(engine: AsyncEngine, options: SupervisorOptions) -> int:
    """End the processes of runs on this host whose jobs are no longer running; returns how many runs."""
    runs = await lingering_runs(engine, HOST)
    for run in runs:
        try:
            await end_orphan(engine, run, options)
        except JobFailed as exc:
            log.error("training %s: %s", run.job_id, exc.message)
    return len(runs)
