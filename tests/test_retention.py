from datetime import UTC, datetime

from gazeback.capture.writer import Writer
from gazeback.db import identities as store_leaks
from gazeback.db import store

KEY = b"k" * 32
NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)


def add(db, rid, day):
    db.table("devices").upsert({"id": 1, "key": "ip:1", "label": "d"}, pk="id")
    db.table("requests").insert(
        {"id": rid, "flow_id": f"f{rid}", "kind": "http", "host": "t.example", "device_id": 1,
         "started_at": f"2026-11-{day:02d}T10:00:00.000Z", "is_decrypted": 1}
    )  # fmt: skip
    db.table("leaks").insert(
        {"request_id": rid, "pii_type": "email", "transform_chain": "plain",
         "location": "url.query:em", "tier": "strong"}
    )  # fmt: skip
    store_leaks.save_leaf_fingerprints(db, rid, [(rid, "x")])


def test_prune_deletes_old_requests_and_what_came_from_them(db):
    for rid, day in ((1, 1), (2, 10), (3, 26), (4, 27)):
        add(db, rid, day)
    assert store.prune(db, 7, now=NOW) == 2
    assert [r["id"] for r in db.table("requests").rows] == [3, 4]
    assert {r["request_id"] for r in db.table("leaks").rows} == {3, 4}
    assert {r["request_id"] for r in db.table("leaf_fingerprints").rows} == {3, 4}
    # the dashboard's summaries agree with what is left
    assert db.execute("select sum(requests), sum(leaks) from summary_hourly").fetchone() == (2, 2)
    assert store.prune(db, 0, now=NOW) == 0  # 0 keeps everything


def test_writer_prunes_at_start(tmp_path):
    import sqlite_utils

    from gazeback.db import migrations

    path = tmp_path / "t.db"
    db = sqlite_utils.Database(path)
    migrations.apply(db)
    add(db, 1, 1)  # 2026-11-01: older than 7 days on any day after 2026-11-08
    db.close()
    w = Writer(path, KEY, keep_days=7)
    w.start()
    w.stop()
    assert sqlite_utils.Database(path).table("requests").count == 0
