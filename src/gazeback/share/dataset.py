"""Research dataset R1: the rows of many verified E1 exports as one partitioned Parquet dataset.

``gazeback merge --dataset`` reads each export once to verify it (the recipient's view,
G2–G8; one export per process on every core), then streams its rows, chunk by chunk, into
Hive-style partitions ``traffic/month=YYYY-MM/contributor_bucket=NN/part-0.parquet`` (and
``leaks/``; one contributor bucket per process), so memory is bounded by one export and one
chunk per open partition in each process, never by the pool. Household by household it also
writes the sums the "how many households" queries read (``household_traffic``,
``household_leaks``, ``household_devices``: a few rows per household, not every row). No
identifier of an export is carried: export ids are dropped, and each household becomes a
``contributor`` number drawn at random for this dataset, each of its devices a ``device``
number; device pseudonyms are not written. DuckDB, Spark or any Arrow engine read the
folder in place (``queries.sql`` in it holds the documented query set).
"""

from __future__ import annotations

import csv
import hashlib
import os
import secrets
import shutil
import sqlite3
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Any

from gazeback import __version__
from gazeback.db.localfiles import make_private
from gazeback.share.merge import MergeRefused
from gazeback.share.schema import PLACEHOLDERS, SCHEMA_VERSION, Allowlist, index_digest

DATASET_VERSION = 1
BUCKETS_DEFAULT = 16
CHUNK_ROWS = 65_536  # rows read from an export at a time
FLUSH_ROWS = 65_536  # rows a partition buffers before writing a row group
PARALLEL_MIN = 4  # fewer exports than this are verified and written in this process

# Export columns read per fact table; contributor and device replace device_pid.
FACTS = {
    "traffic": ("device_pid", "bucket_start", "dest_domain", "dest_role", "encrypted",
                "inspected", "requests", "bytes_up", "bytes_down"),
    "leaks": ("device_pid", "bucket_start", "dest_domain", "pii_type", "transform_chain",
              "location_kind", "key_name", "tier", "count"),
}  # fmt: skip
FLAGS = frozenset({"encrypted", "inspected"})
INTS = frozenset({"requests", "bytes_up", "bytes_down", "count", "bucket_start"})


@dataclass
class Source:
    """One verified export: where it is, its bytes' digest at verification, its devices."""

    path: Path
    digest: str
    pids: set[str]
    meta: dict[str, Any]
    counts: dict[str, int]
    devices: list[dict[str, Any]]
    domains: set[str]


@dataclass
class Contributor:
    number: int
    sources: list[Source] = field(default_factory=list)
    device_numbers: dict[str, int] = field(default_factory=dict)


def digest(path: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(path.rglob("*")) if path.is_dir() else [path]:
        if p.is_file():
            h.update(p.name.encode() + b"\0")
            with open(p, "rb") as f:
                while chunk := f.read(1 << 20):
                    h.update(chunk)
    return h.hexdigest()


def verified_source(path: Path, allow: Allowlist) -> Source:
    """Read and verify one export (recipient's view); raise MergeRefused if it fails."""
    from gazeback.share.verify import check, load

    exp = load(path)
    if exp.problem:
        raise MergeRefused(f"{path}: {exp.problem}")
    if exp.meta.get("profile") != "E1":
        raise MergeRefused(f"{path}: not a household export (profile E1); pools cannot be merged")
    failed = [c for c in check(exp, allow) if not c.ok and not c.skipped]
    if failed:
        raise MergeRefused(f"{path} fails verification: {failed[0].line}")
    domains = {r["dest_domain"] for t in FACTS for r in exp.rows.get(t, [])}
    return Source(
        path=path,
        digest=digest(path),
        pids={r["device_pid"] for r in exp.rows.get("devices", [])},
        meta=dict(exp.meta),
        counts={r["measure"]: r["value"] for r in exp.rows.get("export_counts", [])},
        devices=list(exp.rows.get("devices", [])),
        domains=domains - PLACEHOLDERS,
    )


_WORKER_ALLOW: dict[str, Allowlist] = {}


def _worker_allow(lists_sha: str) -> Allowlist:
    """The allowlist in a worker process: the same tracker lists as the parent's, or refuse."""
    if lists_sha not in _WORKER_ALLOW:
        from gazeback.knowledge.classify import load_index

        allow = Allowlist(load_index())
        if index_digest(allow.index)[1] != lists_sha:
            raise MergeRefused("the tracker lists changed during the merge; run it again")
        _WORKER_ALLOW[lists_sha] = allow
    return _WORKER_ALLOW[lists_sha]


def _verify_in_worker(job: tuple[Path, str]) -> Source:
    path, lists_sha = job
    return verified_source(path, _worker_allow(lists_sha))


def jobs_for(n: int, jobs: int | None = None) -> int:
    """Worker processes for ``n`` independent pieces of work: one per core, at most ``n``."""
    if n < PARALLEL_MIN:
        return 1
    return max(1, min(n, jobs if jobs is not None else (os.cpu_count() or 1)))


def _pool(jobs: int) -> Any:
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    # spawn, not fork: the parent may already run pyarrow's threads (a forked copy can hang)
    return ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context("spawn"))


