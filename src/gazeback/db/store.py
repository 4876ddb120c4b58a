"""The only module that writes gazeback's rows.

A Record becomes an *item*: a JSON-safe dict with the device, the request row (without
database ids) and its leaks. Items are what the writer commits in batches, and what it
spills to a JSONL file when the database cannot take them, so a spill replays through
exactly the same code.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlite_utils import Database

from gazeback.db.identities import save_batch
from gazeback.db.knowledge import save_knowledge
from gazeback.knowledge.classify import TrackerIndex
from gazeback.leaks.detect import Candidate, Detection
from gazeback.models import CaptureId, FlowSnapshot, Observation, Record
from gazeback.timestamps import iso, now_iso

Item = dict[str, Any]


def record_item(record: Record) -> Item:
    """Flatten a Record into the rows to store (no bodies, no leaked values)."""
    obs, cls = record.observation, record.classification
    return {
        "device": {"key": obs.device.key, "label": obs.device.label, "kind": obs.device.kind},
        "user_agent": obs.user_agent,
        "request": {
            "flow_id": obs.flow_id,
            "kind": obs.kind,
            "started_at": obs.started_at,
            "method": obs.method,
            "scheme": obs.scheme,
            "host": obs.host,
            "port": obs.port,
            "path": obs.path,
            "registrable_domain": cls.registrable_domain,
            "is_third_party": None if cls.is_third_party is None else int(cls.is_third_party),
            "tracker_id": cls.tracker_id,
            "status_code": obs.status_code,
            "content_type": obs.content_type,
            "request_bytes": obs.request_bytes,
            "response_bytes": obs.response_bytes,
            "duration_ms": obs.duration_ms,
            "is_decrypted": int(obs.is_decrypted),
            "tls_sni": obs.tls_sni,
            "server_ip": obs.server_ip,
            "error": obs.error,
            "websocket_messages": obs.websocket_messages,
            "websocket_bytes": obs.websocket_bytes,
            "decode_truncated": int(record.decode_truncated),
            "redacted_fields": json.dumps(obs.redacted_fields) if obs.redacted_fields else None,
            "request_headers": headers_json(obs) if obs.request_headers else None,
            "app": record.app,
            "app_source": "inferred" if record.app else None,
        },
        "leaks": [
            {
                "identity_id": leak.identity_id,
                "pii_type": leak.pii_type,
                "transform_chain": leak.transform_chain,
                "location": leak.location,
                "tier": leak.tier,
            }
            for leak in record.leaks
        ],
        "detection": _detection_item(record.detection),
    }


def _detection_item(det: Detection | None) -> dict[str, Any] | None:
    # keyed fingerprints and locations only: JSON-safe for the spill file, no values
    if det is None or not (det.leaf_fingerprints or det.candidates):
        return None
    return {
        "leaf_fingerprints": [list(fp) for fp in det.leaf_fingerprints],
        "candidates": [[c.fingerprint, c.location, c.shape] for c in det.candidates],
    }


def _detection(item: Item) -> Detection | None:
    d = item.get("detection")
    if not d:
        return None
    return Detection(
        leaf_fingerprints=tuple((int(fp), str(loc)) for fp, loc in d["leaf_fingerprints"]),
        candidates=tuple(Candidate(int(fp), str(loc), str(sh)) for fp, loc, sh in d["candidates"]),
    )


def minimal_item(snap: FlowSnapshot) -> Item:
    """The least we can store for a flow our code could not process: where and when only."""
    return {
        "device": {"key": snap.device.key, "label": snap.device.label, "kind": snap.device.kind},
        "user_agent": None,
        "request": {
            "flow_id": snap.flow_id,
            "kind": snap.kind,
            "started_at": iso(snap.started_at),
            "host": str(snap.host)[:1024] or "(unknown)",
            "port": snap.port or None,
            "is_decrypted": int(snap.is_decrypted),
            "tracker_id": None,
            "error": "gazeback could not process this request (see the proxy log)",
        },
        "leaks": [],
    }


def start_capture(
    db: Database,
    source: str,
    versions: Mapping[str, str],
    *,
    file_name: str | None = None,
    content_hash: str | None = None,
) -> CaptureId:
    """Add the provenance row for one proxy run or import."""
    from mitmproxy.version import VERSION as mitmproxy_version

    from gazeback import __version__

    table = db.table("captures")
    table.insert(
        {
            "source": source,
            "tool_version": __version__,
            "mitmproxy_version": mitmproxy_version,
            "tracker_list_versions": json.dumps(dict(versions), sort_keys=True),
            "started_at": now_iso(),
            "file_name": file_name,
            "content_hash": content_hash,
            "requests_recorded": 0,
            "requests_failed": 0,
        }
    )
    return CaptureId(int(table.last_pk or 0))


def end_capture(db: Database, capture_id: CaptureId, recorded: int, failed: int) -> None:
    db.table("captures").update(
        capture_id,
        {"ended_at": now_iso(), "requests_recorded": recorded, "requests_failed": failed},
    )


def _device_ids(db: Database, items: Sequence[Item], cache: dict[str, int]) -> dict[str, int]:
    seen: dict[str, tuple[Item, str, str]] = {}
    for item in items:
        key, at = item["device"]["key"], item["request"]["started_at"]
        first, last = seen[key][1:] if key in seen else (at, at)
        seen[key] = (item, min(first, at), max(last, at))
    devices = db.table("devices")
    for key, (item, first, last) in seen.items():
        if key not in cache and (registered := registered_device(db, key)) is not None:
            cache[key] = registered
        if key not in cache:
            cache[key] = devices.lookup(
                {"key": key},
                {
                    "label": item["device"]["label"],
                    "kind": item["device"]["kind"],
                    "first_seen_at": first,
                    "last_seen_at": last,
                },
            )
        row = devices.get(cache[key])
        update: dict[str, Any] = {"last_seen_at": max(last, row["last_seen_at"] or last)}
        if first < (row["first_seen_at"] or first):
            update["first_seen_at"] = first
        ua = item.get("user_agent")
        if ua and not row["user_agent_family"]:
            from gazeback.knowledge.useragents import families

            update["user_agent_family"], update["os_family"] = families(ua)
        devices.update(cache[key], update)
    return cache


def registered_device(db: Database, key: str) -> int | None:
    """The device added with ``gazeback device add`` that owns a WireGuard listen port."""
    if not key.startswith("wireguard:") or "device_setups" not in db.table_names():
        return None
    port = key.partition(":")[2]
    rows = db.execute("select device_id from device_setups where wireguard_port = ?", [port])
    row = rows.fetchone()
    return int(row[0]) if row else None


def save_items(
    db: Database,
    capture_id: int,
    items: Sequence[Item],
    *,
    index: TrackerIndex | None = None,
    device_cache: dict[str, int] | None = None,
    known_trackers: set[str] | None = None,
) -> int:
    """Write a batch in one transaction; return how many requests were new.

    Idempotent: a request whose ``flow_id`` is already stored is skipped with its leaks.
    """
    if not items:
        return 0
    cache = {} if device_cache is None else device_cache
    known = set() if known_trackers is None else known_trackers
    with db.atomic():
        ids = _device_ids(db, items, cache)
        if index is not None:
            new_ids = {i["request"]["tracker_id"] for i in items} - known - {None}
            if new_ids:
                save_knowledge(db, index, new_ids)
                known |= new_ids
        flow_ids = [i["request"]["flow_id"] for i in items]
        existing = _existing(db, flow_ids)
        rows = []
        for item in items:
            if item["request"]["flow_id"] in existing:
                continue
            existing.add(item["request"]["flow_id"])
            row = dict(item["request"])
            row["capture_id"] = capture_id
            row["device_id"] = ids[item["device"]["key"]]
            rows.append(row)
        _insert_requests(db, rows)
        new_flows = {r["flow_id"] for r in rows}
        detected = [
            i
            for i in items
            if (i["leaks"] or i.get("detection")) and i["request"]["flow_id"] in new_flows
        ]
        if detected:
            pk = _ids_by_flow(db, [i["request"]["flow_id"] for i in detected])
            db.table("leaks").insert_all(
                {**leak, "request_id": pk[i["request"]["flow_id"]]}
                for i in detected
                for leak in i["leaks"]
            )
            batch = [(pk[i["request"]["flow_id"]], _detection(i)) for i in detected]
            save_batch(db, [(rid, det) for rid, det in batch if det is not None])
    return len(rows)


def _insert_requests(db: Database, rows: list[dict[str, Any]]) -> None:
    # The hot write path: one parameterized executemany per batch. Column names come from
    # record_item (our code, checked against the schema), values are bound parameters.
    # (sqlite-utils insert_all spent ~30 µs a row here on type checks and SQL building.)
    if not rows:
        return
    columns = list(dict.fromkeys(c for row in rows for c in row))
    unknown = set(columns) - set(db.table("requests").columns_dict)
    if unknown:
        raise ValueError(f"requests has no column(s) {sorted(unknown)}")
    names = ", ".join(f"[{c}]" for c in columns)
    marks = ", ".join("?" for _ in columns)
    db.conn.executemany(
        f"insert into requests ({names}) values ({marks})",
        [tuple(row.get(c) for c in columns) for row in rows],
    )


def _existing(db: Database, flow_ids: Iterable[str]) -> set[str]:
    return set(_ids_by_flow(db, flow_ids))


def _ids_by_flow(db: Database, flow_ids: Iterable[str]) -> dict[str, int]:
    out: dict[str, int] = {}
    ids = list(flow_ids)
    for start in range(0, len(ids), 500):
        chunk = ids[start : start + 500]
        marks = ",".join("?" * len(chunk))
        for row in db.query(f"select id, flow_id from requests where flow_id in ({marks})", chunk):
            out[row["flow_id"]] = row["id"]
    return out


def save_pinned(db: Database, host: str, error: str | None) -> None:
    db.table("_pinned_hosts").upsert(
        # first_seen_at holds the latest refusal: passthrough is retried after a while
        {"host": host, "first_seen_at": now_iso(), "last_error": error},
        pk="host",
    )


def pinned_hosts(db: Database) -> dict[str, float]:
    """Host -> when a client last refused our certificate for it (epoch seconds)."""
    out: dict[str, float] = {}
    for r in db.query("select host, first_seen_at from _pinned_hosts"):
        try:
            out[r["host"]] = datetime.fromisoformat(r["first_seen_at"]).timestamp()
        except (TypeError, ValueError):
            continue
    return out


# Rows that belong to a request, deleted with it. (Requests go first: the summary triggers
# read a request's leaks when it is deleted.)
DEPENDENT_TABLES = ("leaks", "leaf_fingerprints", "persistent_id_sightings")


def prune(db: Database, keep_days: int, now: datetime | None = None) -> int:
    """Delete requests older than ``keep_days`` days, with everything derived from them.

    Returns how many requests were deleted. ``keep_days`` of 0 or less keeps everything.
    """
    if keep_days <= 0:
        return 0
    cutoff = (now or datetime.now(UTC)) - timedelta(days=keep_days)
    cutoff_iso = iso(cutoff.timestamp())
    tables = set(db.table_names())
    with db.atomic():
        deleted = db.execute("delete from requests where started_at < ?", [cutoff_iso]).rowcount
        if deleted:
            for table in DEPENDENT_TABLES:
                if table in tables:
                    db.execute(
                        f"delete from [{table}] where request_id not in (select id from requests)"
                    )
            if "summary_hourly" in tables:
                db.execute("delete from summary_hourly where requests <= 0")
                db.execute("delete from summary_leaks where leaks <= 0")
    return int(deleted)


def headers_json(obs: Observation) -> str:
    return json.dumps(obs.request_headers, ensure_ascii=False)
