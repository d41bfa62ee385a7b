"""Erasure of a subject (files, rows, running trainings; the audit row stays) and orphaned run groups."""

from __future__ import annotations

import asyncio
import json
import sys
import uuid
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from sqlalchemy import text

from orchestrator.jobs.records import NewJob
from orchestrator.jobs.store import JobStore
from orchestrator.training.orphans import HOST, launch_marker, sweep_orphans
from orchestrator.training.training_services import TrainingServices
from tests.integration.conftest import Caller
from tests.integration.training.conftest import TrainingService, create_subject, face_photos, submit, upload
from tests.support.db import wait_for_terminal, wait_until
from trainer.supervisor_process import group_alive


async def _scalar(svc: TrainingService, sql: str, **params: Any) -> Any:
    async with svc.engine.connect() as conn:
        return (await conn.execute(text(sql), params)).scalar()


def _storage(svc: TrainingService) -> Path:
    return Path(svc.settings.storage_url.removeprefix("file://"))


async def test_erasure_stops_trainings_removes_files_and_rows_and_keeps_an_audit_row(
    training_service: TrainingService, http: aiohttp.ClientSession, me: Caller, monkeypatch: pytest.MonkeyPatch
) -> None:
    svc, services = training_service, TrainingServices.create(training_service.settings)
    subject = await create_subject(http, svc, me, name="Erase Me Please", trigger_word="ersq")
    sid = subject["id"]
    await upload(http, svc, me, sid, [("a.jpg", face_photos()[0]), ("b.jpg", face_photos()[1])])
    status, done = await submit(http, svc, me, sid, save_every_n_steps=3)
    assert status == 202
    await wait_for_terminal(svc.database_url, [uuid.UUID(done["id"])])
    lora_id = await _scalar(svc, "SELECT id FROM loras WHERE subject_id = :s", s=uuid.UUID(sid))
    comfy_name = await _scalar(svc, "SELECT comfy_name FROM lora_versions WHERE lora_id = :l", l=lora_id)
    monkeypatch.setenv("FAKE_SD_STEP_DELAY", "0.2")
    status, running = await submit(http, svc, me, sid, steps=200, save_every_n_steps=50)
    assert status == 202
    await wait_until(
        svc.database_url,
        "SELECT EXISTS (SELECT 1 FROM training_runs WHERE job_id = $1 AND pgid IS NOT NULL)",
        uuid.UUID(running["id"]),
    )
    pgid = await _scalar(svc, "SELECT pgid FROM training_runs WHERE job_id = :j", j=uuid.UUID(running["id"]))
    paths = [
        _storage(svc) / "subjects" / sid,
        _storage(svc) / "trainings" / done["id"],
        _storage(svc) / "loras" / str(lora_id),
        svc.settings.models_dir / "loras" / comfy_name,
        services.run_dir(uuid.UUID(done["id"])),
        services.run_dir(uuid.UUID(running["id"])),
    ]
    assert all(p.exists() for p in paths)

    async with http.delete(f"{svc.url}/v1/subjects/{sid}", headers=me.headers) as response:
        assert response.status == 202
        erasure = await response.json()
    async with http.delete(f"{svc.url}/v1/subjects/{sid}", headers=me.headers) as response:
        if response.status == 202:  # still pending: the same job
            assert (await response.json())["id"] == erasure["id"]
        else:  # already done
            assert response.status == 404
    status, problem = await submit(http, svc, me, sid)
    assert status in (409, 422), problem  # no new training for a subject being erased (or gone)
    await wait_for_terminal(svc.database_url, [uuid.UUID(erasure["id"])], timeout_s=60)
    job = await _scalar(svc, "SELECT status FROM jobs WHERE id = :j", j=uuid.UUID(erasure["id"]))
    assert job == "succeeded"

    assert not group_alive(pgid)
    assert [p for p in paths if p.exists()] == []
    assert not (svc.settings.models_dir / "loras" / sid).exists()
    for table, column in [("subjects", "id"), ("photos", "subject_id"), ("loras", "subject_id")]:
        assert await _scalar(svc, f"SELECT count(*) FROM {table} WHERE {column} = :s", s=uuid.UUID(sid)) == 0
    jobs = [uuid.UUID(done["id"]), uuid.UUID(running["id"])]
    assert await _scalar(svc, "SELECT count(*) FROM jobs WHERE id = ANY(:j)", j=jobs) == 0
    assert await _scalar(svc, "SELECT count(*) FROM lora_versions WHERE lora_id = :l", l=lora_id) == 0
    async with svc.engine.connect() as conn:
        audit = (await conn.execute(text("SELECT * FROM erasures WHERE subject_id = :s"), {"s": uuid.UUID(sid)})).one()
    assert audit.completed_at is not None
    assert audit.job_id == uuid.UUID(erasure["id"])
    removed = audit.removed
    assert (removed["photos"], removed["training_jobs"], removed["loras"], removed["lora_versions"]) == (2, 2, 1, 1)
    assert removed["trainings_stopped"] == 1
    record = json.dumps([str(v) for v in audit])
    assert "Erase Me" not in record
    assert "ersq" not in record
    async with http.get(f"{svc.url}/v1/subjects/{sid}", headers=me.headers) as response:
        assert response.status == 404


async def test_a_lingering_run_group_is_ended_and_a_reused_group_id_left_alone(
    training_service: TrainingService, http: aiohttp.ClientSession, me: Caller, tmp_path: Path
) -> None:
    svc, services = training_service, TrainingServices.create(training_service.settings)
    subject = await create_subject(http, svc, me)
    async with JobStore(svc.engine) as store:
        jobs = [NewJob(owner_id=me.owner_id, kind="orphan-probe", payload={}) for _ in range(2)]  # type: ignore[arg-type]
        for job in jobs:
            await store.create(job)
    runs: list[tuple[uuid.UUID, asyncio.subprocess.Process]] = []
    for index, (job, marked) in enumerate(zip(jobs, (True, False), strict=True)):
        run_dir = tmp_path / f"run{index}"
        argv = [sys.executable, "-c", "import sys, time; time.sleep(60)"]
        args = [*argv, launch_marker(run_dir)] if marked else argv
        process = await asyncio.create_subprocess_exec(*args, start_new_session=True)
        runs.append((job.id, process))
        async with svc.engine.begin() as conn:
            await conn.execute(
                text(
                    "INSERT INTO training_runs (job_id, subject_id, run_dir, host, pid, pgid) "
                    "VALUES (:j, :s, :d, :h, :p, :p)"
                ),
                {"j": job.id, "s": uuid.UUID(subject["id"]), "d": str(run_dir), "h": HOST, "p": process.pid},
            )
    try:
        assert await sweep_orphans(svc.engine, services.supervisor_options()) >= 2
        (ours, orphan), (_, stranger) = runs
        assert await asyncio.wait_for(orphan.wait(), 10) != 0  # ended by SIGINT
        assert stranger.returncode is None  # its command line is not our run's: left alone
        assert await _scalar(svc, "SELECT pgid FROM training_runs WHERE job_id = :j", j=ours) is None
    finally:
        for _, process in runs:
            if process.returncode is None:
                process.kill()
            await process.wait()
