"""Benchmark tracker classification: load time, memory, host lookups/s, URL-rule checks/s.

    PYTHONPATH=src python bench/bench_classify.py [--repeat 5]

Prints medians over the repeats. Host samples mix tracker, CDN and unknown hosts.
"""

from __future__ import annotations

import platform
import statistics
import subprocess
import sys
import time

REPEAT = int(sys.argv[sys.argv.index("--repeat") + 1]) if "--repeat" in sys.argv else 5

LOAD = """
import resource, time, tracemalloc
t = time.perf_counter()
from gazeback.classify import load_index
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
    from gazeback.classify import TrackerIndex, load_index

    index = load_index()
    domains = list(index._domains) + list(index._filters)[:20000]
    hosts = [f"a{i}.{d}" for i, d in enumerate(domains)] + [
        f"h{i}.unknown-{i}.example" for i in range(20000)
    ]
    cold, cached, urls = [], [], []
    for _ in range(REPEAT):
        fresh = TrackerIndex(
            {
                "sources": index.sources,
                "companies": index.companies,
                "trackers": index.trackers,
                "domains": index._domains,
                "filter_domains": {"easyprivacy": list(index._filters)},
            },
            use_url_rules=False,
        )
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


if __name__ == "__main__":
    main()
