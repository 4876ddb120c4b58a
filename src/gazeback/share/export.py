"""Anonymized export for researchers: profile E1 of design (b).

Pure parts (pseudonyms, destination generalisation, time buckets, small-cell merging,
leak generalisation) are plain functions; ``build_tables`` reads the source through
allowlisted columns only (never ``select *``) and ``write_export`` builds a new file,
finishes it with ``VACUUM INTO``, runs the verifier and only then puts it in place.
"""

from __future__ import annotations

import csv
import hashlib
import hmac
import re
import secrets
import shutil
import sqlite3
import tempfile
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from itertools import combinations
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from sqlite_utils import Database

from gazeback import __version__
from gazeback.db.localfiles import make_private
from gazeback.knowledge.classify import TrackerIndex, registrable_domain
from gazeback.share.datasheet import markdown, sections
from gazeback.share.schema import (
    CHAIN_STEPS,
    E1_TABLES,
    KEY_NAMES,
    LOCATION_KINDS,
    OTHER,
    PII_TYPES,
    PLACEHOLDERS,
    SCHEMA_VERSION,
    SOURCES,
    TIERS,
    Allowlist,
    bucket_for,
    check_bucket,
    classify_device,
    create_table_sql,
    list_rows,
)

KEY_BYTES = 32
_INDEX = re.compile(r"\[[^\]]*\]$")
_VERSION = re.compile(r"[0-9A-Za-z][0-9A-Za-z.+_-]{0,31}")


class ExportRefused(Exception):
    """The finished file failed verification; nothing was written."""

    def __init__(self, checks: list[Any]) -> None:
        self.checks = checks
        failed = [c for c in checks if not c.ok]
        super().__init__("; ".join(f"{c.guarantee} {c.reason}" for c in failed))


@dataclass
class Options:
    bucket_s: int = 3600
    min_cell: int = 3
    k: int = 10
    link_key: bytes | None = None  # set: exports are linkable (--link-key)


@dataclass
class Tables:
    rows: dict[str, list[dict[str, Any]]] = field(default_factory=dict)


# --- pure parts -------------------------------------------------------------------------


def new_key() -> bytes:
    """A per-export pseudonym key: held in memory, never written."""
    return secrets.token_bytes(KEY_BYTES)


def pseudonym(key: bytes, device_key: str) -> str:
    """``HMAC-SHA256(key, "device:" + device_key)`` truncated to 64 bits, as hex."""
    return hmac.new(key, b"device:" + device_key.encode(), hashlib.sha256).hexdigest()[:16]


def bucket_start(epoch: int, bucket_s: int) -> int:
    return epoch // bucket_s * bucket_s


def location_kind(location: str) -> str:
    """``body.form:data>$.x`` → ``body.form``; unknown places → ``body.other`` or ``(other)``."""
    place = (location or "").split(":", 1)[0]
    if place in LOCATION_KINDS:
        return place
    if place.startswith("body"):
        return "body.other"
    return OTHER


def key_name(location: str) -> str:
    """The parameter name a leak sat under, if it is on the allowlist; else ``(other)``.

    ``body.form:data>$.properties.distinct_id`` → ``distinct_id``; ``url.query:ud[em]`` →
    ``ud[em]``; ``url.path:3`` → ``(other)``.
    """
    _, _, rest = (location or "").partition(":")
    last = rest.split(">")[-1].removeprefix("$.").removeprefix("$")
    name = last.rsplit(".", 1)[-1].lower()
    if name in KEY_NAMES:
        return name
    name = _INDEX.sub("", name)
    return name if name in KEY_NAMES else OTHER


def chain(transform_chain: str | None) -> str:
    """The chain if every step is in the closed vocabulary, else ``(other)``."""
    steps = (transform_chain or "").split(">")
    return transform_chain if transform_chain and all(s in CHAIN_STEPS for s in steps) else OTHER


