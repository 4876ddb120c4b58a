"""``gazeback merge --dataset``: many verified exports → a partitioned Parquet dataset (#19).

A reduced scale of ``bench/merge_scale.py``: the same made-up exports, written by gazeback's
export writer, merged by the real command, read back by pyarrow.dataset and DuckDB.
"""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.dataset as pads
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from gazeback.cli.export import merge
from gazeback.knowledge.classify import load_index
from gazeback.share.dataset import named_queries

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))

from merge_scale import make_exports  # noqa: E402


@pytest.fixture(scope="module")
def exports(tmp_path_factory):
    return make_exports(tmp_path_factory.mktemp("exports"), 8, 1500, seed=7)


@pytest.fixture(scope="module")
def dataset(exports, tmp_path_factory):
    out = tmp_path_factory.mktemp("merged") / "research"
    r = CliRunner().invoke(merge, [str(out), *map(str, exports), "--dataset", "--buckets", "3"])
    assert r.exit_code == 0, r.output
    assert "8 households from 8 exports, 12,000 rows." in r.output
    return out


def _rows(path: Path, table: str) -> list[tuple]:
    conn = sqlite3.connect(f"file:{path}?mode=ro&immutable=1", uri=True)
    try:
        return conn.execute(f"select * from [{table}]").fetchall()
    finally:
        conn.close()


def test_hive_partitions_by_month_and_contributor_bucket(dataset):
    parts = sorted(p.relative_to(dataset) for p in (dataset / "traffic").rglob("*.parquet"))
    assert parts and all(
        p.parts[1].startswith("month=2026-") and p.parts[2] in
        {"contributor_bucket=00", "contributor_bucket=01", "contributor_bucket=02"}
        and p.name == "part-0.parquet" for p in parts
    )  # fmt: skip
    assert len({p.parts[1] for p in parts}) == 12  # a year of months
    assert (dataset / "queries.sql").read_text().startswith("-- gazeback research dataset")
    assert (dataset.stat().st_mode & 0o777) == 0o700


def test_any_arrow_engine_reads_every_row_unchanged(exports, dataset):
    traffic = pads.dataset(dataset / "traffic", format="parquet", partitioning="hive").to_table()
    assert traffic.num_rows == sum(len(_rows(p, "traffic")) for p in exports)
    # per month, the requests of all exports arrive intact, in the right partition
    want: dict[str, int] = defaultdict(int)
    for p in exports:
        for r in _rows(p, "traffic"):
            want[datetime.fromtimestamp(r[1], UTC).strftime("%Y-%m")] += r[6]
    got: dict[str, int] = defaultdict(int)
    for month, start, n in zip(*(traffic.column(c).to_pylist()
                                 for c in ("month", "bucket_start", "requests")), strict=True):  # fmt: skip
        assert start.strftime("%Y-%m") == month
        got[month] += n
    assert got == want
    buckets = traffic.column("contributor_bucket").to_pylist()
    who = traffic.column("contributor").to_pylist()
    assert all(c % 3 == b for c, b in zip(who, buckets, strict=True))
    assert sorted(set(who)) == list(range(8))


I32, I64, STR, BOOL = pa.int32(), pa.int64(), pa.string(), pa.bool_()
UTC_MS = pa.timestamp("ms", tz="UTC")  # Parquet stores the seconds as TIMESTAMP_MILLIS, UTC
PORTABLE = {
    "traffic": {"contributor": I32, "device": I32, "bucket_start": UTC_MS, "dest_domain": STR,
                "dest_role": STR, "encrypted": BOOL, "inspected": BOOL, "requests": I64,
                "bytes_up": I64, "bytes_down": I64, "month": STR, "contributor_bucket": I32},
    "leaks": {"contributor": I32, "device": I32, "bucket_start": UTC_MS, "dest_domain": STR,
              "pii_type": STR, "transform_chain": STR, "location_kind": STR, "key_name": STR,
              "tier": STR, "count": I64, "month": STR, "contributor_bucket": I32},
    "household_traffic": {"contributor": I32, "month": STR, "dest_domain": STR, "requests": I64,
                          "bytes_up": I64, "bytes_down": I64, "contributor_bucket": I32},
    "household_leaks": {"contributor": I32, "month": STR, "dest_domain": STR, "pii_type": STR,
                        "count": I64, "contributor_bucket": I32},
    "household_devices": {"contributor": I32, "device_class": STR, "dest_domain": STR,
                          "requests": I64, "contributor_bucket": I32},
}  # fmt: skip


