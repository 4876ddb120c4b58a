"""Wrong passwords against the dashboard served beyond loopback: does a good client still get in?

    PYTHONPATH=src python bench/bench_dashboard_password.py [--bad 16] [--seconds 10]

Serves an empty trail with ``datasette serve`` and gazeback's plugin configured as
``gazeback dashboard --host 0.0.0.0`` configures it (password required, any Host), but
listening on 127.0.0.1 only. ``--bad`` clients, each from its own loopback address
(127.0.0.2, 127.0.0.3, ...), send a wrong password as fast as they are answered; one good
client from 127.0.0.1 sends the right one every 200 ms. Bounded: ``--seconds`` and at most
``--max-requests`` per bad client. Prints the good client's latencies, the answers per
second and what the bad clients got (401, 429) as Markdown for docs/benchmarks.md.

Run it on older code with ``PYTHONPATH=<that checkout>/src`` to compare.
"""

from __future__ import annotations

import argparse
import base64
import http.client
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import sqlite_utils

from gazeback.dashboard import serve
from gazeback.db import migrations

try:
    from gazeback.dashboard.access import hash_password
except ImportError:  # before bcrypt: the plugin hashed with PBKDF2
    from gazeback.dashboard.plugin import hash_password  # type: ignore[attr-defined,no-redef]

PASSWORD = "correct horse battery staple"
PATH = "/-/versions.json"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(folder: Path) -> tuple[subprocess.Popen[bytes], int]:
    """``datasette serve`` with the password configuration, on 127.0.0.1."""
    db_path = folder / "trail.db"
    migrations.apply(sqlite_utils.Database(db_path))
    meta = serve.dashboard_metadata("trail")
    meta.setdefault("plugins", {})["gazeback"] = {
        "allowed_hosts": ["*"],
        "password_hash": hash_password(PASSWORD),
    }
    meta_path = folder / "metadata.json"
    meta_path.write_text(json.dumps(meta))
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "datasette", "serve", str(db_path), "--metadata", str(meta_path),
         "--host", "127.0.0.1", "--port", str(port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    deadline = time.monotonic() + 120  # only against a hang: a loaded machine starts slowly
    while time.monotonic() < deadline and proc.poll() is None:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return proc, port
        time.sleep(0.1)
    proc.kill()
    raise SystemExit("datasette did not start")


def _basic(password: str) -> str:
    return "Basic " + base64.b64encode(f"me:{password}".encode()).decode()


def _get(conn_box: list[http.client.HTTPConnection | None], port: int, source: str,
         authorization: str, timeout: float) -> tuple[int, dict[str, str]]:  # fmt: skip
    for attempt in (1, 2):
        conn = conn_box[0]
        if conn is None:
            conn = http.client.HTTPConnection(
                "127.0.0.1", port, timeout=timeout, source_address=(source, 0)
            )
            conn_box[0] = conn
        try:
            conn.request("GET", PATH, headers={"Authorization": authorization})
            r = conn.getresponse()
            r.read()
            return r.status, {k.lower(): v for k, v in r.getheaders()}
        except (OSError, http.client.HTTPException):
            conn.close()
            conn_box[0] = None
            if attempt == 2:
                raise
    raise AssertionError("unreachable")


def hammer(port: int, bad: int = 16, seconds: float = 10.0, max_requests: int = 5000,
           good_every: float = 0.2, timeout: float = 30.0, good_start: float = 0.5,
           good_wanted: int | None = None) -> dict[str, object]:  # fmt: skip
    """Run the bad clients and the good one against ``port`` for ``seconds`` (or until the
    good client has ``good_wanted`` answers); return what they saw."""
    stop = threading.Event()
    bad_status: Counter[int] = Counter()
    retry_after: list[str] = []
    good: list[tuple[int, float]] = []
    errors: list[str] = []
    lock = threading.Lock()

    def bad_client(i: int) -> None:
        box: list[http.client.HTTPConnection | None] = [None]
        for _ in range(max_requests):
            if stop.is_set():
                break
            try:
                status, headers = _get(box, port, f"127.0.0.{2 + i}", _basic(f"guess{i}"), timeout)
            except (OSError, http.client.HTTPException) as e:
                with lock:
                    errors.append(f"bad {i}: {e}")
                continue
            with lock:
                bad_status[status] += 1
                if "retry-after" in headers:
                    retry_after.append(headers["retry-after"])

    def good_client() -> None:
        box: list[http.client.HTTPConnection | None] = [None]
        time.sleep(good_start)  # the bad clients are already at it
        while not stop.is_set():
            t = time.perf_counter()
            try:
                status, _ = _get(box, port, "127.0.0.1", _basic(PASSWORD), timeout)
            except (OSError, http.client.HTTPException) as e:
                errors.append(f"good: {e}")
                status = 0
            good.append((status, time.perf_counter() - t))
            time.sleep(good_every)

    threads = [threading.Thread(target=bad_client, args=(i,)) for i in range(bad)]
    threads.append(threading.Thread(target=good_client))
    started = time.perf_counter()
    for t in threads:
        t.start()
    end = time.monotonic() + seconds
    while time.monotonic() < end and (good_wanted is None or len(good) < good_wanted):
        time.sleep(0.05)
    stop.set()
    for t in threads:
        t.join(timeout + 5)
    elapsed = time.perf_counter() - started
    answered = sum(bad_status.values()) + len(good)
    return {
        "seconds": elapsed,
        "answers_per_second": answered / elapsed,
        "bad_status": dict(bad_status),
        "retry_after": sorted(set(retry_after)),
        "good_status": dict(Counter(s for s, _ in good)),
        "good_latency_ms": [round(dt * 1000, 1) for _, dt in good],
        "errors": errors[:5],
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--bad", type=int, default=16)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--max-requests", type=int, default=5000)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="gazeback-bench-pw-") as folder:
        proc, port = start_server(Path(folder))
        try:
            got = hammer(port, args.bad, args.seconds, args.max_requests)
        finally:
            proc.terminate()
            proc.wait(10)
    lat = got["good_latency_ms"]
    assert isinstance(lat, list)
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs, {args.bad} bad clients, "
          f"{got['seconds']:.1f} s")  # fmt: skip
    print("| good requests | good answered 200 | good latency median (ms) | max (ms) | "
          "answers/s (all) | bad clients got |")  # fmt: skip
    print("|---|---|---|---|---|---|")
    good_status = got["good_status"]
    assert isinstance(good_status, dict)
    print(f"| {len(lat)} | {good_status.get(200, 0)} | "
          f"{statistics.median(lat) if lat else float('nan'):.1f} | {max(lat or [0]):.1f} | "
          f"{got['answers_per_second']:.0f} | {got['bad_status']} |")  # fmt: skip
    if got["errors"]:
        print("errors:", got["errors"], file=sys.stderr)


if __name__ == "__main__":
    main()
