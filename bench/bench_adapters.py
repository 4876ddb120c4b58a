"""What a matching request costs, per adapter (#19): the adapters' own positive examples
(tests/data/adapters/*.yaml) through ``pipeline.learn_from``, split into the adapter engine
(``learn.apply``: decoding the containers and following the paths) and the storing-safe
conversion (fingerprints, masks, URL and secret redaction, the person's identities scrubbed).

    python bench/bench_adapters.py [--calls 400] [--repeat 5]
    python bench/bench_adapters.py --compare REV [--rounds 3]   # REV's src vs this tree, interleaved
    python bench/bench_adapters.py --profile ADAPTER_ID          # where that adapter's time goes

Each example is timed in CPU time (``time.process_time``, so the load other processes put on the
machine counts far less than in wall time) as the median of ``--repeat`` timings of ``--calls`` calls; an adapter's
figure is the median over its examples (and the slowest example). The identity profile holds
one e-mail address and one phone number, as a person's trail would (an empty profile skips the
scrubbing of learned values, which a real trail never does). ``--compare`` runs this script on
``git archive REV src`` and on this tree in alternating subprocesses, so both sides see the same
machine load.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml
from mitmproxy.test import tflow

from gazeback.capture.snapshot import snapshot_http
from gazeback.knowledge import learn
from gazeback.leaks.needles import IdentityValue, build_profile
from gazeback.pipeline import Context, learn_from, observe

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "tests" / "data" / "adapters"
KEY = b"k" * 32
IDENTITIES = [IdentityValue(1, "email", "jane.doe@example.org"), IdentityValue(2, "phone", "+44 7700 900123")]  # fmt: skip


def examples() -> list[tuple[str, str, Any]]:
    """(adapter id, title, observation) of every positive example."""
    out = []
    for path in sorted(EXAMPLES.glob("*.yaml")):
        for ex in yaml.safe_load(path.read_text("utf-8")) or []:
            if not ex.get("adapter") or not ex.get("expect"):
                continue
            req = ex["request"]
            f = tflow.tflow(resp=True)
            f.request.url = req["url"]
            f.request.method = req.get("method", "GET")
            for k, v in (req.get("headers") or {}).items():
                f.request.headers[k] = str(v)
            if "body_json" in req:  # as tests/test_adapters.py sends it
                f.request.content = json.dumps(req["body_json"]).encode()
                if "content-type" not in f.request.headers:
                    f.request.headers["Content-Type"] = "application/json"
            elif "body_base64" in req:
                f.request.content = base64.b64decode(str(req["body_base64"]))
            elif req.get("body"):
                f.request.content = str(req["body"]).encode()
            else:
                f.request.content = b""
            out.append((ex["adapter"], ex.get("title", ""), observe(snapshot_http(f), KEY)))
    return out


def timed(fn: Any, calls: int, repeat: int) -> float:
    """CPU µs per call (this process's CPU time: other processes' load does not count)."""
    # Code before #19 kept the last 64 transform results across requests: clear it every call,
    # as a stream of different requests would, so the same request repeated is not flattered.
    clear = getattr(getattr(learn, "_transform_cached", None), "cache_clear", None)
    runs = []
    for _ in range(repeat):
        t0 = time.process_time_ns()
        if clear is None:
            for _ in range(calls):
                fn()
        else:
            for _ in range(calls):
                clear()
                fn()
        runs.append((time.process_time_ns() - t0) / calls / 1000)
    return statistics.median(runs)


def engine_call(obs: Any, index: learn.AdapterIndex) -> Any:
    """``learn.apply`` on what ``learn_from`` would hand it."""
    path = (obs.raw_path or obs.path or "/").partition("?")[0]
    adapters = [a for a in index.candidates(obs.host) or [] if a.matches(obs.method, path)]
    headers = {n.lower(): v for n, v in obs.request_headers}
    headers.update(obs.raw_secret_headers)
    request = learn.Request(obs.method, obs.host, path, obs.query, headers, obs.request_body)
    return lambda: learn.apply(adapters, request)


def measure(calls: int, repeat: int) -> dict[str, dict[str, float]]:
    """Per example (``adapter | title``): total and engine µs, properties found."""
    index = learn.load_index()
    context = Context(KEY, None, build_profile(IDENTITIES), index)
    out = {}
    for adapter, title, obs in examples():
        found = len(learn_from(obs, context))
        total = timed(lambda o=obs: learn_from(o, context), calls, repeat)
        engine = timed(engine_call(obs, index), calls, repeat)
        out[f"{adapter} | {title}"] = {"total": total, "engine": engine, "found": found}
    return out


def per_adapter(rows: dict[str, dict[str, float]], field: str) -> dict[str, tuple[float, float]]:
    """adapter → (median over its examples, slowest example)."""
    by: dict[str, list[float]] = {}
    for name, row in rows.items():
        by.setdefault(name.split(" | ")[0], []).append(row[field])
    return {a: (statistics.median(v), max(v)) for a, v in sorted(by.items())}


def compare(rev: str, rounds: int, calls: int, repeat: int) -> None:
    with tempfile.TemporaryDirectory() as d:
        archive = subprocess.run(["git", "-C", str(ROOT), "archive", rev, "src"], check=True, capture_output=True)  # fmt: skip
        subprocess.run(["tar", "-x", "-C", d], input=archive.stdout, check=True)
        sides = {"before": str(Path(d) / "src"), "after": str(ROOT / "src")}
        got: dict[str, list[dict[str, dict[str, float]]]] = {k: [] for k in sides}
        loads = []
        for rnd in range(rounds):
            for side in sides if rnd % 2 == 0 else reversed(list(sides)):
                env = {**os.environ, "PYTHONPATH": sides[side]}
                res = subprocess.run(
                    [sys.executable, __file__, "--json", "--calls", str(calls), "--repeat", str(repeat)],
                    env=env, check=True, capture_output=True, text=True,
                )  # fmt: skip
                got[side].append(json.loads(res.stdout))
                loads.append(os.getloadavg()[0])
    print(f"{rounds} interleaved rounds; load average {min(loads):.1f}–{max(loads):.1f} on "
          f"{os.cpu_count()} CPUs; µs per matching request, median over rounds of each "
          f"adapter's median example (slowest example in brackets)\n")  # fmt: skip
    print(
        "| adapter | before: total | before: engine | after: total | after: engine | after/before |"
    )
    print("|---|---|---|---|---|---|")
    table: dict[str, dict[str, tuple[float, float]]] = {}
    for side, runs in got.items():
        merged = {k: {f: statistics.median(r[k][f] for r in runs) for f in ("total", "engine")} for k in runs[0]}  # fmt: skip
        table[side + "total"] = per_adapter(merged, "total")
        table[side + "engine"] = per_adapter(merged, "engine")
    for a in table["aftertotal"]:
        if a not in table["beforetotal"]:
            continue
        cells = [table[k][a] for k in ("beforetotal", "beforeengine", "aftertotal", "afterengine")]
        ratio = cells[2][0] / cells[0][0]
        print(
            f"| {a} | " + " | ".join(f"{m:.0f} ({w:.0f})" for m, w in cells) + f" | {ratio:.2f} |"
        )


def profile(adapter_id: str, calls: int) -> None:
    import cProfile
    import pstats

    index = learn.load_index()
    context = Context(KEY, None, build_profile(IDENTITIES), index)
    obs = [o for a, _, o in examples() if a == adapter_id]
    if not obs:
        sys.exit(f"no positive example for adapter {adapter_id!r} in {EXAMPLES}")
    pr = cProfile.Profile()
    pr.enable()
    for _ in range(calls):
        for o in obs:
            learn_from(o, context)
    pr.disable()
    pstats.Stats(pr).sort_stats("tottime").print_stats(25)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    ap.add_argument("--calls", type=int, default=400)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--compare", metavar="REV")
    ap.add_argument("--profile", metavar="ADAPTER_ID")
    ap.add_argument("--json", action="store_true", help="per-example figures as JSON")
    args = ap.parse_args()
    if args.compare:
        return compare(args.compare, args.rounds, args.calls, args.repeat)
    if args.profile:
        return profile(args.profile, args.calls)
    rows = measure(args.calls, args.repeat)
    if args.json:
        print(json.dumps(rows))
        return
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs\n")
    print("| adapter | total µs (slowest) | engine µs (slowest) |")
    print("|---|---|---|")
    tot, eng = per_adapter(rows, "total"), per_adapter(rows, "engine")
    for a in tot:
        print(f"| {a} | {tot[a][0]:.0f} ({tot[a][1]:.0f}) | {eng[a][0]:.0f} ({eng[a][1]:.0f}) |")


if __name__ == "__main__":
    main()
