"""Shared fixtures: every test run gets its own Postgres database, created and dropped here."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from orchestrator.db.engine import create_engine
from orchestrator.jobs.store import JobStore
from tests.support.db import SERVER_URL, scratch_database  # noqa: F401  (SERVER_URL: the generation engines test)
from tests.support.db import drop_database as _drop_database  # noqa: F401  (the generation engines test)

# Variables that say where the real engines are: engines tests read them; everything else is scrubbed.
ENGINE_LOCATIONS = frozenset(
    {
        "ATELIER_COMFYUI_DIR",
        "ATELIER_COMFYUI_PYTHON",
        "ATELIER_SD_SCRIPTS_DIR",
        "ATELIER_SD_SCRIPTS_PYTHON",
        "ATELIER_SD_SCRIPTS_TOKENIZER_CACHE_DIR",
        "ATELIER_CLIP_BPE",
    }
)


@pytest.fixture(scope="session", autouse=True)
def hermetic_environment() -> Iterator[None]:
    """The service's own configuration in the caller's shell (ATELIER_AUTH, ATELIER_DATABASE_URL, ...)
    must not reconfigure the services the tests start. Runs after collection, so engines tests have
    already read their locations; ATELIER_TEST_* variables are the tests' own and stay."""
    scrubbed = {
        name: os.environ.pop(name)
        for name in list(os.environ)
        if name.startswith("ATELIER_") and not name.startswith("ATELIER_TEST_") and name not in ENGINE_LOCATIONS
    }
    yield
    os.environ.update(scrubbed)


@pytest.fixture(scope="session")
def database_url() -> Iterator[str]:
    """A freshly migrated database for this test run; dropped when the run ends."""
    with scratch_database("run") as url:
        yield url


@pytest.fixture
def fresh_database_url() -> Iterator[str]:
    """A database of its own, for tests that need to be alone with their workers."""
    with scratch_database("solo") as url:
        yield url


@pytest.fixture(scope="session")
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    """A pooled async engine on the run's database."""
    eng = create_engine(database_url, pool_size=5)
    yield eng
    await eng.dispose()


@pytest.fixture(scope="session")
async def store(engine: AsyncEngine) -> AsyncIterator[JobStore]:
    """The job store on the run's database."""
    job_store = JobStore(engine)
    yield job_store
    await job_store.close()


@pytest.fixture
async def owner_id(engine: AsyncEngine) -> uuid.UUID:
    """A new owner, so tests never see each other's rows."""
    from sqlalchemy import text

    new_id = uuid.uuid4()
    async with engine.begin() as conn:
        await conn.execute(
            text("INSERT INTO owners (id, name) VALUES (:id, :name)"), {"id": new_id, "name": f"owner-{new_id}"}
        )
    return new_id
