"""Long fuzz run of the pipeline with memory and time per flow (CI runs a short slice).

    python bench/fuzz.py [--seconds 300] [--seed 1]

Random and hostile requests (random bytes, invalid UTF-8, huge headers, deep JSON,
10,000 parameters, decompression bombs of 1 GiB from about 1 MiB) through capture,
classification, leak detection and the store's item building. Reports flows run, errors
(must be 0), the slowest flow, and peak RSS growth over the start (must stay <= 200 MB).
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import platform
import random
import resource
import time

from mitmproxy.test import tflow

from gazeback.capture.snapshot import snapshot_http
from gazeback.capture.spill import encode
from gazeback.knowledge.classify import load_index
from gazeback.leaks.needles import build_profile
from gazeback.models import IdentityValue
from gazeback.pipeline import Context, process

BOMB = gzip.compress(b"\0" * (64 * 1024 * 1024), compresslevel=9) * 16  # 1 GiB when inflated


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def hostile(rng: random.Random) -> tuple[bytes, list[tuple[bytes, bytes]], bytes, str]:
    kind = rng.randrange(7)
    if kind == 0:
        return (
            b"/" + rng.randbytes(rng.randrange(4000)),
            [],
            rng.randbytes(rng.randrange(20000)),
            "",
        )
    if kind == 1:
        headers = [
            (b"X-%d" % i, rng.randbytes(rng.randrange(200))) for i in range(rng.randrange(1500))
        ]
        return b"/h", headers, b"", ""
    if kind == 2:
        depth = rng.randrange(1, 100_000)
        return b"/j", [], b"[" * depth + b"1" + b"]" * depth, "application/json"
    if kind == 3:
        n = rng.randrange(1, 12_000)
        return b"/q?" + "&".join(f"k{i}=v{i}" for i in range(n)).encode(), [], b"", ""
    if kind == 4:
        return b"/bomb", [(b"Content-Encoding", b"gzip")], BOMB, "application/json"
    if kind == 5:
        doc = {"user": {"email": "jane.doe@example.org", "junk": rng.randbytes(50).hex()}}
        return b"/ok", [], json.dumps(doc).encode(), "application/json"
    return (
        b"/\xff\xfe\x00" + rng.randbytes(30),
        [(b"X-Bin", b"\x00\xff")],
        rng.randbytes(100),
        "text/plain",
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--seconds", type=float, default=300)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    rng = random.Random(args.seed)
    ctx = Context(
        b"k" * 32, load_index(), build_profile([IdentityValue(1, "email", "jane.doe@example.org")])
    )
    base = rss_mb()
    flows = errors = 0
    slowest = 0.0
    end = time.monotonic() + args.seconds
    while time.monotonic() < end:
        path, headers, body, ctype = hostile(rng)
        f = tflow.tflow(resp=True)
        f.request.headers.fields = tuple(headers)
        if ctype:
            f.request.headers["content-type"] = ctype
        f.request.path = path.decode("utf-8", "surrogateescape")
        f.request.raw_content = body
        t0 = time.perf_counter()
        try:
            json.dumps(encode(process(snapshot_http(f), ctx)))
        except Exception as e:  # noqa: BLE001 - counted and shown: must stay 0
            errors += 1
            print("error:", type(e).__name__, e)
        slowest = max(slowest, time.perf_counter() - t0)
        flows += 1
    print(
        f"Machine: {platform.platform()}, {os.cpu_count()} CPUs, Python {platform.python_version()}"
    )
    print(f"{args.seconds:g} s, seed {args.seed}: {flows} flows, {errors} errors, "
          f"slowest flow {slowest * 1000:.0f} ms, peak RSS growth {rss_mb() - base:.0f} MB")  # fmt: skip


if __name__ == "__main__":
    main()
