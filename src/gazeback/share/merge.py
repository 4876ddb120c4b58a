"""Pooled profile E2: many households' E1 exports → values seen in at least k households.

Each released destination, key name, (device class, vendor) and (destination, type of
personal data) must occur in ≥ k distinct households (default 10); each household
contributes at most ``l0`` values per table, and counts are household counts, never
request counts. Written as SQLite and as Parquet (one file per table) for DuckDB/Spark.
"""

from __future__ import annotations

import shutil
import sqlite3
import tempfile
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlite_utils import Database

from gazeback import __version__
from gazeback.db.localfiles import make_private
from gazeback.share.schema import (
    DEVICE_CLASSES,
    DOMAIN,
    OTHER,
    PII_TYPES,
    PLACEHOLDERS,
    ROLES,
    SCHEMA_VERSION,
    VENDORS,
    Check,
    count,
    create_table_sql,
    enum,
    key_name_ok,
)

K_DEFAULT = 10
L0_DEFAULT = 50


def _uuid_ok(v: Any) -> bool:
    try:
        return isinstance(v, str) and str(uuid.UUID(v)) == v
    except ValueError:
        return False


E2_TABLES: dict[str, dict[str, Any]] = {
    "pool_meta": {
        "pool_id": _uuid_ok,
        "schema_version": lambda v: v == SCHEMA_VERSION,
        "profile": enum(["E2"]),
        "created_day": lambda v: isinstance(v, str) and len(v) == 10,
        "k": count,
        "l0": count,
        "households": count,
        "tool_version": lambda v: isinstance(v, str) and 0 < len(v) <= 32,
    },
    "pool_destinations": {"dest_domain": DOMAIN, "dest_role": enum(ROLES), "households": count},
    "pool_key_names": {"key_name": key_name_ok, "pii_type": enum(PII_TYPES), "households": count},
    "pool_device_classes": {
        "device_class": enum(DEVICE_CLASSES),
        "vendor": enum(VENDORS),
        "households": count,
    },
    "pool_leaks": {"dest_domain": DOMAIN, "pii_type": enum(PII_TYPES), "households": count},
}
# table -> columns that make up the released value
VALUE_COLUMNS = {
    "pool_destinations": ("dest_domain", "dest_role"),
    "pool_key_names": ("key_name", "pii_type"),
    "pool_device_classes": ("device_class", "vendor"),
    "pool_leaks": ("dest_domain", "pii_type"),
}


class MergeRefused(ValueError):
    """The inputs cannot be pooled (different schema, failed verification, duplicates)."""


@dataclass
class Household:
    """One household's values, each with a weight (requests or leaks) for bounding."""

    values: dict[str, Counter[tuple[str, ...]]] = field(default_factory=dict)
    pids: set[str] = field(default_factory=set)


def household_from_rows(rows: dict[str, list[dict[str, Any]]]) -> Household:
    h = Household({t: Counter() for t in VALUE_COLUMNS})
    for r in rows.get("traffic", []):
        if r["dest_domain"] not in PLACEHOLDERS:
            h.values["pool_destinations"][(r["dest_domain"], r["dest_role"])] += r["requests"]
    for r in rows.get("leaks", []):
        if r["key_name"] != OTHER:
            h.values["pool_key_names"][(r["key_name"], r["pii_type"])] += r["count"]
        if r["dest_domain"] not in PLACEHOLDERS:
            h.values["pool_leaks"][(r["dest_domain"], r["pii_type"])] += r["count"]
    for r in rows.get("devices", []):
        h.values["pool_device_classes"][(r["device_class"], r["vendor"])] += 1
    h.pids = {r["device_pid"] for r in rows.get("devices", [])}
    return h


def bounded(values: Counter[tuple[str, ...]], l0: int) -> list[tuple[str, ...]]:
    """A household's at most ``l0`` heaviest values (ties by value): its whole contribution."""
    return [v for v, _ in sorted(values.items(), key=lambda x: (-x[1], x[0]))[:l0]]


def pool(
    households: list[Household], k: int = K_DEFAULT, l0: int = L0_DEFAULT
) -> dict[str, list[dict[str, Any]]]:
    """Released rows per table: values held by ≥ k households, each household counted once."""
    out: dict[str, list[dict[str, Any]]] = {}
    for table, cols in VALUE_COLUMNS.items():
        seen: Counter[tuple[str, ...]] = Counter()
        for h in households:
            seen.update(set(bounded(h.values.get(table, Counter()), l0)))
        out[table] = [
            {**dict(zip(cols, v, strict=True)), "households": n}
            for v, n in sorted(seen.items())
            if n >= k
        ]
    return out