def test_pyarrow_dataset_reads_every_table_with_plain_parquet_types(dataset):
    """Any Arrow engine (here pyarrow.dataset with Hive partitioning) sees the documented
    schema; every column is a plain Parquet type (no DuckDB-only or extension types)."""
    for name, want in PORTABLE.items():
        d = pads.dataset(dataset / name, format="parquet", partitioning="hive")
        assert {f.name: f.type for f in d.schema} == want, name
        assert d.to_table().num_rows > 0
    for f in dataset.rglob("*.parquet"):
        schema = pq.ParquetFile(f).schema
        for i in range(len(schema)):
            col = schema.column(i)
            assert col.physical_type in {"INT32", "INT64", "BOOLEAN", "BYTE_ARRAY"}, (f, col)
            assert str(col.logical_type) in {"None", "String"} or str(col.logical_type).startswith(
                ("Int(", "Timestamp(isAdjustedToUTC=true, timeUnit=milliseconds")
            ), (f, col)
        assert not (pq.read_metadata(f).metadata or {}).keys() - {b"ARROW:schema"}


def test_household_summaries_are_the_sums_of_the_rows(dataset):
    def read(name):
        return pads.dataset(dataset / name, format="parquet", partitioning="hive").to_table()

    traffic, leaks = read("traffic"), read("leaks")
    for name, source, keys, sums in (
        ("household_traffic", traffic, ["contributor", "month", "dest_domain"],
         ["requests", "bytes_up", "bytes_down"]),
        ("household_leaks", leaks, ["contributor", "month", "dest_domain", "pii_type"], ["count"]),
    ):  # fmt: skip
        want = source.group_by(keys).aggregate([(c, "sum") for c in sums])
        want = {tuple(r[k] for k in keys): tuple(r[f"{c}_sum"] for c in sums)
                for r in want.to_pylist()}  # fmt: skip
        got = {tuple(r[k] for k in keys): tuple(r[c] for c in sums)
               for r in read(name).to_pylist()}  # fmt: skip
        assert got == want, name
    devices = pads.dataset(dataset / "devices.parquet", format="parquet").to_table().to_pylist()
    cls = {(d["contributor"], d["device"]): d["device_class"] for d in devices}
    want_dev: dict[tuple, int] = defaultdict(int)
    for r in traffic.select(["contributor", "device", "dest_domain", "requests"]).to_pylist():
        want_dev[(r["contributor"], cls[(r["contributor"], r["device"])], r["dest_domain"])] += r[
            "requests"
        ]
    got_dev = {(r["contributor"], r["device_class"], r["dest_domain"]): r["requests"]
               for r in read("household_devices").to_pylist()}  # fmt: skip
    assert got_dev == want_dev


def test_no_export_identifier_is_carried(exports, dataset):
    ids = set()
    for p in exports:
        ids |= {r[0] for r in _rows(p, "devices")}
        ids |= {r[0] for r in _rows(p, "export_meta")}
    values = set()
    for f in dataset.rglob("*.parquet"):
        t = pads.dataset(f, format="parquet").to_table()
        assert not {"device_pid", "export_id"} & set(t.column_names)
        for c in t.column_names:
            values |= {v for v in t.column(c).to_pylist() if isinstance(v, str)}
    assert ids and not ids & values


def test_documented_queries_run_in_duckdb_and_agree_with_the_exports(exports, dataset):
    con = duckdb.connect()
    con.execute(f"SET file_search_path = '{dataset}'")
    queries = named_queries((dataset / "queries.sql").read_text())
    con.execute(queries.pop("views"))
    assert len(queries) >= 6
    results = {name: con.execute(sql).fetchall() for name, sql in queries.items()}
    assert all(results.values())
    # companies_by_month, recomputed from the exports with the tracker knowledge
    index = load_index()
    households: dict[tuple[str, str], set[int]] = defaultdict(set)
    requests: dict[tuple[str, str], int] = defaultdict(int)
    for i, p in enumerate(exports):
        for r in _rows(p, "traffic"):
            if r[2] in ("(other)", "(site)"):
                continue
            m = index.lookup(r[2])
            company = (m and (m.owner_name or m.company_name)) or r[2]
            key = (datetime.fromtimestamp(r[1], UTC).strftime("%Y-%m"), company)
            households[key].add(i)
            requests[key] += r[6]
    got = {(m, c): (h, n) for m, c, h, n in results["companies_by_month"]}
    assert got == {k: (len(households[k]), requests[k]) for k in households}


