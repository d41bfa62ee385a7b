"""Trainings through the API with the stand-in trainer: events, publishing, cancel, resume, failures."""

from __future__ import annotations

import asyncio
import hashlib
import io
import time
import uuid
from typing import Any

import aiohttp
import pytest
from PIL import Image

from orchestrator.loras.registry import resolve_lora
from tests.integration.conftest import Caller, new_caller
from tests.integration.training.conftest import BASE_MODEL, TrainingService, create_subject, face_photos, submit, upload
from tests.support.db import wait_for_terminal, wait_until
from tests.support.sse import SseEvent, collect
from trainer.provenance import read_metadata
from trainer.supervisor_process import group_alive


async def _get(http: aiohttp.ClientSession, svc: TrainingService, caller: Caller, path: str) -> Any:
    async with http.get(svc.url + path, headers=caller.headers) as response:
        assert response.status == 200, await response.text()
        return await response.json()


async def _download(http: aiohttp.ClientSession, svc: TrainingService, caller: Caller, url: str) -> bytes:
    async with http.get(svc.url + url, headers=caller.headers) as response:
        assert response.status == 200, await response.text()
        return await response.read()


async def _subject_with_photos(
    http: aiohttp.ClientSession, svc: TrainingService, caller: Caller, count: int, **subject: Any
) -> dict[str, Any]:
    created = await create_subject(http, svc, caller, **subject)
    photos = [(f"p{i}.jpg", data) for i, data in enumerate(face_photos()[:count])]
    result = await upload(http, svc, caller, created["id"], photos)
    assert result["accepted"] == count, result
    return created


def _of(events: list[SseEvent], event_type: str, **match: Any) -> list[dict[str, Any]]:
    return [e.data for e in events if e.event == event_type and all(e.data.get(k) == v for k, v in match.items())]


async def _check_events(
    http: aiohttp.ClientSession, svc: TrainingService, caller: Caller, events: list[SseEvent]
) -> dict[str, Any]:
    kinds = [e.event for e in events]
    assert kinds[0] == "job.queued", kinds
    assert kinds[-1] == "job.succeeded", kinds
    dataset = _of(events, "job.progress", stage="dataset")
    assert (dataset[-1]["step"], dataset[-1]["total"], dataset[-1]["images"]) == (2, 2, 2)
    train = [p for p in _of(events, "job.progress", stage="train") if p["step"] > 0]
    assert [p["step"] for p in train] == [1, 2, 3, 4, 5, 6]
    assert all(p["total"] == 6 and isinstance(p["loss"], float) for p in train)
    assert all(p["eta_s"] >= 0 and p["it_per_s"] > 0 for p in train[1:])
    assert train[-1]["percent"] == 100.0
    samples = _of(events, "job.artifact", kind="sample")
    assert [s["step"] for s in samples] == [3, 6]  # sampled at every save by default
    sample = samples[0]
    assert sample["prompt"] == "zxq, portrait, studio light"  # the trigger word was added
    image = await _download(http, svc, caller, sample["url"])
    assert hashlib.sha256(image).hexdigest() == sample["sha256"]
    assert Image.open(io.BytesIO(image)).format == "PNG"
    assert [c["step"] for c in _of(events, "job.artifact", kind="checkpoint")] == [3, 6]
    [lora] = _of(events, "job.artifact", kind="lora")
    return lora