def check_threshold(rows: dict[str, list[dict[str, Any]]], meta: dict[str, Any]) -> Check:
    """G4 for a pool: every released value counts ≥ k households (and ≤ all of them)."""
    k, n = meta.get("k"), meta.get("households")
    if not isinstance(k, int) or k < 2 or not isinstance(n, int):
        return Check("G4", False, "pool_meta lacks a k of at least 2 or a household count")
    for table in VALUE_COLUMNS:
        for r in rows.get(table, []):
            if not k <= r["households"] <= n:
                return Check(
                    "G4", False, f"{table}: a value released for fewer than {k} households"
                )
    return Check("G4", True, f"every released value is held by at least {k} of {n} households")


def combine(
    exports: list[tuple[str, dict[str, Any], dict[str, list[dict[str, Any]]]]],
) -> list[Household]:
    """(name, meta, rows) of verified exports → households; refuses mixes and duplicates.

    Linkable exports (--link-key) that share a device pseudonym are one household; fresh
    exports must share none (G3).
    """
    versions = {meta.get("schema_version") for _, meta, _ in exports}
    if len(versions) > 1:
        raise MergeRefused(
            f"the exports have different schema versions ({', '.join(map(str, sorted(versions, key=str)))}): "
            "merge only exports made with the same schema version; ask for a fresh export"
        )
    if versions != {SCHEMA_VERSION}:
        raise MergeRefused(
            f"schema version {versions.pop()!r}: this gazeback merges version {SCHEMA_VERSION}"
        )
    ids = Counter(meta.get("export_id") for _, meta, _ in exports)
    dup = [i for i, n in ids.items() if n > 1]
    if dup:
        raise MergeRefused("the same export was given twice; each household counts once")
    households: list[tuple[bool, Household]] = []
    for name, meta, rows in exports:
        h = household_from_rows(rows)
        linkable = bool(meta.get("is_linkable"))
        for other_linkable, other in households:
            if h.pids & other.pids:
                if not (linkable and other_linkable):
                    raise MergeRefused(f"{name} shares a device pseudonym with another export (G3)")
                for t, c in h.values.items():
                    other.values[t] = other.values[t] | c
                other.pids |= h.pids
                break
        else:
            households.append((linkable, h))
    return [h for _, h in households]


def write_pool(
    rows: dict[str, list[dict[str, Any]]], out: Path, k: int, l0: int, households: int
) -> Path:
    """Write the pool as SQLite (built new, ``VACUUM INTO``) and Parquet; return the folder."""
    meta = {
        "pool_id": str(uuid.uuid4()),
        "schema_version": SCHEMA_VERSION,
        "profile": "E2",
        "created_day": datetime.now(UTC).strftime("%Y-%m-%d"),
        "k": k,
        "l0": l0,
        "households": households,
        "tool_version": __version__,
    }
    tables = {"pool_meta": [meta], **rows}
    parquet_dir = out.with_suffix(".parquet")
    for p in (out, parquet_dir):
        if p.exists():
            raise FileExistsError(f"{p} already exists")
    staging = Path(tempfile.mkdtemp(prefix=".gazeback-pool-", dir=out.parent))
    try:
        db = Database(staging / "build.db")
        for name, cols in E2_TABLES.items():
            db.execute(create_table_sql(name, cols))
            db.table(name).insert_all(tables.get(name, []))
        db.close()
        conn = sqlite3.connect(staging / "build.db")
        conn.execute("vacuum into ?", [str(staging / "pool.db")])
        conn.close()
        import pyarrow as pa
        import pyarrow.parquet as pq

        (staging / "parquet").mkdir()
        for name, cols in E2_TABLES.items():
            schema = pa.schema([(c, pa.int64() if r is count or c == "schema_version" else pa.string())
                                for c, r in cols.items()])  # fmt: skip
            data = {c: [row[c] for row in tables.get(name, [])] for c in cols}
            pq.write_table(
                pa.Table.from_pydict(data, schema=schema), staging / "parquet" / f"{name}.parquet"
            )
        make_private(staging)
        (staging / "pool.db").replace(out)
        (staging / "parquet").replace(parquet_dir)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return parquet_dir
