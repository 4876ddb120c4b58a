"""Every write to the leak detector's tables: identities, leaks, leaf fingerprints, persistent IDs.

Identity values are encrypted (AES-GCM) with a key derived from the local key file
``<db>.key`` (32 random bytes, mode 0600, never inside the database). A copy of the
database alone — a shared dashboard, a backup, an export — shows only a masked hint
such as ``j***@g***.com``.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import sqlite3
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from sqlite_utils import Database

from gazeback.db.dictionary import dictionary_ids
from gazeback.db.header_sets import header_set_ids, headers_text
from gazeback.db.localfiles import key_path, load_or_create_key
from gazeback.leaks.detect import Profile, fingerprint
from gazeback.leaks.needles import NAME_KEYS, build_profile, identity_in, location_keys, validate
from gazeback.leaks.redact import scrub_request
from gazeback.models import Detection, IdentityValue, Leak
from gazeback.timestamps import now_iso

_AAD = b"gazeback identity v1:"


# --- key and encryption -------------------------------------------------------------------


def load_key(db_path: str | Path, create: bool = False) -> bytes:
    """Read ``<db>.key`` (32 bytes, 0600); create it when ``create`` and missing."""
    path = key_path(Path(db_path))
    if not create and not path.exists():
        raise FileNotFoundError(f"{path} is missing: identities cannot be read without it")
    return load_or_create_key(Path(db_path))


def _aead(key: bytes) -> Any:
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    return AESGCM(hmac.digest(key, b"gazeback identities", hashlib.sha256))


def encrypt_value(key: bytes, kind: str, value: str) -> bytes:
    nonce = secrets.token_bytes(12)
    return nonce + bytes(_aead(key).encrypt(nonce, value.encode(), _AAD + kind.encode()))


def decrypt_value(key: bytes, kind: str, blob: bytes) -> str:
    plain: bytes = _aead(key).decrypt(blob[:12], blob[12:], _AAD + kind.encode())
    return plain.decode()


def mask(kind: str, value: str) -> str:
    """A hint that tells the person which value it is, and nobody else much."""
    v = value.strip()
    if kind == "location":
        return "(a place)"
    if kind == "email" and "@" in v:
        local, _, domain = v.rpartition("@")
        host, _, tld = domain.rpartition(".")
        return f"{local[:1]}***@{host[:1]}***.{tld}"
    if kind == "name":
        return " ".join(p[:1] + "***" for p in v.split())
    if len(v) >= 8:
        return f"{v[:2]}***{v[-2:]}"
    return "***"


# --- identities ---------------------------------------------------------------------------


def add_identity(db: Database, key: bytes, kind: str, value: str, label: str | None = None) -> int:
    """Store one identity (encrypted) and return its id; raises ValueError for a bad value."""
    validate(kind, value)
    row = {
        "kind": kind,
        "label": label or kind,
        "masked": mask(kind, value),
        "created_at": now_iso(),
        "value_encrypted": encrypt_value(key, kind, value),
    }
    with db.atomic():
        table = db.table("identities")
        table.insert(row)
        return int(table.last_pk)  # type: ignore[arg-type]


def list_identities(db: Database) -> list[dict[str, Any]]:
    return list(db.query("select id, kind, label, masked, created_at from identities order by id"))


def remove_identity(db: Database, identity_id: int) -> bool:
    """Forget an identity and the leak rows that named it."""
    with db.atomic():
        found = db.execute("select 1 from identities where id = ?", [identity_id]).fetchone()
        db.execute("delete from leaks where identity_id = ?", [identity_id])
        db.execute("delete from identities where id = ?", [identity_id])
    return found is not None


def load_identities(
    db: Database, key: bytes, ids: Iterable[int] | None = None
) -> list[IdentityValue]:
    wanted = set(ids) if ids is not None else None
    out = []
    for row in db.query("select id, kind, label, value_encrypted from identities order by id"):
        if wanted is not None and row["id"] not in wanted or row["value_encrypted"] is None:
            continue
        value = decrypt_value(key, row["kind"], row["value_encrypted"])
        out.append(IdentityValue(row["id"], row["kind"], value, row["label"]))
    return out


def load_profile(db_path: str | Path) -> Profile:
    """The detection profile for ``db_path`` (call at writer start and when the stamp changes)."""
    from gazeback.db import migrations

    db = Database(str(db_path))
    try:
        migrations.apply(db)
        if not db["identities"].count:
            return build_profile([])
        return build_profile(load_identities(db, load_key(db_path)))
    finally:
        db.close()


def profile_stamp(db_path: str | Path) -> str:
    """Changes whenever an identity is added or removed; cheap enough to poll each batch."""
    try:
        conn = sqlite3.connect(Path(db_path).resolve().as_uri() + "?mode=ro", uri=True)
    except sqlite3.Error:
        return ""
    try:
        row = conn.execute(
            "select count(*), group_concat(id || '@' || created_at) from identities"
        ).fetchone()
    except sqlite3.Error:
        return ""
    finally:
        conn.close()
    return hashlib.sha256(repr(row).encode()).hexdigest()[:16]


# --- per-request rows -----------------------------------------------------------------------


def save_leaks(db: Database, request_id: int, leaks: Sequence[Leak]) -> None:
    """One ``leaks`` row per leak (use when the Record path does not write them)."""
    db.table("leaks").insert_all(
        (
            {
                "request_id": request_id,
                "identity_id": leak.identity_id,
                "pii_type": leak.pii_type,
                "transform_chain": leak.transform_chain,
                "location": leak.location,
                "tier": leak.tier,
            }
            for leak in leaks
        ),
    )


def save_leaf_fingerprints(db: Database, request_id: int, fps: Sequence[tuple[int, str]]) -> None:
    with db.atomic():
        ids = location_ids(db, {loc for _, loc in fps})
        db.conn.executemany(
            "insert or ignore into leaf_fingerprints (fingerprint, request_id, location_id) "
            "values (?, ?, ?)",
            [(fp, request_id, ids[loc]) for fp, loc in fps],
        )


def save_detection(db: Database, request_id: int, detection: Detection, leaks: bool = True) -> None:
    """Leaks (unless the caller writes them from the Record) and leaf fingerprints of a request."""
    if leaks:
        save_leaks(db, request_id, detection.leaks)
    save_leaf_fingerprints(db, request_id, detection.leaf_fingerprints)


def save_batch(db: Database, batch: Sequence[tuple[int, Detection]], leaks: bool = False) -> int:
    """Everything the leak detector keeps for one writer batch, after the requests exist.

    Writes leaf fingerprints (and leaks too when ``leaks``; by default the Record path
    writes them), then runs ``update_persistent_ids``. Returns persistent-ID rows added.
    Call inside the batch's transaction.
    """
    if leaks:
        for request_id, detection in batch:
            save_leaks(db, request_id, detection.leaks)
    # Many small rows per request: one parameterized executemany for the whole batch
    # (sqlite-utils insert_all per request cost ~150 µs a request here).
    rows = [(rid, fp, loc) for rid, det in batch for fp, loc in det.leaf_fingerprints]
    if rows:
        ids = location_ids(db, {loc for _, _, loc in rows})
        db.conn.executemany(
            "insert or ignore into leaf_fingerprints (fingerprint, request_id, location_id) "
            "values (?, ?, ?)",
            [(fp, rid, ids[loc]) for rid, fp, loc in rows],
        )
    return update_persistent_ids(db, batch)


def location_ids(db: Database, locations: Iterable[str]) -> dict[str, int]:
    """The ``leaf_locations`` id of each location, adding those not stored yet."""
    return dictionary_ids(db, "leaf_locations", "location", locations)


# A leaf fingerprint with its location spelled out (the table keeps a dictionary id).
LEAF_FINGERPRINTS_SQL = (
    "select f.request_id, f.fingerprint, l.location from leaf_fingerprints f "
    "join leaf_locations l on l.id = f.location_id"
)


# --- unregistered persistent identifiers ----------------------------------------------------


def update_persistent_ids(db: Database, batch: Sequence[tuple[int, Detection]]) -> int:
    """Record this batch's ID-shaped values and report those that turned out persistent.

    Call once per writer batch, inside the batch's transaction, after the ``requests``
    rows exist. A value is reported (``leaks`` row, ``pii_type = persistent_id``,
    ``identity_id`` NULL) once it is seen by one device at one destination on two or
    more days or in three or more captures (``weak``), or reaching two or more companies
    (``medium``: ID sharing). Earlier sightings are reported too. Returns rows added.
    """
    batch = [(rid, det) for rid, det in batch if det.candidates]
    if not batch:
        return 0
    # plain parameterized SQL: sqlite-utils' insert cost ~100 µs a candidate here
    conn = db.conn
    req = _request_facts(db, [rid for rid, _ in batch])
    # One lookup and one write per distinct value in the batch (an app sends the same IDs in
    # every request), not per sighting; ids are given in order of first sighting (#19).
    seen: dict[int, list[Any]] = {}  # fingerprint -> [shape, first seen_at, latest seen_at]
    pending: list[tuple[int, int, str]] = []  # (fingerprint, request id, location)
    for rid, det in batch:
        seen_at = req.get(rid, {}).get("started_at") or now_iso()
        for cand in det.candidates:
            got = seen.get(cand.fingerprint)
            if got is None:
                seen[cand.fingerprint] = [cand.shape, seen_at, seen_at]
            elif seen_at > got[2]:
                got[2] = seen_at
            pending.append((cand.fingerprint, rid, cand.location))
    known: dict[int, int] = {}
    fps = list(seen)
    for start in range(0, len(fps), 500):
        chunk = fps[start : start + 500]
        marks = ",".join("?" * len(chunk))
        sql = f"select fingerprint, id from persistent_ids where fingerprint in ({marks})"
        known.update(conn.execute(sql, chunk).fetchall())
    pids: dict[int, int] = {}
    for fp, (shape, first, latest) in seen.items():
        if fp in known:
            pids[fp] = known[fp]
            conn.execute(
                "update persistent_ids set last_seen_at = max(last_seen_at, ?) where id = ?",
                [latest, known[fp]],
            )
        else:
            cur = conn.execute(
                "insert into persistent_ids (fingerprint, shape, first_seen_at,"
                " last_seen_at, is_persistent, is_shared) values (?, ?, ?, ?, 0, 0)",
                [fp, shape, first, latest],
            )
            pids[fp] = int(cur.lastrowid or 0)
    sightings = [(pids[fp], rid, location) for fp, rid, location in pending]
    touched = set(pids.values())
    conn.executemany(
        "insert into persistent_id_sightings (persistent_id, request_id, location, leak_id)"
        " values (?, ?, ?, null)",
        sightings,
    )
    since = min(rid for rid, _ in batch)
    return sum(_judge(db, pid, since) for pid in sorted(touched))


def _request_facts(db: Database, ids: list[int]) -> dict[int, dict[str, Any]]:
    marks = ",".join("?" * len(ids))
    sql = f"select id, started_at from requests where id in ({marks})"
    return {r["id"]: r for r in db.query(sql, ids)}


# One pass over a value's sightings: the distinct (device, destination, day, capture, company)
# it was seen with; _facts decides from these (was three scans of the sightings, #19).
_SEEN = """
select distinct r.device_id, coalesce(r.registrable_domain, r.host) as destination,
  substr(r.started_at, 1, 10) as day, r.capture_id,
  coalesce(t.company_id, r.registrable_domain, r.host) as company