def verified_sources(
    paths: list[Path], allow: Allowlist, jobs: int | None = None, progress: Any = None
) -> list[Source]:
    """Verify every export (G2–G8, the recipient's view), on every core when there are many.

    Raises MergeRefused for the first export (in the given order) that fails.
    """
    n = jobs_for(len(paths), jobs)
    out: list[Source] = []
    if n == 1:
        for path in paths:
            out.append(verified_source(path, allow))
            if progress:
                progress(path)
        return out
    lists_sha = index_digest(allow.index)[1]
    with _pool(n) as pool:
        try:
            for src in pool.map(_verify_in_worker, [(p, lists_sha) for p in paths]):
                out.append(src)
                if progress:
                    progress(src.path)
        except BaseException:
            pool.shutdown(cancel_futures=True)
            raise
    return out


def households(sources: list[Source]) -> list[Contributor]:
    """Group sources into households (linkable exports sharing a pseudonym are one) and
    number them in a random order, so a contributor number says nothing about the inputs."""
    versions = {s.meta.get("schema_version") for s in sources}
    if versions != {SCHEMA_VERSION}:
        raise MergeRefused(
            f"the exports have schema versions {sorted(map(str, versions))}: "
            f"this gazeback merges version {SCHEMA_VERSION} only; ask for fresh exports"
        )
    seen: dict[str, Path] = {}
    for s in sources:
        if s.meta["export_id"] in seen:
            raise MergeRefused(
                f"{s.path} and {seen[s.meta['export_id']]} are the same export; "
                "each household counts once"
            )
        seen[s.meta["export_id"]] = s.path
    groups: list[list[Source]] = []
    for s in sources:
        for g in groups:
            if any(s.pids & o.pids for o in g):
                if not (s.meta.get("is_linkable") and all(o.meta.get("is_linkable") for o in g)):
                    raise MergeRefused(
                        f"{s.path} shares a device pseudonym with another export (G3)"
                    )
                g.append(s)
                break
        else:
            groups.append([s])
    secrets.SystemRandom().shuffle(groups)
    out = []
    for n, g in enumerate(groups):
        pids = sorted(set().union(*(s.pids for s in g)))
        out.append(Contributor(n, g, {p: i + 1 for i, p in enumerate(pids)}))
    return out


