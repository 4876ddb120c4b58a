"""Benchmark tracker classification: load time, memory, lookups/s, URL-rule checks/s, classify/s.

    PYTHONPATH=src python bench/bench_classify.py [--repeat 5]

Prints medians over the repeats. Host samples mix tracker, CDN and unknown hosts;
``classify(obs)`` runs on 30,000 browser-like requests (headers, Referer, URL rules on).
"""

from __future__ import annotations

import gc
import platform
import random
import statistics
import subprocess
import sys
import time
from typing import Any

REPEAT = int(sys.argv[sys.argv.index("--repeat") + 1]) if "--repeat" in sys.argv else 5

LOAD = """
import resource, time, tracemalloc
t = time.perf_counter()
from gazeback.knowledge.classify import load_index
index = load_index()
print(time.perf_counter() - t, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
"""


def main() -> None:
    loads, rss = [], []
    for _ in range(REPEAT):  # a fresh process each time: import + read + parse
        out = subprocess.run(
            [sys.executable, "-c", LOAD], capture_output=True, text=True, check=True
        )
        seconds, mb = map(float, out.stdout.split())
        loads.append(seconds)
        rss.append(mb)
    base = subprocess.run(
        [
            sys.executable,
            "-c",
            "import resource, gazeback.models; print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss/1024)",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    from gazeback.knowledge.classify import classify, load_index

    index = load_index()
    domains = list(index._domains) + list(index._filters)[:20000]
    hosts = [f"a{i}.{d}" for i, d in enumerate(domains)] + [
        f"h{i}.unknown-{i}.example" for i in range(20000)
    ]
    cold, cached, urls = [], [], []
    for _ in range(REPEAT):
        fresh = index.uncached_copy()
        # The previous repeat's index is a reference cycle (its lru_cache holds the bound
        # method): free it now, so every repeat times lookups against the same heap.
        gc.collect()
        t = time.perf_counter()
        for h in hosts:
            fresh.lookup(h)
        cold.append(len(hosts) / (time.perf_counter() - t))
        sample = hosts[:50000]
        t = time.perf_counter()
        for _ in range(4):
            for h in sample:
                fresh.lookup(h)
        cached.append(4 * len(sample) / (time.perf_counter() - t))
    rules = index.url_rules
    assert rules is not None
    rules.check("https://warm.example/")  # build the engines
    u = [f"https://cdn{i}.example.org/assets/{i}/app.js?v={i}" for i in range(20000)]
    u += [f"https://shop{i}.example/analytics/collect?id={i}" for i in range(5000)]
    for _ in range(REPEAT):
        t = time.perf_counter()
        for x in u:
            rules.check(x, "https://shop.example/", "script")
        urls.append(len(u) / (time.perf_counter() - t))
    obs = observations(index)
    cls_cold, cls_warm = [], []
    for _ in range(REPEAT):
        fresh = index.uncached_copy()
        gc.collect()  # as above
        t = time.perf_counter()
        for o in obs:
            classify(o, fresh)
        cls_cold.append(len(obs) / (time.perf_counter() - t))
        t = time.perf_counter()
        for o in obs:
            classify(o, fresh)
        cls_warm.append(len(obs) / (time.perf_counter() - t))
    med = statistics.median
    print(
        f"machine: {platform.processor() or platform.machine()}, Python {platform.python_version()}, "
        f"{platform.system()} ({REPEAT} repeats, medians)"
    )
    print(f"load_index (fresh process, incl. imports): {med(loads) * 1000:.0f} ms")
    print(
        f"peak RSS after load: {med(rss):.0f} MB (interpreter + gazeback.models alone: {float(base.stdout):.0f} MB)"
    )
    print(f"host lookups, cold (uncached, {len(hosts):,} distinct hosts): {med(cold):,.0f}/s")
    print(f"host lookups, cached: {med(cached):,.0f}/s")
    print(f"URL-rule checks (adblock, EasyPrivacy then EasyList): {med(urls):,.0f}/s")
    hosts_n = len({o.host for o in obs})
    print(
        f"classify(obs), {len(obs):,} requests over {hosts_n:,} hosts: "
        f"{med(cls_cold):,.0f}/s fresh index, {med(cls_warm):,.0f}/s second pass"
    )


def observations(index: Any) -> list[Any]:
    """Browser-like requests: tracker, filter-listed and unknown hosts, repeated as in a capture."""
    from gazeback.models import DeviceKey, Observation

    rnd = random.Random(3)
    doms = list(index._domains)[:3000] + list(index._filters)[:1000]
    doms += [f"site{i}.example" for i in range(3000)]
    device = DeviceKey("ip:192.168.1.23", "phone")
    out = []
    for i in range(30000):
        dest = rnd.choice(["script", "image", "empty"])
        headers = (
            ("host", "x"),
            ("user-agent", "Mozilla/5.0"),
            ("accept", "*/*"),
            ("accept-language", "en"),
            ("accept-encoding", "gzip"),
            ("sec-fetch-site", "cross-site"),
            ("sec-fetch-mode", "no-cors"),
            ("sec-fetch-dest", dest),
            ("cookie", "[redacted]"),
        )
        out.append(
            Observation(
                flow_id=str(i),
                kind="http",
                started_at="2026-11-27T06:50:24.123Z",
                device=device,
                method="GET",
                scheme="https",
                host=rnd.choice(["www.", "cdn.", "", "api."]) + rnd.choice(doms),
                port=443,
                path=f"/assets/{i % 500}/app.js?v={i % 7}",
                query=(),
                request_headers=headers,
                request_body=None,
                content_type=None,
                user_agent="Mozilla/5.0",
                referer=rnd.choice([None, "https://shop.example/p/1", "https://www.google.com/"]),
                origin=None,
                sec_fetch_site=rnd.choice([None, "cross-site", "same-site"]),
                status_code=200,
                request_bytes=0,
                response_bytes=0,
                duration_ms=None,
                is_decrypted=True,
                tls_sni=None,
                server_ip=None,
                error=None,
            )
        )
    return out


if __name__ == "__main__":
    main()
