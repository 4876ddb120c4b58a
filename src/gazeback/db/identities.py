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

from gazeback.db.localfiles import key_path, load_or_create_key
from gazeback.leaks.detect import Profile, fingerprint
from gazeback.leaks.needles import NAME_KEYS, build_profile, identity_in, validate
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
    db.table("leaf_fingerprints").insert_all(
        {"request_id": request_id, "fingerprint": fp, "location": loc} for fp, loc in fps
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
    db.conn.executemany(
        "insert into leaf_fingerprints (request_id, fingerprint, location) values (?, ?, ?)",
        [(rid, fp, loc) for rid, det in batch for fp, loc in det.leaf_fingerprints],
    )
    return update_persistent_ids(db, batch)


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
    touched: set[int] = set()
    sightings: list[tuple[int, int, str]] = []
    for rid, det in batch:
        seen_at = req.get(rid, {}).get("started_at") or now_iso()
        for cand in det.candidates:
            row = conn.execute(
                "select id from persistent_ids where fingerprint = ?", [cand.fingerprint]
            ).fetchone()
            if row:
                pid = int(row[0])
                conn.execute(
                    "update persistent_ids set last_seen_at = max(last_seen_at, ?) where id = ?",
                    [seen_at, pid],
                )
            else:
                cur = conn.execute(
                    "insert into persistent_ids (fingerprint, shape, first_seen_at,"
                    " last_seen_at, is_persistent, is_shared) values (?, ?, ?, ?, 0, 0)",
                    [cand.fingerprint, cand.shape, seen_at, seen_at],
                )
                pid = int(cur.lastrowid or 0)
            sightings.append((pid, rid, cand.location))
            touched.add(pid)
    conn.executemany(
        "insert into persistent_id_sightings (persistent_id, request_id, location, leak_id)"
        " values (?, ?, ?, null)",
        sightings,
    )
    return sum(_judge(db, pid) for pid in sorted(touched))


def _request_facts(db: Database, ids: list[int]) -> dict[int, dict[str, Any]]:
    marks = ",".join("?" * len(ids))
    sql = f"select id, started_at from requests where id in ({marks})"
    return {r["id"]: r for r in db.query(sql, ids)}


_FACTS = """
select count(distinct coalesce(t.company_id, r.registrable_domain, r.host)) as companies,
  (select max(n) from (
     select count(distinct substr(r2.started_at, 1, 10)) as n from persistent_id_sightings s2
     join requests r2 on r2.id = s2.request_id where s2.persistent_id = :pid
     group by r2.device_id, coalesce(r2.registrable_domain, r2.host)
     union all
     select count(distinct r2.capture_id) / 1.5 from persistent_id_sightings s2
     join requests r2 on r2.id = s2.request_id where s2.persistent_id = :pid
     group by r2.device_id, coalesce(r2.registrable_domain, r2.host))) as stability
from persistent_id_sightings s join requests r on r.id = s.request_id
left join trackers t on t.id = r.tracker_id
where s.persistent_id = :pid
"""


def _judge(db: Database, pid: int) -> int:
    facts = next(db.query(_FACTS, {"pid": pid}))
    shared = (facts["companies"] or 0) >= 2
    persistent = (facts["stability"] or 0) >= 2  # 2 days, or 3 captures (3 / 1.5)
    if not (shared or persistent):
        return 0
    tier = "medium" if shared else "weak"
    db.execute(
        "update persistent_ids set is_shared = ?, is_persistent = ? where id = ?",
        [int(shared), int(persistent), pid],
    )
    if shared:
        db.execute(
            "update leaks set tier = 'medium' where id in (select leak_id from "
            "persistent_id_sightings where persistent_id = ? and leak_id is not null)",
            [pid],
        )
    added = 0
    shape = next(db.query("select shape from persistent_ids where id = ?", [pid]))["shape"]
    for s in list(
        db.query(
            "select rowid, request_id, location from persistent_id_sightings "
            "where persistent_id = ? and leak_id is null",
            [pid],
        )
    ):
        leaks = db.table("leaks")
        leaks.insert(
            {
                "request_id": s["request_id"],
                "identity_id": None,
                "pii_type": "persistent_id",
                "transform_chain": shape,
                "location": s["location"],
                "tier": tier,
            }
        )
        db.execute(
            "update persistent_id_sightings set leak_id = ? where rowid = ?",
            [leaks.last_pk, s["rowid"]],
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
        sql = (
            "select request_id, fingerprint, location from leaf_fingerprints "
            f"where fingerprint in ({marks})"
        )
        for r in db.query(sql, chunk):
            for pii_type, chain, tier, iid, keyed in by_fp[r["fingerprint"]]:
                if keyed and not _key_of(r["location"]) & NAME_KEYS:
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
            "select path, request_headers, redacted_fields from requests where id = ?",
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
                "request_headers": json.dumps(new_headers, ensure_ascii=False) if headers else None,
                "redacted_fields": json.dumps(list(dict.fromkeys([*done, *fields]))),
            },
        )


def _key_of(location: str) -> set[str]:
    last = location.rsplit(">", 1)[-1]
    name = last.rsplit(":", 1)[-1].rsplit(".", 1)[-1].lower()
    names = {name}
    if "[" in name and name.endswith("]"):
        names.add(name[name.rindex("[") + 1 : -1])
    return names


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
