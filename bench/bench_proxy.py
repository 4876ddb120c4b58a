"""mitmdump bare vs mitmdump with gazeback: throughput, latency, and hook cost on the loop.

Loopback only, bounded: each round sends a fixed number of requests. Configurations are
interleaved round by round so machine noise hits both alike; we report medians and ratios.

    python bench/bench_proxy.py [--rounds 5] [--requests 3000] [--latency-requests 1000]
    python bench/bench_proxy.py --one-core            # mitmdump + writer on one CPU (#19)
    python bench/bench_proxy.py --one-core --https    # TLS, a handshake per request
"""

from __future__ import annotations

import argparse
import http.client
import os
import platform
import re
import shutil
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HOST = "www.google-analytics.com"
PATH = "/g/collect?v=2&tid=G-BENCH&cid=555.666&en=page_view"
BODY = b"en=page_view&ep.email=someone%40example.org"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise TimeoutError(port)


ONE_CORE: set[int] | None = None  # --one-core: the CPU mitmdump and its writer share


def _pin() -> None:  # in the mitmdump child, before exec; its writer process inherits it
    if ONE_CORE is not None:
        os.sched_setaffinity(0, ONE_CORE)


def start_mitmdump(upstream_port: int, with_gazeback: bool, tmp: Path) -> tuple:
    port = free_port()
    args = [
        sys.executable, "-c", "from mitmproxy.tools.main import mitmdump; mitmdump()",
        "-q", "--listen-host", "127.0.0.1", "--listen-port", str(port),
        "--set", f"confdir={tmp / 'conf'}",
        # reverse mode to the local upstream; the Host header names the tracker
        "--mode", f"reverse:http://127.0.0.1:{upstream_port}",
    ]  # fmt: skip
    db = tmp / f"bench-{port}.db"
    if with_gazeback:
        args += ["-s", str(ROOT / "addons" / "gazeback_addon.py"), "--set", f"gazeback_db={db}"]
    proc = subprocess.Popen(
        args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, preexec_fn=_pin
    )
    wait_port(port)
    return proc, port, db


HTTPS = False  # --https: TLS to the proxy, a new connection (and handshake) per request


def _connect(port: int) -> http.client.HTTPConnection:
    if HTTPS:
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE  # mitmproxy's CA, made for this run
        return http.client.HTTPSConnection("127.0.0.1", port, timeout=30, context=ctx)
    return http.client.HTTPConnection("127.0.0.1", port, timeout=30)


def worker(port: int, n: int, latencies: list[float], errors: list[int]) -> None:
    conn = _connect(port)
    for _ in range(n):
        t0 = time.perf_counter()
        if HTTPS:
            conn.close()
            conn = _connect(port)
        try:
            conn.request(
                "POST", PATH, body=BODY, headers={"Host": HOST, "Content-Type": "text/plain"}
            )
            resp = conn.getresponse()
            resp.read()
            if resp.status != 200:
                errors.append(resp.status)
        except (OSError, http.client.HTTPException):
            errors.append(0)
            conn.close()
            conn = _connect(port)
        latencies.append(time.perf_counter() - t0)
    conn.close()


def load(port: int, total: int, concurrency: int) -> tuple[float, list[float], int]:
    latencies: list[float] = []
    errors: list[int] = []
    per = total // concurrency
    threads = [
        threading.Thread(target=worker, args=(port, per, latencies, errors))
        for _ in range(concurrency)
    ]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - t0
    return per * concurrency / elapsed, latencies, len(errors)


def load_hey(port: int, total: int, concurrency: int) -> tuple[float, list[float], int]:
    """Throughput with Debian's hey (Go, cheap on CPU), when installed."""
    out = subprocess.run(
        ["hey", "-n", str(total), "-c", str(concurrency), "-m", "POST", "-T", "text/plain",
         "-d", BODY.decode(), "-host", HOST, f"http://127.0.0.1:{port}{PATH}"],
        capture_output=True, text=True, timeout=600, check=True,
    ).stdout  # fmt: skip
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    ok = re.search(r"\[200\]\s+(\d+) responses", out)
    return rps, [], total - (int(ok.group(1)) if ok else 0)


def pct(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(len(values) * p))]