def merge_cells(
    cells: dict[tuple[Any, ...], list[int]],
    min_cell: int,
    generalise: Iterable[Callable[[tuple[Any, ...]], tuple[Any, ...]]],
) -> tuple[dict[tuple[Any, ...], list[int]], int]:
    """Fold cells whose first count is below ``min_cell`` through each generaliser in turn;
    drop what is still too small. Returns (cells, count dropped)."""
    for step in generalise:
        out: dict[tuple[Any, ...], list[int]] = {}
        for key, vals in cells.items():
            target = step(key) if vals[0] < min_cell else key
            acc = out.setdefault(target, [0] * len(vals))
            for i, v in enumerate(vals):
                acc[i] += v
        cells = out
    kept = {k: v for k, v in cells.items() if v[0] >= min_cell}
    return kept, sum(v[0] for k, v in cells.items() if k not in kept)


# --- reading the source -----------------------------------------------------------------

_TRAFFIC_SQL = """
select device_id, cast(strftime('%s', substr(started_at, 1, 19)) as integer) / :g as b,
  registrable_domain,
  case when scheme in ('https', 'wss') or kind in ('tls_failed', 'tunnel') then 1 else 0 end,
  coalesce(is_decrypted, 0), count(*), sum(coalesce(request_bytes, 0)),
  sum(coalesce(response_bytes, 0)), sum(is_third_party = 1)
from requests where strftime('%s', substr(started_at, 1, 19)) is not null
group by 1, 2, 3, 4, 5
"""
# Sites the person opened themselves: rows marked first party, the registrable domain of
# every page context (Referer, Origin), and top-level navigations.
_SITES_SQL = """
select registrable_domain, null from requests where is_third_party = 0
union select null, json_extract(h.value, '$[1]')
from header_sets s, json_each(s.headers) h
where s.id in (select header_set_id from requests)
  and lower(json_extract(h.value, '$[0]')) in ('referer', 'origin')
union select r.registrable_domain, null
from requests r
where r.header_set_id in (select s.id from header_sets s, json_each(s.headers) h
  where lower(json_extract(h.value, '$[0]')) = 'sec-fetch-mode'
    and json_extract(h.value, '$[1]') = 'navigate')
"""
_LEAKS_SQL = """
select r.device_id, cast(strftime('%s', substr(r.started_at, 1, 19)) as integer) as t,
  r.registrable_domain, l.pii_type, l.transform_chain, l.location, l.tier, l.identity_id
from leaks l join requests r on r.id = l.request_id
where strftime('%s', substr(r.started_at, 1, 19)) is not null
"""


def visited_sites(db: Database) -> frozenset[str]:
    """Registrable domains the person opened themselves: exported as ``(site)``, never by name."""
    out = set()
    for domain, url in db.execute(_SITES_SQL):
        if url:
            host = urlsplit(url if "//" in url else f"//{url}").hostname or ""
            domain = registrable_domain(host) if host else None
        if domain:
            out.add(domain)
    return frozenset(out)