async def test_a_training_streams_progress_and_samples_then_publishes_a_lora_with_provenance(
    training_service: TrainingService, http: aiohttp.ClientSession, me: Caller
) -> None:
    svc = training_service
    subject = await _subject_with_photos(http, svc, me, 2, name="Ada Lovelace")
    status, accepted = await submit(
        http, svc, me, subject["id"], save_every_n_steps=3, sample_prompts=["portrait, studio light"]
    )
    assert status == 202, accepted
    events = await collect(http, svc.url + accepted["events_url"], headers=me.headers)
    lora = await _check_events(http, svc, me, events)
    training = await _get(http, svc, me, f"/v1/trainings/{accepted['id']}")
    assert training["status"] == "succeeded"
    assert training["lora"]["version"] == 1
    assert training["run"]["resumable"]
    assert training["run"]["dataset_images"] == 2
    assert training["run"]["pid"] is None
    data = await _download(http, svc, me, lora["url"])
    assert hashlib.sha256(data).hexdigest() == lora["sha256"] == training["lora"]["sha256"]
    published = svc.settings.models_dir / "loras" / lora["comfy_name"]
    assert published.read_bytes() == data
    assert lora["comfy_name"] == f"{subject['id']}/v1/Ada-Lovelace.safetensors"
    metadata = read_metadata(published)
    expected = {
        "atelier_subject_id": subject["id"],
        "atelier_consent_sha256": subject["consent_sha256"],
        "atelier_dataset_manifest_sha256": training["run"]["manifest_sha256"],
        "atelier_base_model": BASE_MODEL,
        "atelier_base_model_sha256": hashlib.sha256(
            (svc.settings.models_dir / "checkpoints" / BASE_MODEL).read_bytes()
        ).hexdigest(),
        "atelier_trigger_word": "zxq",
        "atelier_training_job_id": accepted["id"],
        "ss_steps": "6",
    }
    assert {k: metadata.get(k) for k in expected} == expected
    registry = await _get(http, svc, me, f"/v1/loras/{lora['lora_id']}")
    assert registry["versions"][0]["metadata"] == metadata
    assert registry["versions"][0]["samples"] == [
        {"url": s["url"], "step": s["step"], "prompt": s["prompt"]} for s in _of(events, "job.artifact", kind="sample")
    ]
    assert registry["trigger_word"] == "zxq"
    assert registry["base_family"] == "sd15"
    found = await resolve_lora(svc.engine, me.owner_id, "Ada-Lovelace", None)  # type: ignore[arg-type]
    assert found is not None
    assert (found.version, found.comfy_name, found.sha256) == (
        1,
        lora["comfy_name"],
        lora["sha256"],
    )
    assert await resolve_lora(svc.engine, me.owner_id, lora["lora_id"], 1) == found  # type: ignore[arg-type]
    assert await resolve_lora(svc.engine, me.owner_id, "Ada-Lovelace", 2) is None  # type: ignore[arg-type]
    stranger = await new_caller(svc.engine, f"stranger-{uuid.uuid4().hex[:6]}")
    assert await resolve_lora(svc.engine, stranger.owner_id, "Ada-Lovelace", None) is None  # type: ignore[arg-type]
    for path in (f"/v1/loras/{lora['lora_id']}", lora["url"], f"/v1/trainings/{accepted['id']}"):
        async with http.get(svc.url + path, headers=stranger.headers) as response:
            assert response.status == 404, path


async def _train_step_reached(svc: TrainingService, job_id: str, step: int) -> None:
    await wait_until(
        svc.database_url,
        "SELECT EXISTS (SELECT 1 FROM job_events WHERE job_id = $1 AND type = 'job.progress' "
        "AND data->>'stage' = 'train' AND (data->>'step')::int >= $2)",
        uuid.UUID(job_id),
        step,
        timeout_s=30,
    )


async def _row(svc: TrainingService, sql: str, *args: Any) -> Any:
    from sqlalchemy import text

    async with svc.engine.connect() as conn:
        params = {f"p{i}": a for i, a in enumerate(args)}
        return (await conn.execute(text(sql), params)).mappings().first()