def export_columns(
    path: Path, table: str, cols: tuple[str, ...]
) -> Iterator[list[tuple[Any, ...]]]:
    """Rows of ``table`` from a SQLite, Parquet or CSV export, ``CHUNK_ROWS`` at a time."""
    if path.is_dir() and (path / f"{table}.parquet").exists():
        import pyarrow.parquet as pq

        for batch in pq.ParquetFile(path / f"{table}.parquet").iter_batches(
            CHUNK_ROWS, columns=list(cols)
        ):
            yield list(zip(*(batch.column(c).to_pylist() for c in cols), strict=True))
    elif path.is_dir():
        with open(path / f"{table}.csv", newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            chunk: list[tuple[Any, ...]] = []
            for r in reader:
                chunk.append(tuple(int(r[c]) if c in INTS or c in FLAGS else r[c] for c in cols))
                if len(chunk) == CHUNK_ROWS:
                    yield chunk
                    chunk = []
            if chunk:
                yield chunk
    else:
        conn = sqlite3.connect(f"file:{path}?mode=ro&immutable=1", uri=True)
        try:
            cur = conn.execute(f"select {', '.join(cols)} from [{table}]")
            while chunk := cur.fetchmany(CHUNK_ROWS):
                yield chunk
        finally:
            conn.close()


def fact_schema(table: str) -> Any:
    import pyarrow as pa

    fields = [pa.field("contributor", pa.int32(), False), pa.field("device", pa.int32(), False)]
    for c in FACTS[table][1:]:
        if c == "bucket_start":
            fields.append(pa.field(c, pa.timestamp("s", tz="UTC"), False))
        elif c in FLAGS:
            fields.append(pa.field(c, pa.bool_(), False))
        elif c in INTS:
            fields.append(pa.field(c, pa.int64(), False))
        else:
            fields.append(pa.field(c, pa.string(), False))
    return pa.schema(fields)


# Per-household summaries the merge writes next to the facts, so that "how many households"
# questions read thousands of rows, not millions: (table, group keys, summed columns).
SUMMARIES = {
    "household_traffic": (("month", "dest_domain"), ("requests", "bytes_up", "bytes_down")),
    "household_leaks": (("month", "dest_domain", "pii_type"), ("count",)),
    "household_devices": (("device_class", "dest_domain"), ("requests",)),
}


def summary_schema(name: str) -> Any:
    import pyarrow as pa

    keys, sums = SUMMARIES[name]
    return pa.schema(
        [pa.field("contributor", pa.int32(), False)]
        + [pa.field(k, pa.string(), False) for k in keys]
        + [pa.field(c, pa.int64(), False) for c in sums]
    )


def sum_by(table: Any, keys: tuple[str, ...], sums: tuple[str, ...]) -> Any:
    """``table`` grouped by ``keys`` with ``sums`` summed, columns named as in ``table``."""
    agg = table.group_by(list(keys)).aggregate([(c, "sum") for c in sums])
    return agg.select([*keys, *(f"{c}_sum" for c in sums)]).rename_columns([*keys, *sums])


class Partitions:
    """Open Parquet writers of one contributor bucket, one per (table, month), and the
    bucket's per-household summaries."""

    def __init__(self, root: Path, bucket: int, companies: dict[str, str] | None = None) -> None:
        self.root, self.bucket = root, bucket
        self.buffers: dict[tuple[str, str], list[Any]] = {}
        self.sizes: dict[tuple[str, str], int] = {}
        self.writers: dict[tuple[str, str], Any] = {}
        self.partial: dict[str, list[Any]] = {}
        self.rows = 0
        # company_leaks, this bucket's part: (month, company, pii_type) → [households, leaks]
        self.companies = companies or {}
        self.company_leaks: dict[tuple[str, str, str], list[int]] = {}

    def add(self, table: str, month: str, batch: Any) -> None:
        key = (table, month)
        self.buffers.setdefault(key, []).append(batch)
        self.sizes[key] = self.sizes.get(key, 0) + batch.num_rows
        if self.sizes[key] >= FLUSH_ROWS:
            self._flush(key)

    def summarize(self, name: str, table: Any) -> None:
        """Fold a chunk of one household's rows into its summary ``name`` (sums per key)."""
        keys, sums = SUMMARIES[name]
        self.partial.setdefault(name, []).append(sum_by(table, keys, sums))

    def end_household(self, number: int) -> None:
        """Write the finished household's summaries: one row group per household."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        for name, tables in self.partial.items():
            keys, sums = SUMMARIES[name]
            t = sum_by(pa.concat_tables(tables), keys, sums)
            t = t.sort_by([(k, "ascending") for k in keys])
            schema = summary_schema(name)
            t = pa.table(
                [pa.array([number] * t.num_rows, pa.int32()), *(t.column(k) for k in keys),
                 *(t.column(c) for c in sums)],
                schema=schema,
            )  # fmt: skip
            if name == "household_leaks":
                self._fold_companies(t)
            key = (name, "")
            if key not in self.writers:
                folder = self.root / name / f"contributor_bucket={self.bucket:02d}"
                folder.mkdir(parents=True)
                self.writers[key] = pq.ParquetWriter(folder / "part-0.parquet", schema)
            self.writers[key].write_table(t)
        self.partial = {}

    def _fold_companies(self, household: Any) -> None:
        """Add one household's leak sums to ``company_leaks``: each (month, company, kind of
        data) it has counts it once among the households, whatever its destinations."""
        mine: dict[tuple[str, str, str], int] = {}
        for month, domain, kind, count in zip(
            household.column("month").to_pylist(), household.column("dest_domain").to_pylist(),
            household.column("pii_type").to_pylist(), household.column("count").to_pylist(),
            strict=True,
        ):  # fmt: skip
            company = self.companies.get(domain)
            if company is not None:  # placeholders ("(other)") have no destination row
                key = (month, company, kind)
                mine[key] = mine.get(key, 0) + count
        for key, count in mine.items():
            got = self.company_leaks.setdefault(key, [0, 0])
            got[0] += 1
            got[1] += count

    def _flush(self, key: tuple[str, str]) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        batches = self.buffers.pop(key, [])
        self.sizes.pop(key, None)
        if not batches:
            return
        if key not in self.writers:
            table, month = key
            folder = self.root / table / f"month={month}" / f"contributor_bucket={self.bucket:02d}"
            folder.mkdir(parents=True)
            self.writers[key] = pq.ParquetWriter(folder / "part-0.parquet", fact_schema(table))
        self.writers[key].write_table(pa.Table.from_batches(batches))
        self.rows += sum(b.num_rows for b in batches)

    def close(self) -> None:
        for key in list(self.buffers):
            self._flush(key)
        for w in self.writers.values():
            w.close()


def stream_source(src: Source, who: Contributor, parts: Partitions) -> None:
    """Append one export's fact rows to the bucket's partitions, chunk by chunk, and fold
    them into the household's summaries (the caller ends the household)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if digest(src.path) != src.digest:
        raise MergeRefused(f"{src.path} changed after it was verified; run the merge again")
    pids = pa.array(list(who.device_numbers), pa.string())
    numbers = pa.array(list(who.device_numbers.values()), pa.int32())
    kinds = {d["device_pid"]: d["device_class"] for s in who.sources for d in s.devices}
    classes = pa.array([kinds.get(p, "other") for p in who.device_numbers], pa.string())
    for table, cols in FACTS.items():
        schema = fact_schema(table)
        for chunk in export_columns(src.path, table, cols):
            columns = list(zip(*chunk, strict=True))
            n = len(chunk)
            where = pc.index_in(pa.array(columns[0], pa.string()), pids)
            device = pc.take(numbers, where)
            if device.null_count:
                raise MergeRefused(f"{src.path}: {table} has a device_pid its devices table lacks")
            arrays = [pa.array([who.number] * n, pa.int32()), device]
            for c, values in zip(cols[1:], columns[1:], strict=True):
                if c in FLAGS:
                    arrays.append(pc.not_equal(pa.array(values, pa.int64()), 0))
                else:
                    arrays.append(pa.array(values, schema.field(c).type))
            batch = pa.RecordBatch.from_arrays(arrays, schema=schema)
            months = pc.strftime(batch.column("bucket_start"), format="%Y-%m")
            for month in pc.unique(months).to_pylist():
                parts.add(table, month, batch.filter(pc.equal(months, month)))
            rows = pa.Table.from_batches([batch]).append_column("month", months)
            if table == "traffic":
                parts.summarize("household_traffic", rows)
                parts.summarize(
                    "household_devices", rows.append_column("device_class", pc.take(classes, where))
                )
            else:
                parts.summarize("household_leaks", rows)


