"""Bytes per request, per table and index (``dbstat``), and which indexes the dashboards use.

    PYTHONPATH=src python bench/storage.py --db /tmp/b/trail.db          # an existing trail
    PYTHONPATH=src python bench/storage.py --scale 1000000               # makes a demo trail first

Every dashboard SQL statement (each chart with and without its filters, each filter's option
query, the canned queries, and the table pages the dashboards link to, as Datasette runs them:
captured with Datasette's ``trace_debug``) is planned with ``EXPLAIN QUERY PLAN``; an index no
plan names is listed as unused by the dashboards.
"""

from __future__ import annotations

import argparse
import asyncio
import platform
import re
import sqlite3
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
_USES = re.compile(r"USING (?:COVERING )?INDEX (\S+)")


def sizes(db: Path) -> tuple[int, list[tuple[str, str, int, int]]]:
    """(requests, [(name, table it belongs to, bytes, pages)]) from dbstat, largest first."""
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        n = conn.execute("select count(*) from requests").fetchone()[0]
        owner = {r[0]: r[1] for r in conn.execute("select name, tbl_name from sqlite_master")}
        rows = conn.execute(
            "select name, sum(pgsize), count(*) from dbstat group by name order by 2 desc"
        ).fetchall()
    finally:
        conn.close()
    return n, [(name, owner.get(name, name), b, p) for name, b, p in rows]


_BYTES = """case typeof([{c}])
  when 'null' then 0 when 'real' then 8
  when 'integer' then case when [{c}] in (0, 1) then 0
    when [{c}] between -128 and 127 then 1 when [{c}] between -32768 and 32767 then 2
    when [{c}] between -8388608 and 8388607 then 3
    when [{c}] between -2147483648 and 2147483647 then 4
    when [{c}] between -140737488355328 and 140737488355327 then 6 else 8 end
  else length(cast([{c}] as blob)) end"""


def column_bytes(db: Path, table: str) -> tuple[int, list[tuple[str, float]]]:
    """(rows, [(column, payload bytes per request)]): what each column stores, headers aside."""
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        n = conn.execute("select count(*) from requests").fetchone()[0] or 1
        cols = [r[1] for r in conn.execute(f"pragma table_info([{table}])")]
        rows = conn.execute(f"select count(*) from [{table}]").fetchone()[0]
        sums = conn.execute(
            "select " + ", ".join(f"sum({_BYTES.format(c=c)})" for c in cols) + f" from [{table}]"
        ).fetchone()
    finally:
        conn.close()
    return rows, sorted(((c, (v or 0) / n) for c, v in zip(cols, sums, strict=True)),
                        key=lambda x: -x[1])  # fmt: skip


async def _captured(db: Path) -> list[tuple[str, dict[str, Any]]]:
    """Every SQL statement (with its parameters) the dashboards and their links run."""
    sys.path.insert(0, str(ROOT / "bench"))
    from bench_dashboard import FILTERS, sign_in
    from datasette_dashboards import replace_opts_in_query

    from gazeback.dashboard import serve

    ds = serve.make_datasette(db, settings={"sql_time_limit_ms": 60000, "trace_debug": True})
    cookie = await sign_in(ds)
    name = db.stem
    meta = serve.dashboard_metadata(name)
    out: list[tuple[str, dict[str, Any]]] = []
    for board in meta["plugins"]["datasette-dashboards"].values():
        for flt in board.get("filters", {}).values():
            if "query" in flt:
                out.append((flt["query"], {}))
        for chosen in ((), tuple(FILTERS), ("app",)):  # none, every filter, the app alone
            opts = {k: v for k, v in FILTERS.items() if k in chosen and k in board["filters"]}
            for chart in board["charts"].values():
                if "query" in chart:
                    out.append((replace_opts_in_query(chart["query"], opts), opts))
    canned = meta["databases"][name].get("queries", {})
    params = {"company_id": "google", "host": "api.mixpanel.com", **FILTERS}
    for q in canned.values():
        out.append((q["sql"] if isinstance(q, dict) else q, params))
    pages = [
        ("requests", {"host": "api.mixpanel.com", "_sort_desc": "started_at"}),
        ("trail", {"company_id": "google", "_sort_desc": "started_at"}),
        ("trail", {"is_decrypted": "0", "_sort_desc": "started_at"}),
        ("leak_report", {"company": "Google", "_sort_desc": "started_at"}),
        ("leak_report", {"_sort_desc": "started_at"}),
        ("requests", {"tracker_id": "google-analytics", "_sort_desc": "started_at"}),
        ("requests", {"device_id": "1", "_sort_desc": "started_at"}),
        ("requests", {"is_decrypted": "0", "host": "i.instagram.com", "_sort_desc": "started_at"}),
    ]
    for table, p in pages:
        r = await ds.client.get(f"/{name}/{table}.json", params={**p, "_trace": "1"},
                                headers=cookie)  # fmt: skip
        for t in r.json().get("_trace", {}).get("traces", []):
            if t.get("sql") and not t.get("error"):
                args = t.get("params") or {}
                out.append((t["sql"], args if isinstance(args, dict) else {}))
    return out