async def test_cancel_stops_the_process_group_fast_and_resume_continues_from_the_saved_step(
    training_service: TrainingService, http: aiohttp.ClientSession, me: Caller, monkeypatch: pytest.MonkeyPatch
) -> None:
    svc = training_service
    subject = await _subject_with_photos(http, svc, me, 1)
    monkeypatch.setenv("FAKE_SD_STEP_DELAY", "0.2")
    status, accepted = await submit(http, svc, me, subject["id"], steps=30, save_every_n_steps=5)
    assert status == 202, accepted
    await _train_step_reached(svc, accepted["id"], 7)
    run = await _row(svc, "SELECT pgid FROM training_runs WHERE job_id = :p0", uuid.UUID(accepted["id"]))
    assert run["pgid"]
    assert group_alive(run["pgid"])
    started = time.monotonic()
    async with http.post(f"{svc.url}/v1/trainings/{accepted['id']}/cancel", headers=me.headers) as response:
        assert response.status == 202
    await wait_for_terminal(svc.database_url, [uuid.UUID(accepted["id"])], timeout_s=15)
    assert time.monotonic() - started < 10
    cancelled = await _get(http, svc, me, f"/v1/trainings/{accepted['id']}")
    assert cancelled["status"] == "cancelled"
    assert cancelled["run"]["resumable"]
    assert not group_alive(run["pgid"])
    saved_step = cancelled["run"]["last_step"]
    assert saved_step >= 5
    assert saved_step % 5 == 0

    monkeypatch.setenv("FAKE_SD_STEP_DELAY", "0")
    async with http.post(f"{svc.url}/v1/trainings/{accepted['id']}/resume", headers=me.headers) as response:
        assert response.status == 202, await response.text()
        resumed = await response.json()
    events = await collect(http, svc.url + resumed["events_url"], headers=me.headers)
    assert events[-1].event == "job.succeeded", events[-1]
    train = _of(events, "job.progress", stage="train")
    assert [p["step"] for p in train] == list(range(saved_step, 31))
    assert not _of(events, "job.progress", stage="dataset")  # the earlier run's dataset is reused
    again = await _get(http, svc, me, f"/v1/trainings/{resumed['id']}")
    assert again["resumed_from"] == accepted["id"]
    assert again["lora"]["version"] == 1
    assert again["run"]["manifest_sha256"] == cancelled["run"]["manifest_sha256"]
    metadata = (await _get(http, svc, me, f"/v1/loras/{again['lora']['lora_id']}"))["versions"][0]["metadata"]
    assert '"resumed_from":"' + accepted["id"] in metadata["atelier_training_parameters"]
    async with http.post(f"{svc.url}/v1/trainings/{resumed['id']}/resume", headers=me.headers) as response:
        assert response.status == 409  # succeeded: nothing to resume


@pytest.mark.parametrize(
    ("knob", "value", "error_class"),
    [("FAKE_SD_FAIL", "unknown_arg", "bad_arguments"), ("FAKE_SD_NO_OUTPUT", "1", "no_output")],
)
async def test_failures_are_classified_and_without_a_saved_state_there_is_no_resume(
    training_service: TrainingService,
    http: aiohttp.ClientSession,
    me: Caller,
    monkeypatch: pytest.MonkeyPatch,
    knob: str,
    value: str,
    error_class: str,
) -> None:
    svc = training_service
    subject = await _subject_with_photos(http, svc, me, 1)
    monkeypatch.setenv(knob, value)
    status, accepted = await submit(http, svc, me, subject["id"], save_every_n_steps=3)
    assert status == 202
    await wait_for_terminal(svc.database_url, [uuid.UUID(accepted["id"])], timeout_s=30)
    failed = await _get(http, svc, me, f"/v1/trainings/{accepted['id']}")
    assert failed["status"] == "failed"
    assert failed["attempts"] == 1
    assert (failed["error"]["class"], failed["error"]["retryable"]) == (error_class, False)
    assert failed["lora"] is None
    models = svc.settings.models_dir / "loras" / subject["id"]
    assert not await asyncio.to_thread(models.exists)
    if error_class == "bad_arguments":
        async with http.post(f"{svc.url}/v1/trainings/{accepted['id']}/resume", headers=me.headers) as response:
            assert response.status == 409
            assert "no state" in (await response.json())["detail"]


async def test_a_retry_continues_from_the_state_its_first_attempt_saved(
    training_service: TrainingService, http: aiohttp.ClientSession, me: Caller, monkeypatch: pytest.MonkeyPatch
) -> None:
    svc = training_service
    subject = await _subject_with_photos(http, svc, me, 1)
    monkeypatch.setenv("FAKE_SD_FAIL", "crash")  # a retryable failure, at step 5 of every attempt
    monkeypatch.setenv("FAKE_SD_FAIL_AT_STEP", "5")
    status, accepted = await submit(http, svc, me, subject["id"], save_every_n_steps=3)
    assert status == 202
    events = await collect(http, svc.url + accepted["events_url"], headers=me.headers)
    kinds = [e.event for e in events]
    assert kinds.count("job.retrying") == 1, kinds
    assert kinds[-1] == "job.failed"
    split = kinds.index("job.retrying")
    first, second = events[:split], events[split:]
    assert [p["step"] for p in _of(first, "job.progress", stage="train")] == [0, 1, 2, 3, 4]
    assert [p["step"] for p in _of(second, "job.progress", stage="train")] == [3, 4]  # resumed at the saved step
    assert not _of(second, "job.progress", stage="dataset")  # the first attempt's dataset is reused
    assert events[split].data["error"]["class"] == "crashed"
    error = events[-1].data["error"]
    assert (error["class"], error["retryable"], error["last_step"]) == ("crashed", True, 4)