CompanySums = dict[tuple[str, str, str], list[int]]


def write_bucket(
    root: Path, bucket: int, contributors: list[Contributor], companies: dict[str, str]
) -> tuple[int, CompanySums]:
    """Stream the households of one contributor bucket into ``root``; rows written, and the
    bucket's ``company_leaks`` sums (additive across buckets: a household is in one)."""
    parts = Partitions(root, bucket, companies)
    try:
        for who in contributors:
            for src in who.sources:
                stream_source(src, who, parts)
            parts.end_household(who.number)
    finally:
        parts.close()
    return parts.rows, parts.company_leaks


def _write_bucket_in_worker(
    job: tuple[Path, int, list[Contributor], dict[str, str]],
) -> tuple[int, CompanySums]:
    return write_bucket(*job)


def company_of(destination: dict[str, Any]) -> str:
    """The name the queries group a destination under: its parent company, its company, or
    the domain itself (``coalesce(owner, company, dest_domain)``)."""
    return str(destination["owner"] or destination["company"] or destination["dest_domain"])


def company_leaks_rows(sums: CompanySums) -> list[dict[str, Any]]:
    """``company_leaks``: one row per month, company and kind of data, with the households
    that sent it there and the leaks, sorted as ``kinds_of_data_by_company`` lists them."""
    ordered = sorted(sums.items(), key=lambda kv: (kv[0][0], -kv[1][0], -kv[1][1], *kv[0][1:]))
    return [
        {"month": month, "company": company, "pii_type": kind, "households": n, "leaks": leaks}
        for (month, company, kind), (n, leaks) in ordered
    ]


