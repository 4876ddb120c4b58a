"""Imports with worker processes: the same rows, ids and problems as in one process."""

import json
import multiprocessing
import os
from functools import partial

import importgolden
import pytest
from importgolden import DATA, describe, fixtures, fresh_db, golden_for, import_path

from gazeback.imports import importers
from gazeback.imports.importers import Rejected, WorkerDied, import_file

PARALLEL = [p for p in fixtures() if p.suffix in (".har", ".mitm")]


@pytest.fixture
def two_workers(monkeypatch):
    monkeypatch.setattr(importers, "CHUNK", 3)  # several pieces even for small fixtures
    monkeypatch.setattr(importgolden, "import_file", partial(import_file, workers=2))


@pytest.mark.parametrize("path", [pytest.param(p, id=p.name) for p in PARALLEL])
def test_workers_match_the_golden_files(path, two_workers):
    db = fresh_db()
    import_path(db, path)
    assert describe(db) == json.loads(golden_for(path).read_text())


@pytest.mark.parametrize("name", ["not-a-har.har", "cut-short.har", "not-a-dump.mitm"])
def test_workers_reject_like_one_process(name, two_workers):
    db = fresh_db()
    before = describe(db)
    with pytest.raises(Rejected):
        import_path(db, DATA / name)
    assert describe(db) == before


def _die(*args):
    os._exit(3)


@pytest.mark.skipif("fork" not in multiprocessing.get_all_start_methods(), reason="needs fork")
def test_a_dead_worker_stops_the_import_and_stores_nothing(monkeypatch, two_workers):
    monkeypatch.setattr(importers, "_work", _die)  # forked workers see the patched module
    db = fresh_db()
    before = describe(db)
    with pytest.raises(WorkerDied, match="browse.mitm: a worker process importing it died"):
        import_path(db, DATA / "browse.mitm")
    assert describe(db) == before


def test_spawned_workers_get_the_index_and_profile(monkeypatch, two_workers):
    monkeypatch.setattr(importers, "START_METHOD", "spawn")  # what platforms without fork use
    path = DATA / "browse.mitm"
    db = fresh_db()
    import_path(db, path)
    assert describe(db) == json.loads(golden_for(path).read_text())
