import json
import os

import pytest
from cryptography.exceptions import InvalidTag
from leakcorpus import make_observation
from sqlite_utils import Database

from gazeback.db import identities as store_leaks
from gazeback.db import migrations
from gazeback.db.header_sets import with_header_set
from gazeback.leaks.detect import detect
from gazeback.leaks.needles import build_profile

KEY = bytes(range(32))
EMAIL = "jane.roe@example.org"


@pytest.fixture
def db():
    database = Database(memory=True)
    migrations.apply(database)
    return database


def add_request(db, rid, host="t.example", day="2026-01-01", device=1, capture=1, tracker=None):
    db["requests"].insert(
        {
            "id": rid,
            "flow_id": f"f{rid}",
            "kind": "http",
            "host": host,
            "registrable_domain": host,
            "started_at": f"{day}T10:00:00.000Z",
            "device_id": device,
            "capture_id": capture,
            "tracker_id": tracker,
        }
    )


def test_migrations_twice_is_a_noop(db):
    migrations.apply(db)
    assert {"leaf_fingerprints", "persistent_ids", "persistent_id_sightings"} <= set(
        db.table_names()
    )
    assert "value_encrypted" in db["identities"].columns_dict


def test_identity_values_are_encrypted(tmp_path):
    path = tmp_path / "trail.db"
    database = Database(path)
    migrations.apply(database)
    key = store_leaks.load_key(path, create=True)
    assert os.stat(store_leaks.key_path(path)).st_mode & 0o777 == 0o600
    new_id = store_leaks.add_identity(database, key, "email", EMAIL, "work")
    database.close()
    raw = path.read_bytes()
    assert b"jane" not in raw and b"example.org" not in raw
    assert store_leaks.list_identities(Database(path)) == [
        {
            "id": new_id,
            "kind": "email",
            "label": "work",
            "masked": "j***@e***.org",
            "created_at": store_leaks.list_identities(Database(path))[0]["created_at"],
        }
    ]
    [ident] = store_leaks.load_identities(Database(path), key)
    assert ident.value == EMAIL and EMAIL not in repr(ident)
    with pytest.raises(InvalidTag):
        store_leaks.load_identities(Database(path), bytes(32))


@pytest.mark.parametrize(
    "kind,value,masked",
    [
        ("email", "a.b@mail.example.com", "a***@m***.com"),
        ("phone", "+4915112345678", "+4***78"),
        ("name", "Jane Roe", "J*** R***"),
        ("location", "1,2", "(a place)"),
        ("ip", "1.2.3.4", "***"),
    ],
)
def test_mask(kind, value, masked):
    assert store_leaks.mask(kind, value) == masked


@pytest.mark.parametrize(
    "kind,value", [("phone", "12"), ("mac", "aa:bb"), ("location", "x"), ("email", " ")]
)
def test_add_identity_rejects_bad_values(db, kind, value):
    with pytest.raises(ValueError):
        store_leaks.add_identity(db, KEY, kind, value)
    assert db["identities"].count == 0


def test_profile_stamp_and_load_profile(tmp_path):
    path = tmp_path / "trail.db"
    database = Database(path)
    migrations.apply(database)
    before = store_leaks.profile_stamp(path)
    key = store_leaks.load_key(path, create=True)
    new_id = store_leaks.add_identity(database, key, "email", EMAIL)
    after = store_leaks.profile_stamp(path)
    assert before != after
    assert store_leaks.load_profile(path).identity_ids == (new_id,)
    store_leaks.remove_identity(database, new_id)
    assert store_leaks.profile_stamp(path) not in (after, "")
    assert store_leaks.profile_stamp(tmp_path / "missing.db") == ""


def test_save_detection_and_rescan_finds_identities_added_later(db):
    add_request(db, 1)
    obs = make_observation(
        "t.example",
        "/p",
        [("em", "5f4dcc3b5aa765d61d8327deb882cf99"), ("u", EMAIL.upper()), ("fn", "jane")],
    )
    det = detect(obs, build_profile([]), KEY)
    store_leaks.save_detection(db, 1, det)
    assert db["leaks"].count == 0
    new_id = store_leaks.add_identity(db, KEY, "email", EMAIL)
    name_id = store_leaks.add_identity(db, KEY, "name", "Jane Roe")
    assert store_leaks.rescan(db, KEY) == 2
    rows = {
        (r["identity_id"], r["location"], r["transform_chain"], r["tier"])
        for r in db.query("select * from leaks")
    }
    assert rows == {
        (new_id, "url.query:u", "plain", "strong"),
        (name_id, "url.query:fn", "namepart", "weak"),
    }
    assert store_leaks.rescan(db, KEY) == 0  # idempotent


def test_remove_identity_drops_its_leaks(db):
    add_request(db, 1)
    new_id = store_leaks.add_identity(db, KEY, "email", EMAIL)
    det = detect(
        make_observation("t.example", "/p", [("em", EMAIL)]),
        build_profile(store_leaks.load_identities(db, KEY)),
        KEY,
    )
    store_leaks.save_leaks(db, 1, det.leaks)
    assert db["leaks"].count == 1
    assert store_leaks.remove_identity(db, new_id) is True
    assert db["leaks"].count == 0
    assert store_leaks.remove_identity(db, new_id) is False


