"""Research scale: ``gazeback merge --dataset`` of many exports, then the query set in DuckDB.

    PYTHONPATH=src python bench/merge_scale.py [--exports 200] [--rows 100000] [--keep DIR]

Builds ``--exports`` household exports (profile E1, ``--rows`` rows each over a year, each
from its own seed, through gazeback's own export writer: ``finish_tables`` and
``write_export``; ``--jobs`` processes), runs ``gazeback merge --dataset`` on them in a child
process (every export verified, then streamed) and reports its wall time, the CPU of all its
processes and the RSS of its whole process tree over time, reads every table with
pyarrow.dataset (another Arrow engine: row counts and schema), then runs each query of
``queries.sql`` in DuckDB (best of 3 after a warm-up) on the dataset in place. Made-up data: random devices, allowlisted destinations, hourly buckets.
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import resource
import secrets
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
YEAR_START = 1767225600  # 2026-01-01T00:00:00Z
HOURS = 365 * 24
CLASSES = ["phone", "phone", "tablet", "tv", "speaker", "computer", "plug", "camera"]
OSES = ["android", "ios", "windows", "macos", "linux", "other"]
CHAINS = ["plain", "lower>sha256:hex", "lower>md5:hex", "b64", "pct", "(other)"]
KEYS = ["em", "ud[em]", "gaid", "idfa", "distinct_id", "user_id", "(other)"]
LOCATIONS = ["url.query", "header", "body.json", "body.form", "cookie"]
PII = ["email", "phone", "ad_id", "android_id", "location", "persistent_id", "name"]


def destinations(allow: Any) -> list[tuple[str, str]]:
    """(domain, role) pairs an export may name: the reviewed list, CDNs, vendor clouds."""
    from gazeback.share.domains import export_domains
    from gazeback.share.schema import CDN_DOMAINS, VENDOR_CLOUD_DOMAINS

    names = sorted({*export_domains(), *CDN_DOMAINS, *VENDOR_CLOUD_DOMAINS})
    return [(d, allow.role(d)) for d in names if allow.role(d)]


def make_export(path: Path, rows: int, allow: Any, dests: list[tuple[str, str]], seed: int) -> None:
    """One household's made-up E1 export with about ``rows`` rows, written by gazeback."""
    from gazeback.share.export import Options, Tables, finish_tables, write_export
    from gazeback.share.schema import bucket_for, classify_device

    rnd = random.Random(seed)
    popular = rnd.sample(dests, min(len(dests), 400))  # a household meets a few hundred
    cum, acc = [], 0.0
    for i in range(len(popular)):
        acc += 1 / (i + 1)
        cum.append(acc)
    t = Tables()
    devices = []
    for _ in range(rnd.randint(3, 7)):
        cls, osf, vendor = classify_device(rnd.choice(CLASSES), rnd.choice(OSES))
        devices.append({"device_pid": secrets.token_hex(8), "device_class": cls,
                        "os_family": osf, "vendor": vendor})  # fmt: skip
    t.rows["devices"] = sorted(devices, key=lambda d: d["device_pid"])
    n_leaks = rows // 5
    cells: set[tuple[str, int, str]] = set()
    traffic, leaks = [], []
    while len(traffic) < rows - n_leaks:
        d = rnd.choice(devices)
        step = bucket_for(d["device_class"], 3600)
        b = YEAR_START + rnd.randrange(HOURS) * 3600
        b -= (b - YEAR_START) % step
        dest, role = rnd.choices(popular, cum_weights=cum)[0]
        if rnd.random() < 0.08:
            dest, role = ("(other)", "other") if rnd.random() < 0.7 else ("(site)", "other")
        if (d["device_pid"], b, dest) in cells:
            continue
        cells.add((d["device_pid"], b, dest))
        n = rnd.randint(3, 60)
        traffic.append({"device_pid": d["device_pid"], "bucket_start": b, "dest_domain": dest,
                        "dest_role": role, "encrypted": 1, "inspected": int(rnd.random() < .8),
                        "requests": n, "bytes_up": n * rnd.randint(300, 3000),
                        "bytes_down": n * rnd.randint(100, 40000)})  # fmt: skip
    for r in rnd.sample(traffic, n_leaks):
        leaks.append({"device_pid": r["device_pid"], "bucket_start": r["bucket_start"],
                      "dest_domain": r["dest_domain"], "pii_type": rnd.choice(PII),
                      "transform_chain": rnd.choice(CHAINS),
                      "location_kind": rnd.choice(LOCATIONS), "key_name": rnd.choice(KEYS),
                      "tier": rnd.choice(["strong", "medium", "weak"]),
                      "count": rnd.randint(3, 20)})  # fmt: skip
    t.rows["traffic"] = traffic
    t.rows["leaks"] = leaks
    named = sorted({r["dest_domain"] for r in leaks} - {"(other)", "(site)"})
    t.rows["id_sharing"] = [{"dest_domain_a": a, "dest_domain_b": b, "pii_type": "ad_id",
                             "count": 1} for a, b in zip(named, named[1:], strict=False)][:20]  # fmt: skip
    req = sum(r["requests"] for r in traffic)
    counts = {"devices": len(devices), "requests": req, "requests_exported": req,
              "requests_to_other": 0, "requests_suppressed": 0,
              "leaks": sum(r["count"] for r in leaks),
              "leaks_exported": sum(r["count"] for r in leaks), "leaks_suppressed": 0,
              "third_party_context_requests": 0}  # fmt: skip
    t.rows["export_counts"] = [{"measure": m, "value": v} for m, v in sorted(counts.items())]
    t.rows["provenance"] = [{"source": "demo", "tool_version": "1", "captures": 1}]
    finish_tables(t, allow.index, Options(), needle_count=0)
    write_export(t, path, "sqlite", lambda p: [])  # the merge verifies every input


