import sqlite3
import time

import sqlite_utils
from mitmproxy.test import tflow

from gazeback.capture.snapshot import snapshot_http
from gazeback.capture.writer import Writer
from gazeback.db.identities import LEAF_FINGERPRINTS_SQL
from gazeback.db.localfiles import spill_path

KEY = b"k" * 32


def snap(n: int):
    f = tflow.tflow(resp=True)
    f.request.url = f"http://tracker.example/{n}?email=a@b.example"
    return snapshot_http(f)


def count(path):
    db = sqlite_utils.Database(path)
    try:
        return db["requests"].count
    finally:
        db.close()


def test_batches_are_visible_within_two_seconds(tmp_path):
    path = tmp_path / "t.db"
    w = Writer(path, KEY, interval=0.2)
    w.start()
    try:
        for i in range(50):
            assert w.submit(snap(i))
        deadline = time.monotonic() + 2
        while count(path) < 50 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert count(path) == 50
    finally:
        w.stop()
    db = sqlite_utils.Database(path)
    cap = list(db["captures"].rows)[0]
    assert (cap["source"], cap["requests_recorded"], cap["requests_failed"]) == ("proxy", 50, 0)
    assert cap["ended_at"] is not None


def test_same_flow_twice_is_stored_once(tmp_path):
    w = Writer(tmp_path / "t.db", KEY)
    w.start()
    s = snap(1)
    w.submit(s)
    w.submit(s)
    w.stop()
    assert count(tmp_path / "t.db") == 1


def test_locked_database_spills_and_next_start_replays(tmp_path):
    path = tmp_path / "t.db"
    w = Writer(path, KEY, interval=0.1, busy_timeout_ms=100)
    w.start()
    blocker = sqlite3.connect(path)
    blocker.execute("BEGIN IMMEDIATE")  # another writer holds the lock: our batch must fail
    for i in range(20):
        w.submit(snap(i))
    w.flush()
    assert w.stats.spilled == 20 and w.stats.store_errors >= 1
    blocker.rollback()
    blocker.close()
    w.stop()
    spill = spill_path(path)
    assert spill.exists() and spill.stat().st_mode & 0o777 == 0o600
    assert "a@b.example" in spill.read_text()  # the query is kept as the db would have had it
    assert count(path) == 0

    w2 = Writer(path, KEY)
    w2.start()
    w2.stop()
    assert w2.stats.replayed == 20 and count(path) == 20
    assert not spill.exists()


def test_processing_error_stores_the_flow_unclassified(tmp_path):
    def broken(s, key):
        raise ValueError("bug")

    w = Writer(tmp_path / "t.db", KEY, process_fn=broken)  # noqa
    w.start()
    w.submit(snap(1))
    w.stop()
    assert w.stats.process_errors == 1
    rows = list(sqlite_utils.Database(tmp_path / "t.db").query("select host, path from requests"))
    assert rows == [{"host": "tracker.example", "path": "/1?email=a@b.example"}]


def test_full_queue_is_counted_not_blocking(tmp_path):
    w = Writer(tmp_path / "t.db", KEY, maxsize=2)  # not started: nothing drains the queue
    assert [w.submit(snap(i)) for i in range(4)] == [True, True, False, False]
    assert w.stats.dropped == 2


def test_a_spilled_record_is_stored_as_the_record_itself_would_be(tmp_path):
    """The spill file is the one place a Record is serialised: encode → JSON → decode must
    write the same rows (request, leaks, leaf fingerprints, ID sightings, device)."""
    import json

    from gazeback.capture import spill
    from gazeback.db import migrations, store
    from gazeback.leaks.needles import build_profile
    from gazeback.models import IdentityValue
    from gazeback.pipeline import Context, process

    f = tflow.tflow(resp=True)
    f.request.url = (
        "http://tracker.example/c?email=a@b.example&cid=5f1c0b8e-2d4a-4c8e-9b1a-3e7d2f6a9c01"
    )
    f.request.headers["user-agent"] = "Mozilla/5.0 (X11; Linux x86_64; rv:120.0) Firefox/120.0"
    f.request.headers["authorization"] = "Bearer abcdefghijklmnopqrstuvwxyz012345"
    profile = build_profile([IdentityValue(1, "email", "a@b.example")])
    record = process(snapshot_http(f), Context(KEY, None, profile))
    assert record.leaks and record.detection is not None and record.detection.candidates
    line = json.dumps(spill.encode(record))
    assert "a@b.example" not in line and "abcdefghijklmnop" not in line  # as the db holds it
    tables = ("requests", "leaks", "leaf_fingerprints", "persistent_id_sightings", "devices")
    stored = []
    for name, rec in (("direct", record), ("spilled", spill.decode(json.loads(line)))):
        db = sqlite_utils.Database(tmp_path / f"{name}.db")
        migrations.apply(db)
        assert store.save_records(db, store.start_capture(db, "proxy", {}), [rec]) == 1
        stored.append({t: list(db.query(f"select * from [{t}]")) for t in tables})
        db.close()
    assert stored[0] == stored[1]
    assert all(stored[0][t] for t in ("requests", "leaks", "leaf_fingerprints", "devices"))


