import sqlite_utils

from gazeback.db import migrations
from gazeback.db.views import VIEWS

TRAIL = [
    "request_id", "started_at", "device", "host", "registrable_domain", "company", "category",
    "is_tracker", "is_third_party", "is_decrypted", "leak_count",
]  # fmt: skip
LEAK_REPORT = [
    "request_id", "started_at", "device", "host", "company", "pii_type", "transform_chain",
    "location", "tier",
]  # fmt: skip


def test_apply_twice_is_a_no_op(db):
    before = db.schema
    migrations.apply(db)
    assert db.schema == before


def test_each_step_applies_on_the_one_before():
    names = [m.name for m in migrations.migrations._migrations]
    for i, name in enumerate(names):
        db = sqlite_utils.Database(memory=True)
        migrations.migrations.apply(db, stop_before=name)
        assert [m.name for m in migrations.migrations.applied(db)] == names[:i]
        migrations.apply(db)
        assert [m.name for m in migrations.migrations.applied(db)] == names


def test_contract_tables_and_columns(db):
    assert {"captures", "devices", "requests", "companies", "trackers", "tracker_domains",
            "identities", "leaks"} <= set(db.table_names())  # fmt: skip
    assert set(VIEWS) <= set(db.view_names())
    requests = set(db["requests"].columns_dict)
    assert {
        "id", "capture_id", "device_id", "started_at", "method", "scheme", "host", "port", "path",
        "registrable_domain", "is_third_party", "tracker_id", "status_code", "request_bytes",
        "response_bytes", "is_decrypted",
    } <= requests  # fmt: skip
    assert {"request_id", "identity_id", "pii_type", "transform_chain", "location", "tier"} <= set(
        db["leaks"].columns_dict
    )


def test_views_have_the_contract_columns(db):
    trail = list(db["trail"].columns_dict)
    assert [c for c in trail if c in TRAIL] == TRAIL
    report = list(db["leak_report"].columns_dict)
    assert [c for c in report if c in LEAK_REPORT] == LEAK_REPORT


def test_trail_joins_company_owner_and_leaks(db):
    db["companies"].insert_all(
        [{"id": "alphabet", "name": "Alphabet", "country": "US"},
         {"id": "google", "name": "Google", "parent_id": "alphabet", "owner_id": "alphabet",
          "country": "US"}]
    )  # fmt: skip
    db["trackers"].insert(
        {"id": "google_analytics", "name": "Google Analytics", "company_id": "google",
         "category": "analytics", "is_tracker": 1}
    )  # fmt: skip
    db["devices"].insert({"id": 1, "key": "user:phone", "label": "phone"})
    db["requests"].insert(
        {"id": 7, "flow_id": "f", "device_id": 1, "kind": "http", "host": "www.google-analytics.com",
         "started_at": "2026-11-27T10:00:00.000Z", "tracker_id": "google_analytics",
         "is_decrypted": 1}
    )  # fmt: skip
    db["leaks"].insert(
        {"request_id": 7, "pii_type": "email", "transform_chain": "lower>sha256:hex",
         "location": "url.query:em", "tier": "strong"}
    )  # fmt: skip
    row = next(db.query("select * from trail"))
    assert (row["company"], row["owner"], row["category"], row["is_tracker"], row["leak_count"]) == (
        "Google", "Alphabet", "analytics", 1, 1,
    )  # fmt: skip
    leak = next(db.query("select * from leak_report"))
    assert (leak["device"], leak["company"], leak["transform_chain"]) == (
        "phone", "Google", "lower>sha256:hex",
    )  # fmt: skip


def test_m042_to_m044_convert_an_existing_trail(tmp_path):
    # #19: a trail written before keeps every leaf fingerprint and every request's headers
    import json

    from gazeback.db import identities
    from gazeback.leaks.detect import fingerprint

    key = b"m" * 32
    db = sqlite_utils.Database(tmp_path / "old.db")
    migrations.migrations.apply(db, stop_before="m042_compact_leaf_fingerprints")
    ua = [["user-agent", "okhttp/4.12"], ["x-user", "jane@example.org"]]
    for rid in (1, 2, 3):
        db["requests"].insert({"id": rid, "flow_id": f"f{rid}", "kind": "http", "host": "h",
                               "started_at": "2026-01-01T00:00:00Z", "path": "/",
                               "request_headers": json.dumps(ua) if rid < 3 else None})  # fmt: skip
        db["leaf_fingerprints"].insert_all(
            [
                {
                    "request_id": rid,
                    "fingerprint": fingerprint(key, "jane@example.org"),
                    "location": "header:x-user",
                },
                {"request_id": rid, "fingerprint": rid, "location": "url.host"},
            ]  # fmt: skip
        )
    migrations.apply(db)
    assert db.execute("select id, header_set_id from requests order by id").fetchall() == [
        (1, 1), (2, 1), (3, None)
    ]  # fmt: skip
    assert json.loads(db["header_sets"].get(1)["headers"]) == ua
    assert "request_headers" not in db["requests"].columns_dict
    assert sorted(db.execute(identities.LEAF_FINGERPRINTS_SQL).fetchall()) == sorted(
        [(rid, fingerprint(key, "jane@example.org"), "header:x-user") for rid in (1, 2, 3)]
        + [(rid, rid, "url.host") for rid in (1, 2, 3)]
    )
    # what was stored before is found, and taken out of the stored headers
    identities.add_identity(db, key, "email", "jane@example.org")
    assert identities.rescan(db, key) == 3
    headers = db.execute(
        "select h.headers from requests r join header_sets h on h.id = r.header_set_id"
    ).fetchall()
    assert headers and all("jane@" not in h for (h,) in headers)
    migrations.apply(db)  # and again: nothing to do