_WORKER: dict[str, Any] = {}


def _make_one(job: tuple[Path, int, int]) -> Path:
    """Pool worker: one export (the allowlist and destinations are loaded once per worker)."""
    if not _WORKER:
        from gazeback.knowledge.classify import load_index
        from gazeback.share.schema import Allowlist

        allow = Allowlist(load_index())
        _WORKER.update(allow=allow, dests=destinations(allow))
    path, rows, seed = job
    make_export(path, rows, _WORKER["allow"], _WORKER["dests"], seed)
    return path


def make_exports(folder: Path, n: int, rows: int, seed: int = 1, jobs: int = 1) -> list[Path]:
    """``n`` distinct households' exports, each made from its own seed (``jobs`` processes)."""
    work = [(folder / f"household-{i:03d}.db", rows, seed * 100_000 + i) for i in range(n)]
    if jobs <= 1:
        return [_make_one(w) for w in work]
    import multiprocessing

    with multiprocessing.get_context("fork").Pool(jobs) as pool:
        return list(pool.imap(_make_one, work))


def run_queries(dataset: Path, rounds: int = 3) -> dict[str, float]:
    """Seconds per named query of queries.sql (best of ``rounds`` after one warm-up)."""
    import duckdb

    from gazeback.share.dataset import named_queries

    con = duckdb.connect()
    con.execute(f"SET file_search_path = '{dataset}'")
    queries = named_queries((dataset / "queries.sql").read_text())
    con.execute(queries.pop("views"))
    out = {}
    for name, sql in queries.items():
        con.execute(sql).fetchall()
        best = float("inf")
        for _ in range(rounds):
            t0 = time.perf_counter()
            con.execute(sql).fetchall()
            best = min(best, time.perf_counter() - t0)
        out[name] = best
    return out


def tree_rss(pid: int) -> dict[int, int]:
    """RSS in bytes of ``pid`` and every process below it (from /proc), by pid."""
    parents: dict[int, int] = {}
    rss: dict[int, int] = {}
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            stat = (d / "stat").read_text()
            fields = stat[stat.rindex(")") + 2 :].split()
            parents[int(d.name)] = int(fields[1])
            rss[int(d.name)] = int(fields[21]) * os.sysconf("SC_PAGE_SIZE")
        except (OSError, ValueError, IndexError):
            continue
    out, todo = {}, [pid]
    while todo:
        p = todo.pop()
        if p in rss:
            out[p] = rss[p]
        todo += [c for c, pp in parents.items() if pp == p]
    return out