def run_batch(db, rid, value="a3f9c2e17b4d8e6f0a1c", **kw):
    add_request(db, rid, **kw)
    det = detect(
        make_observation(kw.get("host", "t.example"), "/p", [("did", value)]),
        build_profile([]),
        KEY,
    )
    return store_leaks.update_persistent_ids(db, [(rid, det)])


def test_persistent_id_over_two_days(db):
    assert run_batch(db, 1, day="2026-01-01") == 0
    assert run_batch(db, 2, day="2026-01-01") == 0
    assert run_batch(db, 3, day="2026-01-02") == 3  # earlier sightings are reported too
    rows = list(
        db.query(
            "select request_id, pii_type, identity_id, location, tier, transform_chain "
            "from leaks order by request_id"
        )
    )
    assert rows[0] == {
        "request_id": 1,
        "pii_type": "persistent_id",
        "identity_id": None,
        "location": "url.query:did",
        "tier": "weak",
        "transform_chain": "hex",
    }
    assert run_batch(db, 4, day="2026-01-03") == 1


def test_id_sharing_across_companies(db):
    assert run_batch(db, 1, host="ads.example") == 0
    assert run_batch(db, 2, host="other-tracker.example") == 2
    assert {r["tier"] for r in db.query("select tier from leaks")} == {"medium"}
    assert db["persistent_ids"].get(1)["is_shared"] == 1


def test_one_off_values_are_not_reported(db):
    for rid in range(1, 5):
        assert run_batch(db, rid, value=f"{rid:02d}" + "c0ffee1234abcd9876") == 0


def test_save_batch_feeds_leak_report(db):
    key = KEY
    email_id = store_leaks.add_identity(db, key, "email", EMAIL, "work email")
    profile = build_profile(store_leaks.load_identities(db, key))
    batch = []
    for rid, host in ((1, "ads.example"), (2, "other.example")):
        add_request(db, rid, host=host)
        obs = make_observation(host, "/p", [("em", EMAIL), ("did", "a3f9c2e17b4d8e6f0a1c")])
        batch.append((rid, detect(obs, profile, key)))
    with db.atomic():
        assert store_leaks.save_batch(db, batch, leaks=True) == 2
    rows = list(
        db.query(
            "select request_id, host, pii_type, identity, transform_chain, location, "
            "tier from leak_report order by request_id, pii_type"
        )
    )
    assert rows[:2] == [
        {
            "request_id": 1,
            "host": "ads.example",
            "pii_type": "email",
            "identity": "work email",
            "transform_chain": "plain",
            "location": "url.query:em",
            "tier": "strong",
        },
        {
            "request_id": 1,
            "host": "ads.example",
            "pii_type": "persistent_id",
            "identity": None,
            "transform_chain": "hex",
            "location": "url.query:did",
            "tier": "medium",
        },
    ]
    # em and did of each request; the host is no value a person registers (#19)
    assert db["leaf_fingerprints"].count == 4
    assert email_id == 1


def test_rescan_takes_found_identifiers_out_of_stored_requests(db):
    add_request(db, 1)
    db["requests"].update(
        1,
        with_header_set(db, {
            "path": f"/p/{EMAIL}?em={EMAIL}&q=1",
            "request_headers": json.dumps([["X-User", EMAIL], ["Accept", "*/*"]]),
        }),
    )  # fmt: skip
    obs = make_observation(
        "t.example", f"/p/{EMAIL}", [("em", EMAIL), ("q", "1")], headers=[("X-User", EMAIL)]
    )
    store_leaks.save_detection(db, 1, detect(obs, build_profile([]), KEY))
    store_leaks.add_identity(db, KEY, "email", EMAIL)
    assert store_leaks.rescan(db, KEY) == 3
    row = db["requests"].get(1)
    assert row["path"] == "/p/[leak:email]?em=[leak:email]&q=1"
    headers = db["header_sets"].get(row["header_set_id"])["headers"]
    assert json.loads(headers) == [["X-User", "[leak:email]"], ["Accept", "*/*"]]
    assert EMAIL not in json.dumps(row)


def test_persistent_id_flags_equal_a_full_judgement_after_every_batch(db):
    # #19: values are not re-judged from all their sightings when a batch cannot change the
    # outcome; after every batch the stored flags must still be what a full judgement gives.
    import random

    rng = random.Random(19)
    values = [f"{i:02d}a3f9c2e17b4d8e6f0a1c" for i in range(4)]
    for rid in range(1, 121):
        run_batch(
            db,
            rid,
            value=rng.choice(values),
            host=rng.choice(["a.example", "a.example", "a.example", "b.example"]),
            day=f"2026-01-0{1 + rid // 50}",
            device=rng.choice([1, 1, 1, 2]),
            capture=1 + rid // 45,
        )
        for row in db.query("select id, is_shared, is_persistent from persistent_ids"):
            full = store_leaks._facts(db.conn, row["id"])
            assert (bool(row["is_shared"]), bool(row["is_persistent"])) == full, rid
    unreported = "select count(*) from persistent_id_sightings s join persistent_ids p on p.id = "
    unreported += "s.persistent_id where (p.is_shared or p.is_persistent) and s.leak_id is null"
    assert db.execute(unreported).fetchone()[0] == 0
    assert db.execute("select count(*) from persistent_ids where is_shared").fetchone()[0] > 0
