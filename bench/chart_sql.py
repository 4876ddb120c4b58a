"""A chart's SQL at another commit against the worktree's: same rows, CPU ratio.

    PYTHONPATH=src python bench/chart_sql.py --db COPY.db --base REV headline learned ...

For each named chart of ``dashboards/metadata.yml``: checks that the statement at ``--base``
and the one in the worktree give the same rows on the trail, with no filter, with each filter
alone and with all of them (values taken from the trail), then times both without filters,
interleaved, ``--rounds`` times each, in CPU time (``time.process_time``). Prints the medians
and their ratio; exits 1 if any rows differ.
"""

from __future__ import annotations

import argparse
import re
import sqlite3
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import yaml

METADATA = "dashboards/metadata.yml"
FILTER_SETS = (
    (),
    ("device",),
    ("date_start", "date_end"),
    ("company",),
    ("app",),
    ("category",),
    ("date_start", "date_end", "device", "app", "category"),
)


def charts(text: str) -> dict[str, str]:
    boards = yaml.safe_load(text)["plugins"]["datasette-dashboards"]
    return {
        name: c["query"]
        for b in boards.values()
        for name, c in b.get("charts", {}).items()
        if "query" in c
    }


def with_filters(sql: str, keys: tuple[str, ...]) -> str:
    """Keep the ``[[ ... ]]`` parts whose parameters are all in ``keys``, as Datasette does."""

    def part(m: re.Match[str]) -> str:
        used = re.findall(r":(\w+)", m.group(1))
        return m.group(1) if used and all(u in keys for u in used) else ""

    return re.sub(r"\[\[(.*?)\]\]", part, sql, flags=re.S)


def filter_values(db: sqlite3.Connection) -> dict[str, Any]:
    one = lambda sql: db.execute(sql).fetchone()[0]  # noqa: E731
    last = one("select max(hour) from summary_hourly")[:10]
    return {
        "date_start": one(f"select date('{last}', '-180 days')"),
        "date_end": last,
        "device": one("select label from devices order by id limit 1"),
        "app": one("select label from dash_apps where app <> '' order by 1 limit 1"),
        "category": one("select min(category_words) from dash_trackers"),
        "company": one(
            "select c.name from summary_hourly s join trackers t on t.id = s.tracker_id"
            " join companies c on c.id = t.company_id group by c.id order by sum(s.requests) desc limit 1"
        ),
    }


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--db", type=Path, required=True)
    ap.add_argument("--base", required=True, help="the commit whose SQL is 'before'")
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("chart", nargs="+")
    args = ap.parse_args()
    old_text = subprocess.run(
        ["git", "show", f"{args.base}:{METADATA}"], capture_output=True, text=True, check=True
    ).stdout
    old, new = charts(old_text), charts(Path(METADATA).read_text())
    db = sqlite3.connect(f"file:{args.db}?mode=ro", uri=True)
    values = filter_values(db)
    differ = 0
    for name in args.chart:
        for keys in FILTER_SETS:
            params = {k: values[k] for k in keys}
            before = db.execute(with_filters(old[name], keys), params).fetchall()
            after = db.execute(with_filters(new[name], keys), params).fetchall()
            if before != after:
                differ += 1
                print(f"{name} with {', '.join(keys) or 'no filter'}: rows differ")
        times: tuple[list[float], list[float]] = ([], [])
        for _ in range(args.rounds):
            for sql, out in ((old[name], times[0]), (new[name], times[1])):
                start = time.process_time()
                db.execute(with_filters(sql, ())).fetchall()
                out.append(time.process_time() - start)
        b, a = statistics.median(times[0]), statistics.median(times[1])
        print(f"| {name} | {b * 1000:.0f} ms | {a * 1000:.0f} ms | {a / b:.2f} |")
    return 1 if differ else 0


if __name__ == "__main__":
    sys.exit(main())
