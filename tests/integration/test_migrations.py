"""Migrations: idempotent, and exactly the schema the models describe."""

from __future__ import annotations

from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection

from orchestrator.db.engine import alembic_config, create_engine, migrate
from orchestrator.db.models import Base


def _head(database_url: str) -> str:
    """The newest revision of the chain (one head: two would make this raise)."""
    head = ScriptDirectory.from_config(alembic_config(database_url)).get_current_head()
    assert head is not None
    return head


def _differences(connection: Connection) -> list[Any]:
    return list(compare_metadata(MigrationContext.configure(connection), Base.metadata))


async def test_migrate_is_idempotent_and_matches_the_models(fresh_database_url: str) -> None:
    await migrate(fresh_database_url)  # already migrated once by the fixture: a second run changes nothing
    await migrate(fresh_database_url)
    engine = create_engine(fresh_database_url, pool_size=1)
    try:
        async with engine.connect() as conn:
            assert await conn.run_sync(_differences) == []
            version = await conn.exec_driver_sql("SELECT version_num FROM alembic_version")
            assert version.scalar_one() == _head(fresh_database_url)
    finally:
        await engine.dispose()
