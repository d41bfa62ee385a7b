# SPDX-License-Identifier: Apache-2.0
"""Named-parameter statements compiled for asyncpg: each name one ``$n``, casts where asked, SQL casts kept."""

from __future__ import annotations

import pytest

from orchestrator.db.direct import Sql


def test_names_become_numbers_in_order_of_first_use_and_repeat_as_the_same_number() -> None:
    sql = Sql("SELECT * FROM jobs WHERE id = :job_id AND (worker_id = :worker_id OR :worker_id IS NULL)")
    assert sql.text == "SELECT * FROM jobs WHERE id = $1 AND (worker_id = $2 OR $2 IS NULL)"
    assert sql.names == ("job_id", "worker_id")
    assert sql.args({"worker_id": "w", "job_id": 7, "unused": 1}) == [7, "w"]


def test_casts_are_added_to_every_use_and_casts_written_in_the_sql_are_left_alone() -> None:
    sql = Sql(
        "SELECT '{}'::jsonb || :data, :ids::uuid[], CAST(:n AS int), 'at 12:30', :data",
        {"data": "jsonb"},
    )
    assert sql.text == "SELECT '{}'::jsonb || $1::jsonb, $2::uuid[], CAST($3 AS int), 'at 12:30', $1::jsonb"
    assert sql.names == ("data", "ids", "n")


def test_a_missing_parameter_is_named() -> None:
    with pytest.raises(KeyError, match="owner_id"):
        Sql("SELECT :owner_id").args({})