def build_tables(db: Database, allow: Allowlist, key: bytes, opts: Options) -> Tables:
    """Every export row, from the source's allowlisted columns."""
    check_bucket(opts.bucket_s)
    sites = visited_sites(db)
    devices: dict[int | None, tuple[str, str]] = {}  # device_id -> (pid, class)
    out = Tables()
    out.rows["devices"] = []
    for d in db.query("select id, key, kind, os_family from devices order by id"):
        cls, osf, vendor = classify_device(d["kind"], d["os_family"])
        pid = pseudonym(key, d["key"])
        devices[d["id"]] = (pid, cls)
        out.rows["devices"].append(
            {"device_pid": pid, "device_class": cls, "os_family": osf, "vendor": vendor}
        )
    unknown = (pseudonym(key, "(unknown device)"), "other")

    def device(did: int | None) -> tuple[str, str]:
        if did not in devices:
            devices[did] = unknown
            out.rows["devices"].append(
                {"device_pid": unknown[0], "device_class": "other", "os_family": "other",
                 "vendor": "other"}
            )  # fmt: skip
        return devices[did]

    counts: Counter[str] = Counter()
    traffic: dict[tuple[Any, ...], list[int]] = defaultdict(lambda: [0, 0, 0])
    g = opts.bucket_s
    for did, b, domain, enc, insp, n, up, down, third in db.execute(_TRAFFIC_SQL, {"g": g}):
        pid, cls = device(did)
        dest, role = allow.destination(domain, sites)
        start = bucket_start(b * g, bucket_for(cls, g))
        acc = traffic[(pid, start, dest, role, enc, insp)]
        acc[0] += n
        acc[1] += up
        acc[2] += down
        counts["requests"] += n
        counts["requests_to_other"] += n if dest in PLACEHOLDERS else 0
        counts["third_party_context_requests"] += third or 0
    merged, dropped = merge_cells(
        dict(traffic), opts.min_cell, [lambda k: (k[0], k[1], OTHER, "other", k[4], k[5])]
    )
    counts["requests_suppressed"] = dropped
    counts["requests_exported"] = sum(v[0] for v in merged.values())
    out.rows["traffic"] = [
        {"device_pid": k[0], "bucket_start": k[1], "dest_domain": k[2], "dest_role": k[3],
         "encrypted": k[4], "inspected": k[5], "requests": v[0], "bytes_up": v[1],
         "bytes_down": v[2]}
        for k, v in sorted(merged.items())
    ]  # fmt: skip
    leaks: dict[tuple[Any, ...], list[int]] = defaultdict(lambda: [0])
    shared: dict[tuple[int, str], set[str]] = defaultdict(set)
    for did, t, domain, pii, chn, loc, tier, ident in db.execute(_LEAKS_SQL):
        pid, cls = device(did)
        dest, _ = allow.destination(domain, sites)
        pii = pii if pii in PII_TYPES else "other"
        cell = (pid, bucket_start(t, bucket_for(cls, g)), dest, pii, chain(chn),
                location_kind(loc), key_name(loc), tier if tier in TIERS else "weak")  # fmt: skip
        leaks[cell][0] += 1
        counts["leaks"] += 1
        if ident is not None and dest not in PLACEHOLDERS:
            shared[(ident, pii)].add(dest)
    merged, dropped = merge_cells(
        dict(leaks),
        opts.min_cell,
        [
            lambda k: (*k[:4], OTHER, OTHER, OTHER, k[7]),
            lambda k: (k[0], k[1], OTHER, k[3], OTHER, OTHER, OTHER, k[7]),
        ],
    )
    counts["leaks_suppressed"] = dropped
    counts["leaks_exported"] = sum(v[0] for v in merged.values())
    names = ("device_pid", "bucket_start", "dest_domain", "pii_type", "transform_chain",
             "location_kind", "key_name", "tier")  # fmt: skip
    out.rows["leaks"] = [{**dict(zip(names, k, strict=True)), "count": v[0]}
                         for k, v in sorted(merged.items())]  # fmt: skip
    pairs: Counter[tuple[str, str, str]] = Counter()
    for (_, pii), dests in shared.items():
        for a, b in combinations(sorted(dests), 2):
            pairs[(a, b, pii)] += 1
    out.rows["id_sharing"] = [
        {"dest_domain_a": a, "dest_domain_b": b, "pii_type": p, "count": n}
        for (a, b, p), n in sorted(pairs.items())
    ]
    out.rows["devices"].sort(key=lambda r: r["device_pid"])
    counts["devices"] = len(out.rows["devices"])
    out.rows["export_counts"] = [{"measure": m, "value": counts[m]} for m in sorted(counts)]
    prov: Counter[tuple[str, str]] = Counter()
    for c in db.query("select source, tool_version from captures"):
        version = c["tool_version"] or "unknown"
        source = c["source"] if c["source"] in SOURCES else "other"
        prov[(source, version if _VERSION.fullmatch(version) else "unknown")] += 1
    out.rows["provenance"] = [
        {"source": s, "tool_version": v, "captures": n} for (s, v), n in sorted(prov.items())
    ]
    return out


