"""The rollup tier (#19): bytes on disk before and after rolling detail up, and how long it takes.

    PYTHONPATH=src python bench/rollup.py --db /tmp/b/trail.db --keep-detail 3 [--now 2026-11-27]
    PYTHONPATH=src python bench/rollup.py --scale 100000 --days 365 --keep-detail 90

Works on the file it is given (make a copy first: the rollup deletes detail). Measures:
requests and pages in use per table (``dbstat``) before; the time of ``store.rollup`` (the
same call `gazeback run` makes hourly and `gazeback rollup` makes once); pages in use after;
the time of ``VACUUM`` and the file size after it (SQLite reuses freed pages for new rows; only
VACUUM gives them back to the disk); and checks that every hourly total is unchanged. Then
run ``bench/bench_dashboard.py --db FILE --reuse`` for every dashboard page's time.
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import time
from datetime import UTC, datetime
from pathlib import Path

import sqlite_utils

from gazeback.dashboard import demo
from gazeback.db import migrations, store


def in_use(path: Path) -> dict[str, int]:
    """Bytes of pages in use per table (its indexes included) from dbstat."""
    conn = sqlite3.connect(path)
    try:
        owner = dict(conn.execute("select name, tbl_name from sqlite_master").fetchall())
        out: dict[str, int] = {}
        for name, size in conn.execute("select name, sum(pgsize) from dbstat group by name"):
            table = owner.get(name, name)
            out[table] = out.get(table, 0) + size
        return out
    finally:
        conn.close()


def totals(db: sqlite_utils.Database) -> tuple[list[tuple], list[tuple]]:
    return (
        db.execute("select * from summary_hourly order by 1, 2, 3, 4, 5, 6").fetchall(),
        db.execute("select * from summary_leaks order by 1, 2, 3, 4, 5, 6, 7").fetchall(),
    )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--db", type=Path, required=True)
    ap.add_argument("--scale", type=int, help="make a demo trail of this many requests first")
    ap.add_argument("--days", type=int, default=365)
    ap.add_argument("--keep-detail", type=int, default=90)
    ap.add_argument("--now", help="the clock the window counts from (default: the trail's end)")
    ap.add_argument("--no-vacuum", action="store_true")
    args = ap.parse_args()
    if args.scale:
        t = time.perf_counter()
        demo.generate(args.db, days=args.days, scale=args.scale, seed=1)
        print(f"demo --scale {args.scale:,} --days {args.days}: {time.perf_counter() - t:,.0f} s")
    db = sqlite_utils.Database(args.db)
    migrations.apply(db)
    n, first, last = db.execute(
        "select count(*), min(started_at), max(started_at) from requests"
    ).fetchone()
    now = (
        datetime.fromisoformat(args.now).replace(tzinfo=UTC)
        if args.now
        else datetime.fromisoformat(last.replace("Z", "+00:00"))
    )
    print(f"trail: {n:,} requests from {first} to {last}; clock {now.isoformat()}")
    before = totals(db)
    db.close()
    used_before = in_use(args.db)
    size_before = os.path.getsize(args.db)
    db = sqlite_utils.Database(args.db)
    db.execute("PRAGMA busy_timeout=5000")
    t = time.perf_counter()
    done = store.rollup(db, args.keep_detail, now=now)
    took = time.perf_counter() - t
    assert done is not None
    after = totals(db)
    left = db.execute("select count(*) from requests").fetchone()[0]
    db.close()
    used_after = in_use(args.db)
    print(f"load average: {os.getloadavg()[0]:.1f}")
    print(f"rollup --keep-detail {args.keep_detail}d: {took:.1f} s; {done.requests:,} requests "
          f"({done.leaks:,} leaks, {done.learned_items:,} learned items) rolled up, {left:,} "
          f"kept in detail from {done.horizon}:00; hourly totals unchanged: {before == after}")  # fmt: skip
    print("\n| table (indexes included) | before, MB | after, MB |\n|---|---:|---:|")
    for table in sorted(used_before, key=lambda k: -used_before[k]):
        b, a = used_before[table], used_after.get(table, 0)
        if b > 500_000 or a > 500_000:
            print(f"| `{table}` | {b / 1e6:,.1f} | {a / 1e6:,.1f} |")
    for table in sorted(set(used_after) - set(used_before)):
        print(f"| `{table}` (new) | 0 | {used_after[table] / 1e6:,.2f} |")
    tb, ta = sum(used_before.values()), sum(used_after.values())
    print(f"| **pages in use** | **{tb / 1e6:,.1f}** | **{ta / 1e6:,.1f}** |")
    print(f"\nfile before: {size_before / 1e6:,.1f} MB ({tb / n:,.0f} B/request in use)")
    agg = sum(used_after.get(t, 0) for t in ("summary_hourly", "summary_leaks", "learned_hourly"))
    if left:
        per = (ta - agg) / left
        print(f"after: {ta / 1e6:,.1f} MB in use; {per:,.0f} B per request kept in detail")
    hours = (
        sqlite3.connect(args.db)
        .execute("select count(distinct hour) from summary_hourly")
        .fetchone()[0]
    )
    print(
        f"hourly tables: {agg / 1e6:,.2f} MB for {hours:,} hours ({agg / max(hours, 1):,.0f} B/hour)"
    )
    if not args.no_vacuum:
        t = time.perf_counter()
        conn = sqlite3.connect(args.db)
        conn.execute("VACUUM")
        conn.close()
        print(f"VACUUM: {time.perf_counter() - t:.1f} s; file after: "
              f"{os.path.getsize(args.db) / 1e6:,.1f} MB")  # fmt: skip


if __name__ == "__main__":
    main()