def test_a_spill_file_from_before_the_typed_records_still_replays(tmp_path):
    """Lines as the store wrote them when records were dict items (a processed request with a
    leak and fingerprints, and the minimal row of a flow that failed): same format, replayed."""
    import json

    path = tmp_path / "t.db"
    old = [
        {"device": {"key": "ip:10.0.0.5", "label": "10.0.0.5", "kind": "other"},
         "user_agent": "Mozilla/5.0 (X11; Linux x86_64; rv:120.0) Gecko/20100101 Firefox/120.0",
         "request": {"flow_id": "old-1", "kind": "http", "started_at": "2026-11-30T10:00:00.000Z",
                     "method": "GET", "scheme": "https", "host": "t.example", "port": 443,
                     "path": "/p?em=[leak:email]", "registrable_domain": "t.example",
                     "is_third_party": 1, "tracker_id": None, "status_code": 200,
                     "content_type": None, "request_bytes": 10, "response_bytes": 20,
                     "duration_ms": 1.5, "is_decrypted": 1, "tls_sni": "t.example",
                     "server_ip": None, "error": None, "websocket_messages": None,
                     "websocket_bytes": None, "decode_truncated": 0,
                     "redacted_fields": '["url.query:em"]',
                     "request_headers": '[["accept", "*/*"]]'},
         "leaks": [{"identity_id": 1, "pii_type": "email", "transform_chain": "plain",
                    "location": "url.query:em", "tier": "strong"}],
         "detection": {"leaf_fingerprints": [[123, "url.query:em"]], "candidates": []}},
        {"device": {"key": "ip:10.0.0.5", "label": "10.0.0.5", "kind": "other"},
         "user_agent": None,
         "request": {"flow_id": "old-2", "kind": "http", "started_at": "2026-11-30T10:00:01.000Z",
                     "host": "u.example", "port": None, "is_decrypted": 1, "tracker_id": None,
                     "error": "gazeback could not process this request (see the proxy log)"},
         "leaks": []},
    ]  # fmt: skip
    spill = spill_path(path)
    spill.write_text("".join(json.dumps(line) + "\n" for line in old))
    spill.chmod(0o600)
    w = Writer(path, KEY)
    w.start()
    w.stop()
    assert (w.stats.replayed, w.stats.spill_skipped) == (2, 0) and not spill.exists()
    db = sqlite_utils.Database(path)
    got = list(db.query("select flow_id, path, redacted_fields, h.headers as request_headers, "
                        "error from requests left join header_sets h on h.id = header_set_id "
                        "order by flow_id"))  # fmt: skip
    assert got == [
        {"flow_id": "old-1", "path": "/p?em=[leak:email]", "redacted_fields": '["url.query:em"]',
         "request_headers": '[["accept", "*/*"]]', "error": None},
        {"flow_id": "old-2", "path": None, "redacted_fields": None, "request_headers": None,
         "error": "gazeback could not process this request (see the proxy log)"},
    ]  # fmt: skip
    leaks = list(db.query("select pii_type, location, tier from leaks"))
    assert leaks == [{"pii_type": "email", "location": "url.query:em", "tier": "strong"}]
    assert [(r[1], r[2]) for r in db.execute(LEAF_FINGERPRINTS_SQL)] == [(123, "url.query:em")]
    db.close()


def test_a_device_row_keeps_its_first_and_last_sighting_and_first_browser(tmp_path):
    # Batches arrive out of order (a spill replayed late): the device's first and last seen
    # times widen, never narrow; its browser family is the first one read, never replaced.
    def at(n, when, ua):
        f = tflow.tflow(resp=True)
        f.request.url = f"http://tracker.example/{n}"
        f.request.timestamp_start = when
        f.request.headers["User-Agent"] = ua
        return snapshot_http(f)

    firefox = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"
    curl = "curl/8.5.0"
    path = tmp_path / "t.db"
    for batch in ([at(1, 1_790_000_500, firefox)], [at(2, 1_790_000_900, curl)],
                  [at(3, 1_790_000_100, curl)]):  # fmt: skip
        w = Writer(path, KEY)
        w.start()
        for s in batch:
            w.submit(s)
        w.stop()
    db = sqlite_utils.Database(path)
    rows = list(db.query("select * from devices"))
    assert len(rows) == 1
    row = rows[0]
    assert (row["first_seen_at"], row["last_seen_at"]) == (
        "2026-09-21T14:15:00.000Z", "2026-09-21T14:28:20.000Z",
    )  # fmt: skip
    assert (row["user_agent_family"], row["os_family"]) == ("Firefox", "Linux")


def test_summaries_count_the_persistent_ids_a_batch_reports(tmp_path):
    # An ID-shaped value sent to one destination on two days is reported as a persistent ID
    # (leak rows written while the batch is stored): the dashboards' summaries must count them
    # exactly as a recount from the detail does.
    from gazeback.db import summaries

    def sent(n, day):
        f = tflow.tflow(resp=True)
        f.request.url = f"http://tracker.example/c?uid=9f86d081884c7d659a2feaa0c55ad015&n={n}"
        f.request.timestamp_start = 1_790_000_000 + day * 86_400 + n
        return snapshot_http(f)

    path = tmp_path / "t.db"
    for day in (0, 1, 2):
        w = Writer(path, KEY)
        w.start()
        for n in range(3):
            w.submit(sent(n, day))
        w.stop()
    db = sqlite_utils.Database(path)
    reported = "select count(*) from leaks where pii_type = 'persistent_id'"
    assert db.execute(reported).fetchone()[0] == 9

    def rows():
        return (
            list(db.query("select * from summary_hourly order by 1, 2, 3, 4, 5, 6, 7")),
            list(db.query("select * from summary_leaks order by 1, 2, 3, 4, 5, 6, 7, 8")),
        )

    live = rows()
    assert sum(r["leaks"] for r in live[1]) == db["leaks"].count
    summaries.rebuild(db)
    assert rows() == live