def dimension_tables(contributors: list[Contributor]) -> dict[str, list[dict[str, Any]]]:
    """contributors and devices (destinations: ``destination_rows``)."""
    out: dict[str, list[dict[str, Any]]] = {"contributors": [], "devices": []}
    for who in contributors:
        first = who.sources[0].meta
        out["contributors"].append({
            "contributor": who.number,
            "exports": len(who.sources),
            "devices": len(who.device_numbers),
            "requests": sum(s.counts.get("requests_exported", 0) for s in who.sources),
            "leaks": sum(s.counts.get("leaks_exported", 0) for s in who.sources),
            "time_bucket_s": first["time_bucket_s"],
            "sensitive_bucket_s": first["sensitive_bucket_s"],
            "min_cell": first["min_cell"],
            "tool_version": first["tool_version"],
        })  # fmt: skip
        done: set[str] = set()
        for s in who.sources:
            for d in s.devices:
                if d["device_pid"] not in done:
                    done.add(d["device_pid"])
                    out["devices"].append({
                        "contributor": who.number, "device": who.device_numbers[d["device_pid"]],
                        "device_class": d["device_class"], "os_family": d["os_family"],
                        "vendor": d["vendor"],
                    })  # fmt: skip
    return out


def destination_rows(domains: set[str], allow: Allowlist) -> list[dict[str, Any]]:
    """One ``destinations`` row per domain: role, company, parent company, country."""
    out = []
    for dom in sorted(domains):
        m = allow.index.lookup(dom)
        out.append({
            "dest_domain": dom,
            "dest_role": allow.role(dom) or "other",
            "company": (m.company_name if m else None) or None,
            "owner": (m.owner_name or m.company_name if m else None) or None,
            "country": (m.country if m else None) or None,
            "category": m.category if m else None,
        })  # fmt: skip
    return out


def write_table(rows: list[dict[str, Any]], path: Path, types: dict[str, Any]) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = pa.schema([(c, t) for c, t in types.items()])
    pq.write_table(pa.Table.from_pylist(rows, schema=schema), path)


