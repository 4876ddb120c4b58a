"""Leak detector benchmarks: needle build time, profile memory, bytes scanned per second.

    PYTHONPATH=src python bench/bench_leaks.py [--quick]

Prints a Markdown table for docs/benchmarks.md. One process, one core.
"""

from __future__ import annotations

import base64
import gzip
import json
import os
import platform
import random
import statistics
import sys
import time
import tracemalloc
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "helpers"))
from leakcorpus import generate, make_observation, make_persona

from gazeback.leaks.detect import detect
from gazeback.leaks.needles import build_profile
from gazeback.models import Observation

KEY = os.urandom(32)


def rss() -> int:
    """Resident bytes of this process now."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def request_bytes(obs: Observation) -> int:
    n = len(obs.host) + len(obs.path or "")
    n += sum(len(k) + len(v) + 2 for k, v in obs.query)
    n += sum(len(k) + len(v) + 4 for k, v in obs.request_headers + obs.raw_secret_headers)
    return n + len(obs.request_body or b"")


def tracker_mix(rng: random.Random, n: int) -> list[Observation]:
    """Tracker-like requests of realistic size: ~1-8 KB, random IDs, 600-byte base64 blobs."""
    out = []
    ua = "Mozilla/5.0 (Linux; Android 14; Pixel 7) AppleWebKit/537.36 Chrome/131.0 Mobile"
    for i in range(n):
        ids = {f"k{j}": f"{rng.getrandbits(64):016x}" for j in range(8)}
        blob = base64.b64encode(rng.randbytes(450)).decode()
        kind = i % 4
        headers = [("user-agent", ua), ("accept-language", "en-US,en;q=0.9")]
        raw = [("cookie", "; ".join(f"c{j}={rng.getrandbits(96):x}" for j in range(6)))]
        if kind == 0:
            q = [("ev", "PageView"), ("blob", blob), *ids.items()]
            out.append(make_observation("tr.example", "/tr", q, headers, raw_secret_headers=raw))
        elif kind == 1:
            events = [
                {"event": f"e{j}", "properties": dict(ids), "ctx": {"b": blob[:200]}}
                for j in range(rng.randint(3, 10))
            ]
            body = json.dumps({"batch": events}).encode()
            out.append(
                make_observation(
                    "api.example", "/v1/batch", [], headers, body, "application/json", raw
                )
            )
        elif kind == 2:
            body = gzip.compress(json.dumps({"data": [dict(ids) for _ in range(20)]}).encode())
            out.append(
                make_observation(
                    "api.example",
                    "/v1/g",
                    headers=[*headers, ("content-encoding", "gzip")],
                    body=body,
                    content_type="application/json",
                )
            )
        else:
            body = (
                f"data={base64.b64encode(json.dumps(ids).encode()).decode()}&blob={blob}".encode()
            )
            out.append(
                make_observation(
                    "api.example",
                    "/track",
                    [],
                    headers,
                    body,
                    "application/x-www-form-urlencoded",
                    raw,
                )
            )
    return out


def throughput(flows: list[Observation], profile, repeat: int = 3) -> tuple[float, float, int]:
    total = sum(request_bytes(o) for o in flows)
    runs, per_flow = [], []
    for _ in range(repeat):
        started = time.perf_counter()
        for obs in flows:
            t = time.perf_counter()
            detect(obs, profile, KEY)
            per_flow.append(time.perf_counter() - t)
        runs.append(time.perf_counter() - started)
    return total / statistics.median(runs) / 1e6, statistics.median(per_flow) * 1e6, total


def main(quick: bool = False) -> None:
    rng = random.Random(1)
    persona = make_persona(rng, 0)
    build_profile(persona.identities)  # imports, caches
    times = []
    for _ in range(5 if quick else 21):
        started = time.perf_counter()
        profile = build_profile(persona.identities)
        times.append(time.perf_counter() - started)
    del profile
    rss_before = rss()
    tracemalloc.start()
    profile = build_profile(persona.identities)
    py_bytes = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    native = max(0, rss() - rss_before - py_bytes)  # the automata (Rust) are not traced
    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}"
    )
    print()
    print("| figure | median |")
    print("|---|---|")
    print(
        f"| needle build, 9 identities ({profile.needle_count} needles) | "
        f"{statistics.median(times) * 1000:.1f} ms |"
    )
    print(
        f"| memory per profile (automaton + Python objects) | {(native + py_bytes) / 1e6:.1f} MB |"
    )
    n = 500 if quick else 4000
    mix = tracker_mix(random.Random(2), n)
    mbs, us, total = throughput(mix, profile)
    print(
        f"| tracker-like mix ({n} requests, {total / n / 1000:.1f} KB each): scanned | "
        f"{mbs:.1f} MB/s ({us:.0f} µs per request) |"
    )
    corpus = [f.obs for f in generate(3, n)]
    mbs, us, total = throughput(corpus, profile)
    print(
        f"| labeled corpus ({n} small requests, {total / n:.0f} B each): scanned | "
        f"{mbs:.1f} MB/s ({us:.0f} µs per request) |"
    )
    big = [
        make_observation(
            "up.example", "/u", body=os.urandom(1_000_000), content_type="application/octet-stream"
        )
        for _ in range(10)
    ]
    mbs, us, total = throughput(big, profile)
    print(f"| 1 MB binary uploads: scanned | {mbs:.1f} MB/s |")


if __name__ == "__main__":
    main("--quick" in sys.argv)
