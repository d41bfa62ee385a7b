"""Issue 8, items 6 and 8: an erasure is accepted in one statement with its job and job.queued; erasures.job_id is a
foreign key; concurrent requests agree on one erasure; an Idempotency-Key replays the first answer."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import aiohttp
import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from orchestrator.db.engine import create_engine
from orchestrator.training.subjects import erasure_job, request_erasure
from tests.integration.conftest import Caller
from tests.integration.training.conftest import BASE_MODEL, TrainingService, create_subject, face_photos, upload
from tests.support.db import wait_for_terminal
from tests.support.service import running_owner

_TX_LOG = """
CREATE TABLE tx_log (tbl text, txid bigint);
CREATE FUNCTION log_tx() RETURNS trigger LANGUAGE plpgsql AS
    $$ BEGIN INSERT INTO tx_log VALUES (TG_TABLE_NAME, txid_current()); RETURN NULL; END $$;
CREATE TRIGGER erasures_tx AFTER INSERT ON erasures FOR EACH ROW EXECUTE FUNCTION log_tx();
CREATE TRIGGER jobs_tx AFTER INSERT ON jobs FOR EACH ROW EXECUTE FUNCTION log_tx();
"""


async def _subject(engine: AsyncEngine, owner: uuid.UUID) -> uuid.UUID:
    subject_id = uuid.uuid4()
    async with engine.begin() as conn:
        await conn.execute(
            text(
                "INSERT INTO subjects (id, owner_id, name, kind, trigger_word, consent, consent_sha256) "
                "VALUES (:id, :o, :n, 'style', 'zq', '{}', 'x')"
            ),
            {"id": subject_id, "o": owner, "n": f"s-{subject_id.hex[:6]}"},
        )
    return subject_id


@pytest.fixture
async def quiet_engine(fresh_database_url: str) -> AsyncIterator[AsyncEngine]:
    """A database of its own with no worker: erasure jobs stay queued."""
    engine = create_engine(fresh_database_url, pool_size=12)
    yield engine
    await engine.dispose()


async def test_the_erasure_row_and_its_job_commit_in_one_transaction(quiet_engine: AsyncEngine) -> None:
    async with quiet_engine.begin() as conn:
        for statement in _TX_LOG.strip().split(";\n"):
            await conn.execute(text(statement))
    owner = await running_owner(quiet_engine)
    subject = await _subject(quiet_engine, owner)
    job_id, created = await request_erasure(quiet_engine, owner, subject, erasure_job(owner, subject, max_attempts=1))
    assert created
    async with quiet_engine.connect() as conn:
        logged = (await conn.execute(text("SELECT tbl, txid FROM tx_log ORDER BY tbl"))).all()
        event = await conn.scalar(text("SELECT type FROM job_events WHERE job_id = :j"), {"j": job_id})
    assert [tbl for tbl, _ in logged] == ["erasures", "jobs"]
    assert logged[0].txid == logged[1].txid, "the erasure and its job were written by two transactions"
    assert event == "job.queued"


async def test_an_erasure_must_point_at_a_job(quiet_engine: AsyncEngine) -> None:
    owner = await running_owner(quiet_engine)
    subject = await _subject(quiet_engine, owner)
    with pytest.raises(IntegrityError):
        async with quiet_engine.begin() as conn:
            await conn.execute(
                text("INSERT INTO erasures (id, owner_id, subject_id, job_id) VALUES (:i, :o, :s, :j)"),
                {"i": uuid.uuid4(), "o": owner, "s": subject, "j": uuid.uuid4()},
            )


async def test_concurrent_erasure_requests_agree_on_one_job(quiet_engine: AsyncEngine) -> None:
    owner = await running_owner(quiet_engine)
    subject = await _subject(quiet_engine, owner)
    answers = await asyncio.gather(
        *(request_erasure(quiet_engine, owner, subject, erasure_job(owner, subject, max_attempts=1)) for _ in range(10))
    )
    assert len({job_id for job_id, _ in answers}) == 1
    assert sum(created for _, created in answers) == 1
    async with quiet_engine.connect() as conn:
        erasures = await conn.scalar(text("SELECT count(*) FROM erasures WHERE subject_id = :s"), {"s": subject})
        jobs = await conn.scalar(text("SELECT count(*) FROM jobs WHERE kind = 'erasure'"))
    assert (erasures, jobs) == (1, 1)


async def test_an_erasure_sent_again_with_its_key_gets_the_first_answer(
    training_service: TrainingService, http: aiohttp.ClientSession, me: Caller
) -> None:
    svc = training_service
    subject = await create_subject(http, svc, me)
    headers = {**me.headers, "Idempotency-Key": f"erase-{subject['id']}"}
    async with http.delete(f"{svc.url}/v1/subjects/{subject['id']}", headers=headers) as response:
        assert response.status == 202
        first = await response.json()
    await wait_for_terminal(svc.database_url, [uuid.UUID(first["id"])])
    async with http.delete(f"{svc.url}/v1/subjects/{subject['id']}", headers=headers) as response:
        assert response.status == 202  # without the key: 404, the subject is gone
        assert await response.json() == first
        assert response.headers["Idempotent-Replayed"] == "true"
    async with http.delete(f"{svc.url}/v1/subjects/{subject['id']}", headers=me.headers) as response:
        assert response.status == 404


async def test_a_training_sent_again_with_its_key_gets_the_first_answer(
    training_service: TrainingService, http: aiohttp.ClientSession, me: Caller
) -> None:
    svc = training_service
    subject = await create_subject(http, svc, me)
    await upload(http, svc, me, subject["id"], [("a.jpg", face_photos()[0])])
    body = {"subject_id": subject["id"], "base_model": BASE_MODEL, "steps": 2, "resolution": 64}
    headers = {**me.headers, "Idempotency-Key": "train-once"}
    answers = []
    for _ in range(2):
        async with http.post(f"{svc.url}/v1/trainings", json=body, headers=headers) as response:
            assert response.status == 202, await response.text()
            answers.append(await response.json())
    assert answers[0] == answers[1]
    async with http.post(f"{svc.url}/v1/trainings", json={**body, "steps": 3}, headers=headers) as response:
        assert response.status == 422
    async with svc.engine.connect() as conn:
        count = await conn.scalar(text("SELECT count(*) FROM jobs WHERE owner_id = :o"), {"o": me.owner_id})
    assert count == 1
