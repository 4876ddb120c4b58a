"""The only module that writes gazeback's rows.

``save_records`` writes a batch of ``models.Record`` in one transaction: the device, the
``requests`` row (built here, as the tuple its insert binds), the leaks and the leak
detector's keyed fingerprints. Records stay typed all the way; they are serialised only
where they leave the process (``capture/spill.py``: the spill file).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlite_utils import Database

from gazeback.db.header_sets import header_set_ids, headers_text
from gazeback.db.identities import save_batch
from gazeback.db.knowledge import save_knowledge
from gazeback.db.learned import insert_learned, learned_row
from gazeback.db.summaries import add_batch, add_leaks_after, defer, last_leak, resume
from gazeback.knowledge.classify import TrackerIndex
from gazeback.models import CaptureId, Detection, Observation, Record
from gazeback.timestamps import iso, now_iso

# The columns of `requests` a Record fills, in the order of request_values.
REQUEST_COLUMNS = (
    "flow_id",
    "kind",
    "started_at",
    "method",
    "scheme",
    "host",
    "port",
    "path",
    "registrable_domain",
    "is_third_party",
    "tracker_id",
    "status_code",
    "content_type",
    "request_bytes",
    "response_bytes",
    "duration_ms",
    "is_decrypted",
    "tls_sni",
    "server_ip",
    "error",
    "websocket_messages",
    "websocket_bytes",
    "decode_truncated",
    "redacted_fields",
    "request_headers",
    "app",
    "app_source",
)
# How `requests` stores them: the headers as an id into `header_sets` (m043).
_HEADERS = REQUEST_COLUMNS.index("request_headers")
STORED_COLUMNS = tuple("header_set_id" if c == "request_headers" else c for c in REQUEST_COLUMNS)
LEAK_COLUMNS = ("identity_id", "pii_type", "transform_chain", "location", "tier")


def request_values(record: Record) -> tuple[Any, ...]:
    """The ``requests`` row of a record, in ``REQUEST_COLUMNS`` order (no bodies, no ids)."""
    obs, cls = record.observation, record.classification
    third = cls.is_third_party
    return (
        obs.flow_id,
        obs.kind,
        obs.started_at,
        obs.method,
        obs.scheme,
        obs.host,
        obs.port,
        obs.path,
        cls.registrable_domain,
        None if third is None else int(third),
        cls.tracker_id,
        obs.status_code,
        obs.content_type,
        obs.request_bytes,
        obs.response_bytes,
        obs.duration_ms,
        int(obs.is_decrypted),
        obs.tls_sni,
        obs.server_ip,
        obs.error,
        obs.websocket_messages,
        obs.websocket_bytes,
        int(record.decode_truncated),
        json.dumps(obs.redacted_fields) if obs.redacted_fields else None,
        headers_json(obs) if obs.request_headers else None,
        obs.app,
        obs.app_source,
    )


def request_row(record: Record) -> dict[str, Any]:
    """The ``requests`` row of a record as column → value (what the database will hold)."""
    return dict(zip(REQUEST_COLUMNS, request_values(record), strict=True))


def _keyed(det: Detection | None) -> bool:
    # only fingerprints and candidates are stored from a Detection (its leaks are the Record's)
    return det is not None and bool(det.leaf_fingerprints or det.candidates)


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


def _device_ids(db: Database, records: Sequence[Record], cache: dict[str, int]) -> dict[str, int]:
    seen: dict[str, tuple[Observation, str, str]] = {}
    for record in records:
        obs = record.observation
        key, at = obs.device.key, obs.started_at
        first, last = seen[key][1:] if key in seen else (at, at)
        seen[key] = (obs, min(first, at), max(last, at))
    devices = db.table("devices")
    for key, (obs, first, last) in seen.items():
        if key not in cache and (registered := registered_device(db, key)) is not None:
            cache[key] = registered
        if key not in cache:
            cache[key] = devices.lookup(
                {"key": key},
                {
                    "label": obs.device.label,
                    "kind": obs.device.kind,
                    "first_seen_at": first,
                    "last_seen_at": last,
                },
            )
        family = os_family = None
        if obs.user_agent:
            from gazeback.knowledge.useragents import families  # cached per user agent

            family, os_family = families(obs.user_agent)
        # one statement, no read: the seen times widen, a family is set only where none is
        db.execute(
            _DEVICE_SEEN,
            {"id": cache[key], "first": first, "last": last, "family": family, "os": os_family},
        )
    return cache


_DEVICE_SEEN = """
update devices set last_seen_at = max(coalesce(last_seen_at, :last), :last),
  first_seen_at = min(coalesce(first_seen_at, :first), :first),
  user_agent_family = case when coalesce(user_agent_family, '') = '' and :family is not null
    then :family else user_agent_family end,
  os_family = case when coalesce(user_agent_family, '') = '' and :family is not null
    then :os else os_family end