def hook_microbench(n: int = 20000) -> dict[str, float]:
    """Event-loop time of each hook call, with the real writer thread draining the queue."""
    from mitmproxy.test import taddons, tflow

    from gazeback.capture.addon import TrailLogger

    out: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as d:
        addon = TrailLogger()
        with taddons.context(addon) as tctx:
            tctx.configure(addon, gazeback_db=str(Path(d) / "hook.db"))
            addon.running()
            flows = []
            for _ in range(n):
                f = tflow.tflow(resp=True)
                f.request.url = f"http://{HOST}{PATH}"
                f.request.content = BODY
                flows.append(f)
            times = []
            for f in flows:
                t0 = time.perf_counter_ns()
                addon.response(f)
                times.append(time.perf_counter_ns() - t0)
            addon.done()
    us = [t / 1000 for t in times]
    out["response_p50_us"] = statistics.median(us)
    out["response_p99_us"] = pct(us, 0.99)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--requests", type=int, default=3000)
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--latency-requests", type=int, default=1000)
    ap.add_argument(
        "--python-client", action="store_true", help="throughput with Python threads, not hey"
    )
    ap.add_argument(
        "--one-core",
        action="store_true",
        help="pin mitmdump and its writer to one CPU, the client and upstream to the others",
    )
    ap.add_argument(
        "--https", action="store_true", help="TLS to the proxy, one handshake per request"
    )
    args = ap.parse_args()
    global ONE_CORE, HTTPS
    HTTPS = args.https
    if args.one_core:
        cpus = sorted(os.sched_getaffinity(0))
        if len(cpus) < 2:
            ap.error("--one-core needs at least 2 CPUs")
        ONE_CORE = {cpus[0]}
        os.sched_setaffinity(0, set(cpus[1:]))  # this process (client threads), the upstream

    use_hey = shutil.which("hey") is not None and not args.python_client and not args.https
    upstream_port = free_port()
    upstream = subprocess.Popen(
        [sys.executable, str(ROOT / "bench" / "fast_upstream.py"), str(upstream_port)]
    )
    wait_port(upstream_port)
    results: dict[str, dict[str, list[float]]] = {
        name: {"rps": [], "p50": [], "p99": []} for name in ("bare", "gazeback")
    }
    rows_ok = True
    try:
        with tempfile.TemporaryDirectory() as d:
            for rnd in range(args.rounds):
                order = ("bare", "gazeback") if rnd % 2 == 0 else ("gazeback", "bare")
                for name in order:
                    proc, port, db = start_mitmdump(upstream_port, name == "gazeback", Path(d))
                    try:
                        load(port, 300, 4)  # warm-up
                        rps, _, err1 = (load_hey if use_hey else load)(
                            port, args.requests, args.concurrency
                        )
                        _, lat, err2 = load(port, args.latency_requests, 1)
                    finally:
                        proc.terminate()
                        proc.wait(30)
                    if err1 or err2:
                        print(f"round {rnd} {name}: {err1 + err2} errors", file=sys.stderr)
                    r = results[name]
                    r["rps"].append(rps)
                    r["p50"].append(pct(lat, 0.5) * 1000)
                    r["p99"].append(pct(lat, 0.99) * 1000)
                    if name == "gazeback":
                        import sqlite_utils

                        stored = sqlite_utils.Database(db)["requests"].count
                        per = (
                            args.requests
                            if use_hey
                            else args.requests // args.concurrency * args.concurrency
                        )
                        expected = 300 + per + args.latency_requests
                        rows_ok &= stored == expected
                        print(f"  stored {stored}/{expected} rows", file=sys.stderr)
                    print(
                        f"round {rnd} {name:8s} {rps:7.0f} req/s  p50 {r['p50'][-1]:.2f} ms  "
                        f"p99 {r['p99'][-1]:.2f} ms",
                        file=sys.stderr,
                    )
    finally:
        upstream.terminate()
    med = {n: {k: statistics.median(v) for k, v in r.items()} for n, r in results.items()}
    hooks = hook_microbench()
    print(
        f"\nMachine: {platform.platform()}, {os.cpu_count()} CPUs, Python {platform.python_version()}"
    )
    from mitmproxy.version import VERSION

    client = "hey" if use_hey else "Python threads"
    mode = "HTTPS, a new connection per request" if args.https else "plain HTTP keep-alive"
    pinned = "; mitmdump and its writer pinned to one CPU" if args.one_core else ""
    print(
        f"mitmproxy {VERSION}; {args.rounds} interleaved rounds; {mode}{pinned}, "
        f"reverse mode; throughput with {client}, c={args.concurrency}; latency with c=1\n"
    )
    print(
        "| configuration | throughput (req/s, median) | p50 latency c=1 (ms) | p99 latency c=1 (ms) |"
    )
    print("|---|---|---|---|")
    for name in ("bare", "gazeback"):
        m = med[name]
        print(f"| mitmdump {'+ gazeback' if name == 'gazeback' else 'bare'} | {m['rps']:.0f} | "
              f"{m['p50']:.2f} | {m['p99']:.2f} |")  # fmt: skip
    ratio = med["gazeback"]["rps"] / med["bare"]["rps"]
    print(f"\nThroughput ratio (gazeback / bare): **{ratio:.3f}**  ")
    print(f"Added latency: p50 **{med['gazeback']['p50'] - med['bare']['p50']:+.2f} ms**, "
          f"p99 {med['gazeback']['p99'] - med['bare']['p99']:+.2f} ms  ")  # fmt: skip
    print("Per-round ratios: "
          + ", ".join(f"{g / b:.2f}" for g, b in zip(results['gazeback']['rps'], results['bare']['rps'], strict=True)))  # fmt: skip
    print(f"\nHook cost on the event loop (`response()`, 20,000 calls, writer running): "
          f"p50 **{hooks['response_p50_us']:.1f} µs**, p99 {hooks['response_p99_us']:.1f} µs  ")  # fmt: skip
    print(f"Every request stored: {'yes' if rows_ok else 'NO'}")


if __name__ == "__main__":
    main()
