"""What adapters cost (#14): per request with no adapter, per matching request (decoding and
storing-safe conversion included), and the proxy's throughput with adapters vs without.

    python bench/bench_learn.py [--rounds 3] [--requests 3000] [--calls 20000]

Micro-benchmarks time ``pipeline.learn_from`` (what the writer runs per request) on prepared
observations: the median of ``--repeat`` timings of ``--calls`` calls. The proxy part runs
mitmdump + gazeback twice per round, with ``gazeback_learn`` on and off, interleaved, in regular
proxy mode on the tracker-like POST of bench/bench_proxy.py (a Google Analytics 4 hit to
www.google-analytics.com, which an adapter reads; tests/helpers/hostmap.py answers it locally).
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from mitmproxy.test import tflow

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_proxy import BODY, HOST, PATH, ROOT, free_port, wait_port  # noqa: E402

from gazeback.capture.snapshot import snapshot_http  # noqa: E402
from gazeback.knowledge.learn import load_index  # noqa: E402
from gazeback.leaks.needles import build_profile  # noqa: E402
from gazeback.pipeline import Context, learn_from, observe, process  # noqa: E402

KEY = b"k" * 32
IFA = "6d92078a-8246-4ba4-ae5b-76104861e7dc"

CASES = {
    "no adapter for the host (api.example.org)": (
        "GET", "https://api.example.org/v1/items?page=2&sort=new", b"", {}),
    "tracker host, no matching endpoint (analytics.js)": (
        "GET", "https://www.google-analytics.com/analytics.js", b"", {}),
    "match: Google Analytics UA pageview (query)": (
        "GET", "https://www.google-analytics.com/collect?v=1&tid=UA-1-1&cid=555.666&uid=abc"
        "&dl=https%3A%2F%2Fexample.org%2Fa&dr=https%3A%2F%2Fsearch.example%2F&sr=1920x1080"
        "&vp=1200x800&ul=en-gb&sd=24-bit&t=pageview", b"", {}),
    "match: Google Analytics 4 hit (query, as bench_proxy sends)": (
        "POST", "https://www.google-analytics.com/g/collect?v=2&tid=G-BENCH&cid=555.666"
        "&en=page_view", b"en=page_view&ep.email=someone%40example.org",
        {"Content-Type": "text/plain"}),
    "match: Meta Pixel POST (form body)": (
        "POST", "https://www.facebook.com/tr/",
        b"id=42&ev=Purchase&dl=https%3A%2F%2Fshop.example%2Fthanks&fbp=fb.1.1700000000000.98765"
        b"&sw=1440&sh=900", {"Content-Type": "application/x-www-form-urlencoded"}),
}  # fmt: skip


def observation(method: str, url: str, body: bytes, headers: dict[str, str]):
    f = tflow.tflow(resp=True)
    f.request.url = url
    f.request.method = method
    f.request.headers["User-Agent"] = "Mozilla/5.0 (X11; Linux x86_64) bench"
    for k, v in headers.items():
        f.request.headers[k] = v
    f.request.content = body
    return observe(snapshot_http(f), KEY)


def micro(calls: int, repeat: int) -> dict[str, tuple[float, int]]:
    context = Context(KEY, None, build_profile([]), load_index())
    out = {}
    for name, case in CASES.items():
        obs = observation(*case)
        found = len(learn_from(obs, context))
        runs = []
        for _ in range(repeat):
            t0 = time.perf_counter_ns()
            for _ in range(calls):
                learn_from(obs, context)
            runs.append((time.perf_counter_ns() - t0) / calls / 1000)
        out[name] = (statistics.median(runs), found)
    return out


def start_proxy(upstream_port: int, tmp: Path, learn: bool) -> tuple:
    """mitmdump + gazeback in regular mode; the test hostmap addon sends every connection to
    the local upstream while the request keeps its tracker host name (nothing leaves)."""
    port = free_port()
    db = tmp / f"bench-{port}.db"
    args = [
        sys.executable, "-c", "from mitmproxy.tools.main import mitmdump; mitmdump()",
        "-q", "--listen-host", "127.0.0.1", "--listen-port", str(port),
        "--set", f"confdir={tmp / 'conf'}",
        "-s", str(ROOT / "tests" / "helpers" / "hostmap.py"),
        "--set", f"hostmap_http_port={upstream_port}", "--set", f"hostmap_port={upstream_port}",
        "-s", str(ROOT / "addons" / "gazeback_addon.py"), "--set", f"gazeback_db={db}",
        "--set", f"gazeback_learn={'true' if learn else 'false'}",
    ]  # fmt: skip
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_port(port)
    return proc, port, db


def worker(port: int, n: int, errors: list[int]) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    for _ in range(n):
        try:
            conn.request(
                "POST", f"http://{HOST}{PATH}", body=BODY,
                headers={"Host": HOST, "Content-Type": "text/plain"},
            )  # fmt: skip
            resp = conn.getresponse()
            resp.read()
            if resp.status != 200:
                errors.append(resp.status)
        except (OSError, http.client.HTTPException):
            errors.append(0)
            conn.close()
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    conn.close()


def load(port: int, total: int, concurrency: int) -> tuple[float, int]:
    errors: list[int] = []
    per = total // concurrency
    threads = [
        threading.Thread(target=worker, args=(port, per, errors)) for _ in range(concurrency)
    ]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return per * concurrency / (time.perf_counter() - t0), len(errors)


def writer_cost(calls: int, repeat: int) -> dict[str, float]:
    """``pipeline.process`` + the stored item, per request, adapters on and off, interleaved:
    what the writer process spends on the bench_proxy request."""
    from gazeback.db.store import request_row
    from gazeback.knowledge.classify import load_index as load_trackers

    f = tflow.tflow(resp=True)
    f.request.url = f"http://{HOST}{PATH}"
    f.request.method = "POST"
    f.request.headers["Content-Type"] = "text/plain"
    f.request.content = BODY
    snap = snapshot_http(f)
    trackers, profile = load_trackers(), build_profile([])
    contexts = {
        "adapters on": Context(KEY, trackers, profile, load_index()),
        "adapters off": Context(KEY, trackers, profile, None),
    }
    runs: dict[str, list[float]] = {k: [] for k in contexts}
    for _ in range(repeat):
        for name, context in contexts.items():
            t0 = time.perf_counter_ns()
            for _ in range(calls):
                request_row(process(snap, context))
            runs[name].append((time.perf_counter_ns() - t0) / calls / 1000)
    return {k: statistics.median(v) for k, v in runs.items()}


def proxy(rounds: int, requests: int, concurrency: int) -> dict[str, list[float]]:
    upstream_port = free_port()
    upstream = subprocess.Popen(
        [sys.executable, str(ROOT / "bench" / "fast_upstream.py"), str(upstream_port)]
    )
    wait_port(upstream_port)
    rps: dict[str, list[float]] = {"adapters on": [], "adapters off": []}
    try:
        with tempfile.TemporaryDirectory() as d:
            for rnd in range(rounds):
                order = list(rps) if rnd % 2 == 0 else list(reversed(rps))
                for name in order:
                    proc, port, db = start_proxy(upstream_port, Path(d), name == "adapters on")
                    try:
                        load(port, 300, 4)  # warm-up
                        r, errors = load(port, requests, concurrency)
                    finally:
                        proc.terminate()
                        proc.wait(30)
                    import sqlite_utils

                    learned = sqlite_utils.Database(db)["learned_items"].count
                    print(f"round {rnd} {name}: {r:.0f} req/s, {errors} errors, "
                          f"{learned} learned rows", file=sys.stderr)  # fmt: skip
                    rps[name].append(r)
    finally:
        upstream.terminate()
    return rps


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--requests", type=int, default=3000)
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--calls", type=int, default=20000)
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--no-proxy", action="store_true", help="micro-benchmarks only")
    args = ap.parse_args()
    print(
        f"Machine: {platform.platform()}, {os.cpu_count()} CPUs, Python {platform.python_version()}"
    )
    t0 = time.perf_counter_ns()
    d = {str(i): i for i in range(100)}
    for _ in range(20000):
        for k in ("1", "50", "x"):
            d.get(k)
    ref = (time.perf_counter_ns() - t0) / 60000
    load = os.getloadavg()[0]
    print(f"Reference: one dict lookup in a Python loop took {ref:.0f} ns during this run "
          f"(load average {load:.1f} on {os.cpu_count()} CPUs): compare runs by it")  # fmt: skip
    index = load_index()
    endpoints = sum(len(a.endpoints) for a in index.adapters)
    print(f"{len(index.adapters)} adapters, {endpoints} endpoints\n")
    print("| request | `learn_from` per request (µs, median) | properties found |")
    print("|---|---|---|")
    results = micro(args.calls, args.repeat)
    for name, (us, found) in results.items():
        print(f"| {name} | {us:.2f} | {found} |")
    cost = writer_cost(args.calls // 4, args.repeat)
    print(f"\nWriter cost per request (`process` + row, the bench_proxy GA4 hit, medians): "
          f"adapters on {cost['adapters on']:.1f} µs, off {cost['adapters off']:.1f} µs "
          f"(+{cost['adapters on'] - cost['adapters off']:.1f} µs)")  # fmt: skip
    if args.no_proxy:
        return
    rps = proxy(args.rounds, args.requests, args.concurrency)
    med = {k: statistics.median(v) for k, v in rps.items()}
    ratio = med["adapters on"] / med["adapters off"]
    print(f"\nProxy throughput (mitmdump + gazeback, Python threads c={args.concurrency}, "
          f"{args.rounds} interleaved rounds, medians): adapters on {med['adapters on']:.0f} req/s, "
          f"off {med['adapters off']:.0f} req/s; ratio **{ratio:.3f}**  ")  # fmt: skip
    print("Per-round ratios: " + ", ".join(
        f"{a / b:.3f}" for a, b in zip(rps["adapters on"], rps["adapters off"], strict=True)))  # fmt: skip
    print(json.dumps({"micro_us": {k: v[0] for k, v in results.items()}, "ratio": ratio}))


if __name__ == "__main__":
    main()