where id = :id
"""


def registered_device(db: Database, key: str) -> int | None:
    """The device added with ``gazeback device add`` that owns a WireGuard listen port."""
    if not key.startswith("wireguard:") or "device_setups" not in db.table_names():
        return None
    port = key.partition(":")[2]
    rows = db.execute("select device_id from device_setups where wireguard_port = ?", [port])
    row = rows.fetchone()
    return int(row[0]) if row else None


def save_records(
    db: Database,
    capture_id: int,
    records: Sequence[Record],
    *,
    index: TrackerIndex | None = None,
    device_cache: dict[str, int] | None = None,
    known_trackers: set[str] | None = None,
) -> int:
    """Write a batch in one transaction; return how many requests were new.

    Idempotent: a request whose ``flow_id`` is already stored is skipped with its leaks.
    """
    if not records:
        return 0
    cache = {} if device_cache is None else device_cache
    known = set() if known_trackers is None else known_trackers
    with db.atomic():
        ids = _device_ids(db, records, cache)
        if index is not None:
            tracker_ids = {r.classification.tracker_id for r in records}
            new_ids = {t for t in tracker_ids if t is not None} - known
            if new_ids:
                save_knowledge(db, index, new_ids)
                known |= new_ids
        existing = _existing(db, [r.observation.flow_id for r in records])
        new: list[Record] = []
        for record in records:
            flow_id = record.observation.flow_id
            if flow_id in existing:
                continue
            existing.add(flow_id)
            new.append(record)
        if not new:
            return 0
        defer(db)  # the summaries' insert triggers stand aside: the batch is added grouped
        _insert_requests(db, capture_id, ids, new)
        detected = [r for r in new if r.leaks or _keyed(r.detection)]
        pk = _ids_by_flow(db, [r.observation.flow_id for r in detected]) if detected else {}
        db.conn.executemany(
            f"insert into leaks (request_id, {', '.join(LEAK_COLUMNS)}) values (?, ?, ?, ?, ?, ?)",
            [
                (pk[r.observation.flow_id], leak.identity_id, leak.pii_type,
                 leak.transform_chain, leak.location, leak.tier)
                for r in detected
                for leak in r.leaks
            ],
        )  # fmt: skip
        add_batch(db, [_summary_row(r, ids) for r in new])  # the requests and their leaks
        if detected:
            after = last_leak(db)
            save_batch(
                db,
                [
                    (pk[r.observation.flow_id], r.detection)
                    for r in detected
                    if r.detection is not None and _keyed(r.detection)
                ],
            )
            # persistent IDs write leak rows (on this batch's requests and older ones)
            add_leaks_after(db, after)
        resume(db)
        learned = [r for r in new if r.learned]
        if learned:
            pk = _ids_by_flow(db, [r.observation.flow_id for r in learned])
            insert_learned(
                db,
                [learned_row(pk[r.observation.flow_id], x) for r in learned for x in r.learned],
            )
    return len(new)


def _summary_row(record: Record, device_ids: Mapping[str, int]) -> tuple[Any, ...]:
    # what the summaries' insert triggers would read from the stored rows (coalesced alike)
    obs, tracker = record.observation, record.classification.tracker_id
    key = (obs.started_at[:13], device_ids[obs.device.key], obs.app or "", obs.host,
           tracker or "", obs.kind, int(obs.is_decrypted))  # fmt: skip
    leaks = [(x.pii_type, x.transform_chain or "", x.location or "") for x in record.leaks]
    return key, obs.request_bytes or 0, obs.response_bytes or 0, leaks


def _insert_requests(
    db: Database, capture_id: int, device_ids: Mapping[str, int], records: Sequence[Record]
) -> None:
    # The hot write path: one parameterized executemany per batch, straight from the records.
    # Column names are REQUEST_COLUMNS (our code), values bound.
    # (sqlite-utils insert_all spent ~30 µs a row here on type checks and SQL building.)
    if not records:
        return
    columns = ("capture_id", "device_id", *STORED_COLUMNS)  # SQLite names one it lacks
    names = ", ".join(f"[{c}]" for c in columns)
    marks = ", ".join("?" for _ in columns)
    rows = [request_values(r) for r in records]
    # the headers as an id into header_sets: an app sends the same set again and again
    sets = header_set_ids(db, {row[_HEADERS] for row in rows if row[_HEADERS] is not None})
    db.conn.executemany(
        f"insert into requests ({names}) values ({marks})",
        [
            (capture_id, device_ids[r.observation.device.key], *row[:_HEADERS],
             None if row[_HEADERS] is None else sets[row[_HEADERS]], *row[_HEADERS + 1 :])
            for r, row in zip(records, rows, strict=True)
        ],
    )  # fmt: skip


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
DEPENDENT_TABLES = ("leaks", "leaf_fingerprints", "persistent_id_sightings", "learned_items")


def hour_boundary(now: datetime | None, days: int) -> str:
    """The ISO time of the hour boundary ``days`` days before ``now`` (UTC)."""
    cutoff = (now or datetime.now(UTC)).astimezone(UTC) - timedelta(days=days)
    return iso(cutoff.replace(minute=0, second=0, microsecond=0).timestamp())


def prune(db: Database, keep_days: int, now: datetime | None = None) -> int:
    """Delete everything older than ``keep_days`` days (from the hour boundary before): the
    requests with everything derived from them, and the hourly totals of those hours.

    Returns how many requests were deleted. ``keep_days`` of 0 or less keeps everything.
    """
    if keep_days <= 0:
        return 0
    cutoff_iso = hour_boundary(now, keep_days)
    tables = set(db.table_names())
    with db.atomic():
        for table in ("summary_hourly", "summary_leaks", "learned_hourly"):
            if table in tables:  # rolled-up hours have no requests left to subtract
                db.execute(f"delete from [{table}] where hour < ?", [cutoff_iso[:13]])
        deleted = db.execute("delete from requests where started_at < ?", [cutoff_iso]).rowcount
        if deleted:
            for table in DEPENDENT_TABLES:
                if table in tables:
                    db.execute(
                        f"delete from [{table}] where request_id not in (select id from requests)"
                    )
            if "alerts" in tables:  # the alert stays; the request behind it is gone
                db.execute(
                    "update alerts set request_id = null "
                    "where request_id not in (select id from requests)"
                )
            if "summary_hourly" in tables:
                db.execute("delete from summary_hourly where requests <= 0")
                db.execute("delete from summary_leaks where leaks <= 0")
    return int(deleted)


# Captures recorded as traffic happened. Everything else (HAR, .mitm, pcap, consent checks …)
# is an import the person brought in on purpose: exempt from the detail window unless asked.
LIVE_SOURCES = ("proxy", "demo")


@dataclass(frozen=True)
class Rollup:
    horizon: str  # first hour still kept in detail, e.g. 2026-09-03T14
    requests: int  # requests whose detail was (or, dry run, would be) rolled up
    leaks: int
    learned_items: int
    kept_imported: int  # older imported requests kept in detail (the import rule)


def rollup(
    db: Database,
    keep_detail_days: int,
    now: datetime | None = None,
    *,
    include_imports: bool = False,
    dry_run: bool = False,
) -> Rollup | None:
    """Roll up detail older than ``keep_detail_days`` days into the hourly totals.

    Requests that started before the hour boundary ``keep_detail_days`` ago are deleted with
    their leaks, leaf fingerprints, learned items and sightings; the hourly summaries of
    those hours stay exactly as they were (the delete triggers that would subtract them are
    set aside for the delete, whatever the summary tables' columns are), and what each
    company learned is added to ``learned_hourly``. Imported captures keep their detail
    unless ``include_imports``. ``keep_detail_days`` of 0 or less keeps all detail (None).
    """
    if keep_detail_days <= 0:
        return None
    cutoff_iso = hour_boundary(now, keep_detail_days)
    if dry_run:
        return _rollup_before(db, cutoff_iso, include_imports, dry_run=True)
    # in chunks of about CHUNK requests (whole hours), oldest first, each in its own
    # transaction with its horizon recorded: the first rollup of a long trail neither holds
    # the write lock for its whole length nor grows the WAL by all it deletes, and an
    # interruption leaves a consistent file. (Each chunk scans leaf_fingerprints once: it has
    # no request_id index, so chunks are large rather than, say, a day each.)
    total = Rollup(cutoff_iso[:13], 0, 0, 0, 0)
    while True:
        row = db.execute(
            f"select started_at from requests where {_candidates(include_imports)} "
            "order by started_at limit 1 offset ?",
            [cutoff_iso, CHUNK - 1],
        ).fetchone()
        upto = cutoff_iso
        if row is not None:  # the end of the hour of the CHUNK-th oldest request
            at = datetime.fromisoformat(row[0][:13] + ":00:00+00:00") + timedelta(hours=1)
            upto = min(iso(at.timestamp()), cutoff_iso)
        last = upto >= cutoff_iso
        done = _rollup_before(db, upto, include_imports, dry_run=False, count_kept=last)
        total = Rollup(
            cutoff_iso[:13], total.requests + done.requests, total.leaks + done.leaks,
            total.learned_items + done.learned_items, done.kept_imported,
        )  # fmt: skip
        if last:
            return total


CHUNK = 250_000  # requests rolled up per transaction


def _candidates(include_imports: bool) -> str:
    """The requests a rollup before ``?`` takes: older live traffic (and imports if asked)."""
    if include_imports:
        return "started_at < ?"
    live = ", ".join(f"'{s}'" for s in LIVE_SOURCES)
    return (
        "started_at < ? and coalesce(capture_id, 0) not in "
        f"(select id from captures where source not in ({live}))"
    )


def _rollup_before(
    db: Database, cutoff_iso: str, include_imports: bool, dry_run: bool, count_kept: bool = True
) -> Rollup:
    horizon = cutoff_iso[:13]
    live = ", ".join(f"'{s}'" for s in LIVE_SOURCES)
    imported = f"select id from captures where source not in ({live})"
    tables = set(db.table_names())
    with db.atomic():
        db.execute("drop table if exists temp.rollup_ids")
        db.execute("create temp table rollup_ids (id integer primary key)")
        where = _candidates(include_imports)
        n = db.execute(
            f"insert into temp.rollup_ids select id from requests where {where}", [cutoff_iso]
        ).rowcount
        kept = 0
        if count_kept and not include_imports:
            kept = db.execute(
                f"select count(*) from requests where started_at < ? and capture_id in ({imported})",
                [cutoff_iso],
            ).fetchone()[0]
        in_ids = "request_id in (select id from temp.rollup_ids)"
        leaks = db.execute(f"select count(*) from leaks where {in_ids}").fetchone()[0] if n else 0
        learned = 0
        if n and "learned_items" in tables:
            learned = db.execute(f"select count(*) from learned_items where {in_ids}").fetchone()[0]
        result = Rollup(horizon, int(n), int(leaks), int(learned), int(kept))
        if dry_run or not n:
            db.execute("drop table temp.rollup_ids")
            return result
        if learned:
            db.execute(
                f"""insert into learned_hourly (hour, device_id, company, tracker_id, property,
                  kind_group, items, requests)
                select substr(r.started_at, 1, 13), coalesce(r.device_id, 0), l.company,
                  coalesce(r.tracker_id, ''), l.property, l.kind_group, count(*),
                  count(distinct l.request_id)
                from learned_items l join requests r on r.id = l.request_id
                where l.{in_ids} group by 1, 2, 3, 4, 5, 6
                on conflict do update set items = items + excluded.items,
                  requests = requests + excluded.requests"""
            )
        detail = ("requests", *DEPENDENT_TABLES)
        triggers = [
            (name, sql)
            for name, sql in db.execute(
                "select name, sql from sqlite_master where type = 'trigger' and tbl_name in "
                f"({', '.join('?' for _ in detail)})",
                list(detail),
            ).fetchall()
            if " delete on " in " ".join(sql.lower().split())
        ]
        for name, _ in triggers:  # they would subtract the rolled-up hours from the totals
            db.execute(f"drop trigger [{name}]")
        for table in DEPENDENT_TABLES:
            if table in tables:
                db.execute(f"delete from [{table}] where {in_ids}")
        if "alerts" in tables:  # the alert stays; the request behind it is gone
            db.execute(f"update alerts set request_id = null where {in_ids}")
        db.execute("delete from requests where id in (select id from temp.rollup_ids)")
        if "header_sets" in tables:  # header sets no kept request uses any more
            db.execute(
                "delete from header_sets where id not in "
                "(select header_set_id from requests where header_set_id is not null)"
            )
        for _, sql in triggers:
            db.execute(sql)
        db.execute(
            "insert into rollups (horizon, ran_at, requests, include_imports) values (?, ?, ?, ?)",
            [horizon, now_iso(), n, int(include_imports)],
        )
        db.execute("drop table temp.rollup_ids")
    return result


def rollup_horizon(db: Database) -> str | None:
    """The first hour whose detail is still kept (None: nothing was ever rolled up)."""
    if "rollups" not in db.table_names():
        return None
    row = db.execute("select max(horizon) from rollups").fetchone()
    return row[0] if row else None


def headers_json(obs: Observation) -> str:
    return headers_text(obs.request_headers)