from persistent_id_sightings s join requests r on r.id = s.request_id
left join trackers t on t.id = r.tracker_id
where s.persistent_id = ?
"""

# The company of one sighting that already has its leak row (an earlier batch's).
_OLD_COMPANY = """
select coalesce(t.company_id, r.registrable_domain, r.host)
from persistent_id_sightings s join requests r on r.id = s.request_id
left join trackers t on t.id = r.tracker_id
where s.persistent_id = ? and s.leak_id is not null limit 1
"""

# The companies of this batch's sightings, which have no leak row yet.
_NEW_COMPANIES = """
select distinct coalesce(t.company_id, r.registrable_domain, r.host)
from persistent_id_sightings s join requests r on r.id = s.request_id
left join trackers t on t.id = r.tracker_id
where s.persistent_id = ? and s.leak_id is null
"""


# Whether every sighting from request ``since`` on (this batch's: request ids only grow) was
# seen with a (device, destination, day, capture, company) some earlier sighting had too.
_NOTHING_NEW = """
select not exists (
  select 1 from persistent_id_sightings s join requests r on r.id = s.request_id
  left join trackers t on t.id = r.tracker_id
  where s.persistent_id = :pid and s.request_id >= :since and not exists (
    select 1 from persistent_id_sightings s2 join requests r2 on r2.id = s2.request_id
    left join trackers t2 on t2.id = r2.tracker_id
    where s2.persistent_id = :pid and s2.request_id < :since
      and r2.device_id is r.device_id
      and coalesce(r2.registrable_domain, r2.host) is coalesce(r.registrable_domain, r.host)
      and substr(r2.started_at, 1, 10) is substr(r.started_at, 1, 10)
      and r2.capture_id is r.capture_id
      and coalesce(t2.company_id, r2.registrable_domain, r2.host)
          is coalesce(t.company_id, r.registrable_domain, r.host)))