def finish_tables(
    tables: Tables, index: TrackerIndex, opts: Options, needle_count: int, today: str | None = None
) -> None:
    """Add export_meta, export_lists and the datasheet (``readme``)."""
    meta = {
        "export_id": str(uuid.uuid4()),
        "schema_version": SCHEMA_VERSION,
        "profile": "E1",
        "created_day": today or datetime.now(UTC).strftime("%Y-%m-%d"),
        "time_bucket_s": opts.bucket_s,
        "sensitive_bucket_s": bucket_for("camera", opts.bucket_s),
        "min_cell": opts.min_cell,
        "k": opts.k,
        "is_linkable": int(opts.link_key is not None),
        "needle_count": needle_count,
        "tool_version": __version__ if _VERSION.fullmatch(__version__) else "unknown",
    }
    tables.rows["export_meta"] = [meta]
    tables.rows["export_lists"] = list_rows(index)
    counts = {r["measure"]: r["value"] for r in tables.rows["export_counts"]}
    text = sections(meta, tables.rows["export_lists"], counts)
    tables.rows["readme"] = [{"section": s, "body": b} for s, b in text]


# --- writing ----------------------------------------------------------------------------


def _column_type(rule: Any) -> type:
    from gazeback.share.schema import count, flag

    return int if rule in (count, flag) else str


def write_sqlite(tables: Tables, path: Path) -> None:
    """Create a fresh database at ``path`` with exactly the whitelist schema and the rows."""
    db = Database(path)
    # A scratch file (VACUUM INTO makes the export): no fsync per batch.
    db.execute("pragma synchronous = off")
    for name, cols in E1_TABLES.items():
        db.execute(create_table_sql(name, cols))
        db.table(name).insert_all(tables.rows.get(name, []), batch_size=5000)
    db.close()


def vacuum_into(src: Path, dst: Path) -> None:
    conn = sqlite3.connect(src)
    try:
        conn.execute("vacuum into ?", [str(dst)])
    finally:
        conn.close()


def write_flat(sqlite_path: Path, folder: Path, fmt: str) -> None:
    """One CSV or Parquet file per table, read back from the finished SQLite export."""
    folder.mkdir()
    conn = sqlite3.connect(f"file:{sqlite_path}?mode=ro&immutable=1", uri=True)
    try:
        for name, cols in E1_TABLES.items():
            rows = conn.execute(f"select {', '.join(cols)} from [{name}]").fetchall()
            if fmt == "csv":
                with open(folder / f"{name}.csv", "w", newline="", encoding="utf-8") as f:
                    w = csv.writer(f)
                    w.writerow(list(cols))
                    w.writerows(rows)
            else:
                import pyarrow as pa
                import pyarrow.parquet as pq

                schema = pa.schema(
                    [(c, pa.int64() if _column_type(r) is int or c == "schema_version"
                      else pa.string()) for c, r in cols.items()]
                )  # fmt: skip
                data = {c: [row[i] for row in rows] for i, c in enumerate(cols)}
                pq.write_table(
                    pa.Table.from_pydict(data, schema=schema),
                    folder / f"{name}.parquet",
                    compression="NONE",  # G1 scans the bytes: keep values readable
                )
    finally:
        conn.close()


def write_export(
    tables: Tables, out: Path, fmt: str, verify: Callable[[Path], list[Any]]
) -> list[Any]:
    """Build in a new file, ``VACUUM INTO`` a staged path, verify, then move into place.

    Raises ExportRefused (leaving nothing behind) when a guarantee fails.
    """
    if out.exists():
        raise FileExistsError(f"{out} already exists")
    staging = Path(tempfile.mkdtemp(prefix=".gazeback-export-", dir=out.parent))
    try:
        write_sqlite(tables, staging / "build.db")
        final_db = staging / "export.db"
        vacuum_into(staging / "build.db", final_db)
        md = markdown([(r["section"], r["body"]) for r in tables.rows["readme"]])
        target = final_db
        (staging / "export.db.md").write_text(md, encoding="utf-8")
        if fmt != "sqlite":
            target = staging / "export"
            write_flat(final_db, target, fmt)
            (target / "datasheet.md").write_text(md, encoding="utf-8")
        checks = verify(target)
        if not all(c.ok for c in checks):
            raise ExportRefused(checks)
        make_private(staging)  # the person's copy is theirs alone until they share it
        if fmt == "sqlite":
            (staging / "export.db.md").replace(out.with_name(out.name + ".md"))
            final_db.replace(out)
        else:
            target.replace(out)
        return checks
    finally:
        shutil.rmtree(staging, ignore_errors=True)
