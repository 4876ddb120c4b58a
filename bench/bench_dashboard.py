"""Dashboard benchmark: demo generation time, and every dashboard query on a big trail.

    PYTHONPATH=src python bench/bench_dashboard.py [--scale 1000000] [--db PATH] [--reuse]

Generates a demo database of ``--scale`` requests (timed), then runs every chart query of
every dashboard, with no filter and with filters set, every filter's option query, the
canned queries and the drill-down table pages, through Datasette's own client (the same
path the browser uses: ``/<db>.json?sql=...``). Each is run 3 times; the slowest run counts.
Prints Markdown for docs/benchmarks.md; exits 1 if a dashboard query is over
the 500 ms budget.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import sqlite_utils
from datasette_dashboards import replace_opts_in_query

from gazeback.dashboard import demo, serve
from gazeback.db import migrations

BUDGET_MS = 500
END = datetime(2026, 11, 27, tzinfo=UTC)
FILTERS = {
    "date_start": "2026-11-22",
    "date_end": "2026-11-24",
    "device": "Alex's phone",
    "category": "Advertising",
    "company": "Google",
    "host": "app-measurement.com",
    "app": "Instagram",
}


async def sign_in(ds) -> dict[str, str]:
    """Open the address with the token, as a person does; keep the cookie it hands back."""
    r = await ds.client.get(f"/-/dashboards/trail?token={ds.gazeback_token}")
    if r.status_code != 302:
        raise SystemExit(f"the dashboard did not take its token: HTTP {r.status_code}")
    return {"cookie": r.headers["set-cookie"].split(";", 1)[0]}


async def timed(ds, path, params=None, runs=3):
    worst = 0.0
    for _ in range(runs):
        t = time.perf_counter()
        r = await ds.client.get(path, params=params, headers=ds.cookie)
        worst = max(worst, (time.perf_counter() - t) * 1000)
        if r.status_code != 200:
            raise SystemExit(f"{path} {params}: HTTP {r.status_code}: {r.text[:300]}")
    return worst


async def run(db_path: Path) -> list[tuple[str, str, float, bool]]:
    ds = serve.make_datasette(db_path, settings={"sql_time_limit_ms": 20000})
    ds.cookie = await sign_in(ds)
    name = db_path.stem
    meta = serve.dashboard_metadata(name)
    out = []
    for slug, board in meta["plugins"]["datasette-dashboards"].items():
        for key, flt in board.get("filters", {}).items():
            if "query" in flt:
                ms = await timed(ds, f"/{name}.json", {"sql": flt["query"], "_shape": "array"})
                out.append((f"{slug}: filter {key} options", "-", ms, True))
        for chosen in ((), tuple(FILTERS), ("app",)):  # none, every filter, the app alone
            opts = {k: v for k, v in FILTERS.items() if k in chosen and k in board["filters"]}
            if chosen == ("app",) and not opts:
                continue
            label = ", ".join(opts) if opts else "none"
            for chart_slug, chart in board["charts"].items():
                if "query" not in chart:
                    continue
                sql = replace_opts_in_query(chart["query"], opts)
                params = {"sql": sql, "_shape": "objects", **opts}
                ms = await timed(ds, f"/{name}.json", params)
                out.append((f"{slug}: {chart_slug}", label, ms, True))
        ms = await timed(ds, f"/-/dashboards/{slug}", dict(FILTERS))
        out.append((f"{slug}: page (HTML, filter options)", "all", ms, True))
    drill = [
        ("canned: company_requests", f"/{name}/company_requests.json", {"company_id": "google"}),
        ("canned: host_requests", f"/{name}/host_requests.json", {"host": "api.mixpanel.com"}),
        ("canned: what_companies_learned", f"/{name}/what_companies_learned.json", None),
        ("rows: requests of a host", f"/{name}/requests.json", {"host": "api.mixpanel.com", "_sort_desc": "started_at"}),
        ("rows: trail of a company", f"/{name}/trail.json", {"company_id": "google", "_sort_desc": "started_at"}),
        ("rows: undecrypted", f"/{name}/trail.json", {"is_decrypted": "0", "_sort_desc": "started_at"}),
        ("rows: leak_report of a company", f"/{name}/leak_report.json", {"company": "Google", "_sort_desc": "started_at"}),
        ("rows: leak_report, all", f"/{name}/leak_report.json", {"_sort_desc": "started_at"}),
    ]  # fmt: skip
    for label, path, params in drill:
        out.append((label, "-", await timed(ds, path, params, runs=1), False))
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--scale", type=int, default=1_000_000)
    ap.add_argument("--db", type=Path)
    ap.add_argument("--reuse", action="store_true", help="use --db as it is if it exists")
    args = ap.parse_args()
    db_path = args.db or Path(tempfile.mkdtemp(prefix="gazeback-bench-")) / "trail.db"
    gen_s = None
    if not (args.reuse and db_path.exists()):
        for old in db_path.parent.glob(db_path.name + "*"):
            old.unlink()
        t = time.perf_counter()
        counts = demo.generate(db_path, scale=args.scale, seed=1, end=END)
        gen_s = time.perf_counter() - t
        print(f"generated {counts} in {gen_s:.1f} s", file=sys.stderr)
    db = sqlite_utils.Database(db_path)
    migrations.apply(db)
    n = db["requests"].count
    summary = db["summary_hourly"].count
    db.close()
    rows = asyncio.run(run(db_path))
    print(f"Machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
          f"SQLite {sqlite_utils.Database(memory=True).execute('select sqlite_version()').fetchone()[0]}")  # fmt: skip
    print(
        f"Database: {n:,} requests, {db_path.stat().st_size / 1e6:.0f} MB, {summary:,} summary rows"
    )
    if gen_s is not None:
        print(f"Demo generation (`gazeback demo --scale {args.scale}`): {gen_s:.1f} s")
    print()
    print("| query | filters | slowest of 3 (ms) |")
    print("|---|---|---:|")
    for label, filters, ms, _ in rows:
        print(f"| {label} | {filters} | {ms:.0f} |")
    dash = [ms for _, _, ms, budget in rows if budget]
    print()
    print(f"Dashboard queries: {len(dash)}, slowest {max(dash):.0f} ms, budget {BUDGET_MS} ms")
    if max(dash) > BUDGET_MS:
        sys.exit(1)


if __name__ == "__main__":
    main()
