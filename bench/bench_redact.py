"""Redaction on the hot path: ``observe()`` (headers, path, Referer) over the secret and
ordinary corpora of tests/helpers/secretcorpus.py, in microseconds per request.

    python bench/bench_redact.py
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from mitmproxy.test import tflow

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "helpers"))

from secretcorpus import ordinary_cases, secret_cases  # noqa: E402

from gazeback.capture.snapshot import observe, snapshot_http  # noqa: E402

KEY = b"k" * 32


def snapshots() -> list:
    out = []
    for case in [*secret_cases(), *ordinary_cases()]:
        f = tflow.tflow(resp=True)
        f.request.url = case.url
        for name, value in case.headers:
            f.request.headers[name] = value
        f.request.headers["User-Agent"] = "Mozilla/5.0 (X11; Linux x86_64) Firefox/125.0"
        f.request.headers["Accept-Language"] = "en-US,en;q=0.8"
        out.append(snapshot_http(f))
    return out


def main() -> None:
    snaps = snapshots()
    best = float("inf")
    for _ in range(7):
        start = time.perf_counter()
        for _ in range(5):
            for s in snaps:
                observe(s, KEY)
        best = min(best, (time.perf_counter() - start) / (5 * len(snaps)))
    print(f"observe(): {best * 1e6:.1f} µs per request over {len(snaps)} requests")


if __name__ == "__main__":
    main()
