"""Soak: gazeback in mitmdump at a steady rate for a bounded time; memory and latency over time.

    python bench/soak.py [--minutes 20] [--rate 100]

Loopback only, one keep-alive client at a fixed rate (bounded: minutes x 60 x rate requests).
Every 30 s it samples the resident memory of the proxy process and of gazeback's writer
process, and the latency percentiles of the last 30 s. Pass: RSS growth <= 10 % from the end
of minute 2 to the end, p99 stable.
"""

from __future__ import annotations

import argparse
import http.client
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_proxy import BODY, HOST, PATH, ROOT, free_port, pct, wait_port  # noqa: E402


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def children(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(p) for p in path.read_text().split()] if path.exists() else []


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--minutes", type=float, default=20)
    ap.add_argument("--rate", type=int, default=100)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp())
    up = free_port()
    upstream = subprocess.Popen([sys.executable, str(ROOT / "bench" / "fast_upstream.py"), str(up)])
    wait_port(up)
    port = free_port()
    db = tmp / "soak.db"
    proxy = subprocess.Popen(
        [sys.executable, "-c", "from mitmproxy.tools.main import mitmdump; mitmdump()", "-q",
         "--listen-host", "127.0.0.1", "--listen-port", str(port), "--set", f"confdir={tmp}",
         "--mode", f"reverse:http://127.0.0.1:{up}",
         "-s", str(ROOT / "addons" / "gazeback_addon.py"), "--set", f"gazeback_db={db}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    wait_port(port)
    time.sleep(3)  # the writer process starts and loads the tracker knowledge
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    interval = 1.0 / args.rate
    end = time.monotonic() + args.minutes * 60
    next_sample = time.monotonic() + 30
    lat: list[float] = []
    rows = []
    sent = errors = 0
    t_next = time.monotonic()
    print("| minute | requests | proxy RSS (MB) | writer RSS (MB) | p50 (ms) | p99 (ms) |")
    print("|---|---|---|---|---|---|")
    started = time.monotonic()
    while time.monotonic() < end:
        t0 = time.perf_counter()
        try:
            conn.request(
                "POST", PATH, body=BODY, headers={"Host": HOST, "Content-Type": "text/plain"}
            )
            r = conn.getresponse()
            r.read()
            errors += r.status != 200
        except (OSError, http.client.HTTPException):
            errors += 1
            conn.close()
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        lat.append(time.perf_counter() - t0)
        sent += 1
        t_next += interval
        pause = t_next - time.monotonic()
        if pause > 0:
            time.sleep(pause)
        if time.monotonic() >= next_sample:
            next_sample += 30
            kids = children(proxy.pid)
            row = (
                (time.monotonic() - started) / 60,
                sent,
                rss_kb(proxy.pid) / 1024,
                sum(rss_kb(k) for k in kids) / 1024,
                pct(lat, 0.5) * 1000,
                pct(lat, 0.99) * 1000,
            )
            rows.append(row)
            lat = []
            print("| {:.1f} | {} | {:.1f} | {:.1f} | {:.2f} | {:.2f} |".format(*row), flush=True)
    conn.close()
    proxy.terminate()
    proxy.wait(60)
    upstream.terminate()
    import sqlite_utils

    stored = sqlite_utils.Database(db)["requests"].count
    base = [r for r in rows if r[0] >= 2][:1] or rows[:1]
    growth_proxy = (rows[-1][2] - base[0][2]) / base[0][2] * 100
    growth_writer = (rows[-1][3] - base[0][3]) / max(base[0][3], 1) * 100
    p99s = [r[5] for r in rows]
    print(
        f"\nMachine: {platform.platform()}, {os.cpu_count()} CPUs, Python {platform.python_version()}"
    )
    print(
        f"{args.minutes:g} minutes at {args.rate} req/s: {sent} sent, {errors} errors, {stored} stored"
    )
    print(f"RSS growth from minute {base[0][0]:.1f} to the end: proxy {growth_proxy:+.1f} %, "
          f"writer {growth_writer:+.1f} %")  # fmt: skip
    print(f"p99 per 30 s: median {statistics.median(p99s):.2f} ms, max {max(p99s):.2f} ms")


if __name__ == "__main__":
    main()