def test_company_leaks_is_the_grouping_of_household_leaks(dataset):
    # The merge sums kinds of data per company household by household (company_leaks); the
    # documented query reads it. It must give exactly what grouping the households' leak sums
    # joined to destinations gives (the query before company_leaks).
    con = duckdb.connect()
    con.execute(f"SET file_search_path = '{dataset}'")
    queries = named_queries((dataset / "queries.sql").read_text())
    con.execute(queries["views"])
    from_households = con.execute("""
        SELECT month, company, pii_type, count(*) AS households, sum(leaks) AS leaks
        FROM (
            SELECT h.month, coalesce(d.owner, d.company, h.dest_domain) AS company, h.pii_type,
                   h.contributor, sum(h.count) AS leaks
            FROM household_leaks h JOIN destinations d USING (dest_domain)
            GROUP BY ALL
        )
        GROUP BY ALL
        ORDER BY month, households DESC, leaks DESC, company, pii_type""").fetchall()
    got = con.execute(queries["kinds_of_data_by_company"]).fetchall()
    assert got == from_households
    assert len(got) > 50 and max(r[3] for r in got) >= 2  # several households share rows
    table = pq.read_table(dataset / "company_leaks.parquet")
    assert table.num_rows == len(got)
    assert {f.name: f.type for f in table.schema} == {
        "month": STR, "company": STR, "pii_type": STR, "households": I64, "leaks": I64,
    }  # fmt: skip


def test_a_failing_export_stops_the_merge_and_nothing_is_written(exports, tmp_path):
    bad = tmp_path / "bad.db"
    bad.write_bytes(exports[0].read_bytes())
    conn = sqlite3.connect(bad)
    conn.execute("update traffic set dest_domain = 'example.org' where rowid = 1")
    conn.commit()
    conn.execute("vacuum")
    conn.close()
    out = tmp_path / "research"
    r = CliRunner().invoke(merge, [str(out), str(exports[1]), str(bad), "--dataset"])
    assert r.exit_code == 1
    assert f"{bad} fails verification: FAIL" in r.output and "(check G2)" in r.output
    assert "nothing was written" in r.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.db"]


def test_a_failing_export_among_many_stops_the_parallel_merge(exports, tmp_path):
    """With enough exports to verify them in worker processes, the failure still names the
    file and the guarantee, and nothing is written."""
    from gazeback.share.dataset import PARALLEL_MIN

    bad = tmp_path / "bad.db"
    bad.write_bytes(exports[0].read_bytes())
    conn = sqlite3.connect(bad)
    conn.execute("update leaks set dest_domain = 'example.org' where rowid = 1")
    conn.commit()
    conn.execute("vacuum")
    conn.close()
    inputs = [*exports[1:PARALLEL_MIN], bad]
    assert len(inputs) >= PARALLEL_MIN
    out = tmp_path / "research"
    r = CliRunner().invoke(merge, [str(out), *map(str, inputs), "--dataset"])
    assert r.exit_code == 1
    assert f"{bad} fails verification: FAIL" in r.output and "nothing was written" in r.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.db"]


def test_the_same_export_twice_is_refused(exports, tmp_path):
    out = tmp_path / "research"
    r = CliRunner().invoke(merge, [str(out), str(exports[0]), str(exports[0]), "--dataset"])
    assert r.exit_code == 1 and "are the same export" in r.output
    assert not out.exists()


def test_without_pyarrow_it_says_how_to_install_the_extra(exports, tmp_path):
    code = (
        "import sys; sys.modules['pyarrow'] = None; from gazeback.cli import cli; "
        f"cli(['merge', {str(tmp_path / 'r')!r}, {str(exports[0])!r}, '--dataset'])"
    )
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert p.returncode == 1
    assert "pip install 'gazeback[research]'" in p.stderr
    assert not (tmp_path / "r").exists()