"""


def _facts(conn: sqlite3.Connection, pid: int) -> tuple[bool, bool]:
    """(shared, persistent) from every sighting: two or more companies; or, for one device and
    destination, two or more days or three or more captures."""
    companies: set[Any] = set()
    days: dict[tuple[Any, Any], set[Any]] = {}
    captures: dict[tuple[Any, Any], set[Any]] = {}
    for device, destination, day, capture, company in conn.execute(_SEEN, [pid]):
        companies.add(company)
        days.setdefault((device, destination), set()).add(day)
        captures.setdefault((device, destination), set()).add(capture)
    persistent = any(len(d) >= 2 for d in days.values()) or any(
        len(c) >= 3 for c in captures.values()
    )
    return len(companies) >= 2, persistent


def _judge(db: Database, pid: int, since: int | None = None) -> int:
    """Decide whether value ``pid`` qualifies (after this batch's sightings) and write its leaks.

    ``since``: the first request id of this batch. Both facts depend only on the set of
    (device, destination, day, capture, company) the value was seen with, and only grow as
    sightings are added; every batch judges the values it touched. So a value already marked
    shared and persistent is not judged again; one marked persistent only needs this batch's
    companies checked against the one company all its earlier sightings had (else it would be
    shared already); and a batch that brought no new such combination changes nothing."""
    conn = db.conn
    was = conn.execute(
        "select is_shared, is_persistent, shape from persistent_ids where id = ?", [pid]
    ).fetchone()
    was_shared, was_persistent, shape = bool(was[0]), bool(was[1]), was[2]
    if was_shared and was_persistent:
        shared = persistent = True
    elif was_persistent:
        old = conn.execute(_OLD_COMPANY, [pid]).fetchone()
        if old is None:  # no earlier leak row (pruned, or marked before #19): judge in full
            shared, persistent = _facts(conn, pid)
        else:
            new = {row[0] for row in conn.execute(_NEW_COMPANIES, [pid])}
            shared, persistent = len(new | {old[0]}) >= 2, True
    elif (
        since is not None and conn.execute(_NOTHING_NEW, {"pid": pid, "since": since}).fetchone()[0]
    ):
        shared, persistent = was_shared, was_persistent
    else:
        shared, persistent = _facts(conn, pid)
    if not (shared or persistent):
        return 0
    tier = "medium" if shared else "weak"
    if (shared, persistent) != (was_shared, was_persistent):
        conn.execute(
            "update persistent_ids set is_shared = ?, is_persistent = ? where id = ?",
            [int(shared), int(persistent), pid],
        )
        if shared:
            conn.execute(
                "update leaks set tier = 'medium' where id in (select leak_id from "
                "persistent_id_sightings where persistent_id = ? and leak_id is not null)",
                [pid],
            )
    added = 0
    for rowid, request_id, location in conn.execute(
        "select rowid, request_id, location from persistent_id_sightings "
        "where persistent_id = ? and leak_id is null",
        [pid],
    ).fetchall():
        cur = conn.execute(
            "insert into leaks (request_id, identity_id, pii_type, transform_chain, location,"
            " tier) values (?, null, 'persistent_id', ?, ?, ?)",
            [request_id, shape, location, tier],
        )
        conn.execute(
            "update persistent_id_sightings set leak_id = ? where rowid = ?",
            [cur.lastrowid, rowid],
        )
        added += 1
    return added


# --- identities added later -----------------------------------------------------------------


def rescan(db: Database, key: bytes, identity_ids: Iterable[int] | None = None) -> int:
    """Find identities in earlier traffic through the stored leaf fingerprints; returns rows added.

    Finds whole-leaf matches only (a value, a digest or an encoding of it that was a
    complete query value, header, cookie, JSON string, form field ...). It cannot find
    values inside longer text, base64 at an offset, or locations (numbers by distance).
    """
    idents = [i for i in load_identities(db, key, identity_ids) if i.kind != "location"]
    if not idents:
        return 0
    profile = build_profile(idents)
    by_fp: dict[int, list[tuple[str, str, str, int, bool]]] = {}
    for s, needles in profile.exact.items():
        for n in needles:
            by_fp.setdefault(fingerprint(key, s), []).append(
                (n.pii_type, n.chain, n.tier, n.identity_id, False)
            )
    for s, needles in profile.whole_leaf.items():
        for n in needles:
            by_fp.setdefault(fingerprint(key, s), []).append(
                (n.pii_type, n.chain, n.tier, n.identity_id, True)
            )
    existing = {  # one row per request, identity and place: case variants share a fingerprint
        (r["request_id"], r["identity_id"], r["location"])
        for r in db.query(
            "select request_id, identity_id, transform_chain, location from leaks "
            "where identity_id is not null"
        )
    }
    rows: list[dict[str, Any]] = []
    fps = list(by_fp)
    for i in range(0, len(fps), 500):
        chunk = fps[i : i + 500]
        marks = ",".join("?" * len(chunk))
        sql = f"{LEAF_FINGERPRINTS_SQL} where f.fingerprint in ({marks})"
        for r in db.query(sql, chunk):
            for pii_type, chain, tier, iid, keyed in by_fp[r["fingerprint"]]:
                if keyed and not location_keys(r["location"]) & NAME_KEYS:
                    continue
                k = (r["request_id"], iid, r["location"])
                if k in existing:
                    continue
                existing.add(k)
                rows.append(
                    {
                        "request_id": r["request_id"],
                        "identity_id": iid,
                        "pii_type": pii_type,
                        "transform_chain": chain,
                        "location": r["location"],
                        "tier": tier,
                    }
                )
    with db.atomic():
        db.table("leaks").insert_all(rows)
        _scrub_stored(db, rows)
    return len(rows)


def _scrub_stored(db: Database, rows: list[dict[str, Any]]) -> None:
    """Take newly found identifiers out of the stored paths and headers of those requests."""
    found: dict[int, list[tuple[str, str]]] = {}
    for r in rows:
        found.setdefault(r["request_id"], []).append((r["location"], r["pii_type"]))
    for request_id, places in found.items():
        row = db.execute(
            "select r.path, h.headers, r.redacted_fields from requests r "
            "left join header_sets h on h.id = r.header_set_id where r.id = ?",
            [request_id],
        ).fetchone()
        if row is None:
            continue
        headers = [tuple(h) for h in json.loads(row[1])] if row[1] else []
        path, new_headers, fields = scrub_request(row[0], headers, places)
        if not fields:
            continue
        done = json.loads(row[2]) if row[2] else []
        db.table("requests").update(
            request_id,
            {
                "path": path,
                "header_set_id": header_set_ids(db, [text])[text]
                if headers and (text := headers_text(new_headers))
                else None,
                "redacted_fields": json.dumps(list(dict.fromkeys([*done, *fields]))),
            },
        )


def apps_with_identities(db: Database, profile: Profile | None) -> dict[str, str]:
    """Stored app names (``requests.app``) that hold a registered identity → what replaces
    them (``[leak:KIND]``): names recorded before app names were checked (#17)."""
    out: dict[str, str] = {}
    if profile is None or not db["requests"].exists():
        return out
    for (app,) in db.execute(
        "select distinct app from requests where app is not null and app not like '[leak:%'"
    ):
        if kind := identity_in(app, profile):
            out[app] = f"[leak:{kind}]"
    return out


def scrub_stored_apps(db: Database, profile: Profile | None) -> int:
    """Replace every stored app name that holds a registered identity; the requests changed."""
    changed = 0
    with db.conn:
        for app, mark in apps_with_identities(db, profile).items():
            changed += db.execute("update requests set app = ? where app = ?", [mark, app]).rowcount
    return changed
