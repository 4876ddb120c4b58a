"""m039 drops indexes no query uses; every dashboard statement still searches by index
where it did (#19). The statements are the ones bench/storage.py plans: each chart with and
without filters, filter options, canned queries and the linked table pages, as Datasette runs
them."""

from __future__ import annotations

import re
import shutil
import sqlite3
import sys
from pathlib import Path

import pytest

from gazeback.dashboard.demo import generate
from gazeback.db.migrations import UNUSED_INDEXES

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))

import storage  # noqa: E402

_INDEXED = re.compile(
    r"^(?:SEARCH|SCAN) (\S+) USING (?:COVERING )?INDEX|^SEARCH (\S+) USING (?:INTEGER )?PRIMARY"
)


def _indexed_tables(lines: list[str]) -> set[str]:
    return {a or b for line in lines if (m := _INDEXED.match(line)) for a, b in [m.groups()]}


@pytest.fixture(scope="module")
def trails(tmp_path_factory):
    folder = tmp_path_factory.mktemp("indexes")
    after = folder / "trail.db"
    generate(after, days=2, seed=3, scale=4000)
    before = folder / "before.db"
    shutil.copy(after, before)
    for path, indexes in ((before, UNUSED_INDEXES.values()), (after, ())):
        conn = sqlite3.connect(path)
        for sql in indexes:
            conn.execute(sql)
        conn.execute("analyze")  # the same statistics on both sides
        conn.commit()
        conn.close()
    return before, after


def test_m039_dropped_the_unused_indexes(trails):
    _, after = trails
    conn = sqlite3.connect(after)
    names = {r[0] for r in conn.execute("select name from sqlite_master where type = 'index'")}
    conn.close()
    assert UNUSED_INDEXES and not names & set(UNUSED_INDEXES)
    assert {"idx_requests_host_started_at", "idx_requests_tracker_id_started_at"} <= names
    # leaf fingerprints are looked up by fingerprint: the key of their WITHOUT ROWID table (m042)
    sql = conn_sql(after, "leaf_fingerprints")
    assert "without rowid" in sql.lower() and "primary key (fingerprint," in sql.lower()


def conn_sql(path, table):
    conn = sqlite3.connect(path)
    try:
        return conn.execute("select sql from sqlite_master where name = ?", [table]).fetchone()[0]
    finally:
        conn.close()


def test_dashboard_plans_still_use_indexes_where_they_did(trails):
    before, after = trails
    statements = storage.dashboard_statements(after)
    planned_before = dict(storage.plans(before, statements))
    planned_after = dict(storage.plans(after, statements))
    assert len(planned_after) > 100
    for sql, lines in planned_before.items():
        lost = _indexed_tables(lines) - _indexed_tables(planned_after[sql])
        assert not lost, f"{sql[:120]!r} no longer searches {lost} by index"