def run_merge(cmd: list[str]) -> dict[str, Any]:
    """Run the merge, sampling its process tree's RSS every second; wall, CPU, RSS trace."""
    t0 = time.perf_counter()
    cpu0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    load0 = os.getloadavg()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    trace: list[tuple[float, int, int]] = []  # (s, total RSS, largest process RSS)
    first_seen: dict[int, float] = {}
    while proc.poll() is None:
        now = time.perf_counter() - t0
        rss = tree_rss(proc.pid)
        for p in rss:
            first_seen.setdefault(p, now)
        if rss:
            trace.append((now, sum(rss.values()), max(rss.values())))
        time.sleep(1)
    out, err = proc.communicate()
    wall = time.perf_counter() - t0
    cpu1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode:
        sys.exit(err)
    workers = sorted(t for p, t in first_seen.items() if p != proc.pid)
    return {
        "stdout": out, "wall": wall, "trace": trace, "workers": workers,
        "cpu": (cpu1.ru_utime - cpu0.ru_utime) + (cpu1.ru_stime - cpu0.ru_stime),
        "load": (load0, os.getloadavg()),
    }  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--exports", type=int, default=200)
    ap.add_argument("--rows", type=int, default=100_000, help="rows per export")
    ap.add_argument("--buckets", type=int, default=16)
    ap.add_argument("--keep", type=Path, help="build in this folder and keep it")
    ap.add_argument(
        "--jobs", type=int, default=os.cpu_count() or 1, help="processes making exports"
    )
    a = ap.parse_args()
    tmp = a.keep or Path(tempfile.mkdtemp(prefix="gazeback-merge-bench-"))
    tmp.mkdir(parents=True, exist_ok=True)
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    )
    exports = sorted(tmp.glob("household-*.db"))
    if len(exports) < a.exports:
        t0 = time.perf_counter()
        exports = make_exports(tmp, a.exports, a.rows, jobs=a.jobs)
        print(f"made {a.exports} exports of {a.rows:,} rows in {time.perf_counter() - t0:.0f} s "
              f"({a.jobs} processes, load average {os.getloadavg()[0]:.1f})")  # fmt: skip
    exports = exports[: a.exports]
    size = sum(p.stat().st_size for p in exports)
    out = tmp / "dataset"
    if out.exists():
        import shutil

        shutil.rmtree(out)
    m = run_merge(
        [sys.executable, "-m", "gazeback", "merge", str(out), *map(str, exports), "--dataset",
         "--buckets", str(a.buckets)]
    )  # fmt: skip
    print(m["stdout"].strip())
    trace = m["trace"]
    peak = max(trace, key=lambda r: r[1]) if trace else (0, 0, 0)
    print(f"merge: {len(exports)} exports ({size / 1e6:.0f} MB) in {m['wall']:.0f} s wall, "
          f"{m['cpu']:.0f} s CPU (all processes); load average {m['load'][0][0]:.1f} → "
          f"{m['load'][1][0]:.1f}")  # fmt: skip
    if len(m["workers"]) > 1:
        print(f"  worker processes started at {', '.join(f'{t:.0f}' for t in m['workers'])} s")
    print(f"  peak RSS, all processes together: {peak[1] / 1e6:.0f} MB at {peak[0]:.0f} s; "
          f"largest one process: {max((r[2] for r in trace), default=0) / 1e6:.0f} MB")  # fmt: skip
    for q in (0.1, 0.25, 0.5, 0.75, 0.9):
        if trace:
            t, total, big = trace[min(len(trace) - 1, int(q * len(trace)))]
            print(
                f"  RSS at {t:5.0f} s: {total / 1e6:4.0f} MB together, {big / 1e6:4.0f} MB largest"
            )
    files = [f for f in out.rglob("*") if f.is_file()]
    print(f"dataset: {len(files)} files, {sum(f.stat().st_size for f in files) / 1e6:.0f} MB")
    import pyarrow.dataset as pads

    for t in ("traffic", "leaks", "household_traffic", "household_leaks", "household_devices"):
        d = pads.dataset(out / t, format="parquet", partitioning="hive")
        types = ", ".join(f"{f.name} {f.type}" for f in d.schema)
        print(f"pyarrow.dataset {t}: {d.count_rows():,} rows; {types}")
    print(f"queries (DuckDB, best of 3 after a warm-up; load average {os.getloadavg()[0]:.1f}):")
    for name, s in run_queries(out).items():
        print(f"  {name:28s} {s * 1000:7.0f} ms")
    print(f"load average after the queries: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