def dashboard_statements(db: Path) -> list[tuple[str, dict[str, Any]]]:
    return asyncio.run(_captured(db))


def plans(db: Path, statements: list[tuple[str, dict[str, Any]]]) -> list[tuple[str, list[str]]]:
    """(sql, plan lines) for each statement that plans; pragma and schema reads are skipped."""
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    out = []
    try:
        for sql, params in statements:
            if not sql.lstrip().lower().startswith(("select", "with")):
                continue
            names = set(re.findall(r":(\w+)", sql))
            args = {k: params.get(k, "") for k in names}
            try:
                rows = conn.execute(f"explain query plan {sql}", args).fetchall()
            except sqlite3.Error:
                continue
            out.append((sql, [r[3] for r in rows]))
    finally:
        conn.close()
    return out


def unused_indexes(db: Path, planned: list[tuple[str, list[str]]]) -> tuple[set[str], set[str]]:
    """(indexes some plan names, indexes none does), unique and automatic ones excluded."""
    used = {m for _, lines in planned for line in lines for m in _USES.findall(line)}
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        indexes = {
            r[0]
            for r in conn.execute(
                "select name from sqlite_master where type = 'index' and sql is not null "
                "and sql not like 'CREATE UNIQUE%'"
            )
        }
    finally:
        conn.close()
    return used & indexes, indexes - used


def report(db: Path) -> None:
    n, rows = sizes(db)
    total = sum(b for _, _, b, _ in rows)
    print(f"machine: {platform.machine()}, Python {platform.python_version()}, "
          f"SQLite {sqlite3.sqlite_version}")  # fmt: skip
    print(f"{db}: {n:,} requests, {total / 1e6:.0f} MB, {total / max(n, 1):.0f} bytes per request")
    print("| table or index | of table | MB | bytes/request |")
    print("|---|---|---:|---:|")
    for name, table, b, _ in rows:
        print(f"| {name} | {table} | {b / 1e6:.1f} | {b / max(n, 1):.0f} |")
    for table in ("requests", "leaf_fingerprints", "leaks"):
        rows, cols = column_bytes(db, table)
        print(f"\n{table}: {rows / max(n, 1):.2f} rows per request; payload bytes per request: "
              + ", ".join(f"{c} {b:.1f}" for c, b in cols if b >= 0.5))  # fmt: skip
    planned = plans(db, dashboard_statements(db))
    used, unused = unused_indexes(db, planned)
    print(f"\n{len(planned)} dashboard statements planned")
    print("indexes some dashboard plan uses: " + ", ".join(sorted(used)))
    print("indexes no dashboard plan uses:   " + ", ".join(sorted(unused)))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--db", type=Path)
    ap.add_argument("--scale", type=int, default=1_000_000)
    a = ap.parse_args()
    db = a.db
    if db is None:
        from gazeback.dashboard.demo import generate

        db = Path(tempfile.mkdtemp(prefix="gazeback-storage-")) / "trail.db"
        generate(db, days=7, seed=1, scale=a.scale)
    report(db)


if __name__ == "__main__":
    main()