def write_dataset(
    sources: list[Source], out: Path, allow: Allowlist, buckets: int = BUCKETS_DEFAULT,
    progress: Any = None, jobs: int | None = None,
) -> dict[str, int]:  # fmt: skip
    """Write the dataset to a staging folder next to ``out``, then move it into place.

    Contributor buckets are independent, so they are written by one process per core
    (``jobs``), each holding one export's chunk and its open partitions at a time.
    Nothing is left behind when anything fails. Returns row counts.
    """
    import pyarrow as pa

    if out.exists():
        raise FileExistsError(f"{out} already exists: choose a new name")
    contributors = households(sources)
    staging = Path(tempfile.mkdtemp(prefix=".gazeback-dataset-", dir=out.parent))
    rows = 0
    sums: CompanySums = {}

    def add(b: int, written: tuple[int, CompanySums]) -> None:
        nonlocal rows
        rows += written[0]
        for key, (households_, leaks) in written[1].items():
            got = sums.setdefault(key, [0, 0])
            got[0] += households_
            got[1] += leaks
        if progress:
            progress(b)

    try:
        destinations = destination_rows(set().union(*(s.domains for s in sources)), allow)
        companies = {d["dest_domain"]: company_of(d) for d in destinations}
        work = [(staging, b, contributors[b::buckets], companies) for b in range(buckets)]
        work = [w for w in work if w[2]]
        n = jobs_for(len(sources), jobs)
        if n == 1:
            for w in work:
                add(w[1], write_bucket(*w))
        else:
            with _pool(min(n, len(work))) as pool:
                try:
                    for b, written in zip(
                        work, pool.map(_write_bucket_in_worker, work), strict=True
                    ):
                        add(b[1], written)
                except BaseException:
                    pool.shutdown(cancel_futures=True)
                    raise
        dims = dimension_tables(contributors)
        i32, i64, s = pa.int32(), pa.int64(), pa.string()
        write_table(company_leaks_rows(sums), staging / "company_leaks.parquet", {
            "month": s, "company": s, "pii_type": s, "households": i64, "leaks": i64,
        })  # fmt: skip
        write_table(dims["contributors"], staging / "contributors.parquet", {
            "contributor": i32, "exports": i32, "devices": i32, "requests": i64, "leaks": i64,
            "time_bucket_s": i64, "sensitive_bucket_s": i64, "min_cell": i64, "tool_version": s,
        })  # fmt: skip
        write_table(dims["devices"], staging / "devices.parquet", {
            "contributor": i32, "device": i32, "device_class": s, "os_family": s, "vendor": s,
        })  # fmt: skip
        write_table(destinations, staging / "destinations.parquet", {
            "dest_domain": s, "dest_role": s, "company": s, "owner": s, "country": s,
            "category": s,
        })  # fmt: skip
        lists_version, lists_sha = index_digest(allow.index)
        meta = {
            "dataset_id": str(uuid.uuid4()), "dataset_version": DATASET_VERSION,
            "profile": "R1", "schema_version": SCHEMA_VERSION,
            "created_day": datetime.now(UTC).strftime("%Y-%m-%d"),
            "contributors": len(contributors), "exports": len(sources),
            "contributor_buckets": buckets, "rows": rows, "tool_version": __version__,
            "tracker_lists_version": lists_version, "tracker_lists_sha256": lists_sha,
        }  # fmt: skip
        write_table([meta], staging / "dataset_meta.parquet",
                    {k: (i64 if isinstance(v, int) else s) for k, v in meta.items()})  # fmt: skip
        (staging / "queries.sql").write_text(queries_sql(), encoding="utf-8")
        make_private(staging)
        staging.replace(out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return {"contributors": len(contributors), "exports": len(sources), "rows": rows}


def queries_sql() -> str:
    """The documented query set (``gazeback/data/queries.sql``)."""
    return resources.files("gazeback").joinpath("data/queries.sql").read_text(encoding="utf-8")


def named_queries(text: str | None = None) -> dict[str, str]:
    """``-- name: x`` blocks of queries.sql → {name: sql}; the views come under ``views``."""
    out: dict[str, list[str]] = {"views": []}
    name = "views"
    for line in (text if text is not None else queries_sql()).splitlines():
        if line.startswith("-- name:"):
            name = line.split(":", 1)[1].strip()
            out[name] = []
        else:
            out[name].append(line)
    return {k: "\n".join(v).strip() for k, v in out.items()}
