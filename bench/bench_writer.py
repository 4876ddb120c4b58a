"""Writer CPU per request, stage by stage, on tracker-like traffic with identities registered.

    PYTHONPATH=src python bench/bench_writer.py [--requests 4000] [--rounds 5] [--profile]

What the proxy's writer process does with each captured flow, in one process and one thread,
timed per stage: redact and normalise (``observe``), classify, infer the app, learn (adapters),
detect leaks, scrub, and the store (``save_records`` in the writer's 16-record batches, into an
on-disk WAL database with every migration applied: indexes, summary triggers). The summaries
are measured three ways, interleaved in one process: as gazeback keeps them (each batch added
in one grouped statement per table, m047), per row by the insert triggers (as before m047: the
triggers left on for the batch), and not at all (triggers dropped, nothing added). Rounds are
interleaved; medians.
``--profile`` prints the cProfile top functions of one pass instead.
"""

from __future__ import annotations

import argparse
import base64
import cProfile
import gzip
import json
import os
import pstats
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import sqlite_utils

from gazeback.db import migrations, store
from gazeback.db.identities import add_identity, load_key, load_profile
from gazeback.knowledge import learn
from gazeback.knowledge.apps import infer_app
from gazeback.knowledge.classify import classify, load_index
from gazeback.leaks.detect import detect_safe
from gazeback.models import DeviceKey, FlowSnapshot, Record
from gazeback.pipeline import Context, learn_from, observe, process, scrub

BATCH = 16  # the writer's batch size (capture/writer.py)
UA = "Mozilla/5.0 (Linux; Android 14; Pixel 7) AppleWebKit/537.36 Chrome/131.0 Mobile"
EMAIL = "someone@example.org"
ADID = "38400000-8cf0-11bd-b23e-10b96e40000d"
PHONE = "+14155550123"


def snapshots(n: int, seed: int = 1) -> list[FlowSnapshot]:
    """A tracker-heavy mix: analytics pixels, SDK batches, gzipped JSON, forms, plain pages.

    IDs are stable per app install (12 installs), as SDKs send them; each event adds a sequence
    number and a timestamp. One request in eight carries a registered identity (advertising ID
    or email)."""
    rng = random.Random(seed)
    installs = [{f"k{j}": f"{rng.getrandbits(64):016x}" for j in range(6)} for _ in range(12)]
    clients = [f"{rng.getrandbits(31)}.{rng.getrandbits(31)}" for _ in range(12)]
    device = DeviceKey("ip:192.168.1.23", "phone", "phone")
    out = []
    t0 = 1_790_000_000.0
    for i in range(n):
        cid = clients[(i // 6) % 12]
        ids = dict(installs[(i // 6) % 12], seq=str(i), ts=str(1_790_000_000_000 + i * 50))
        leak = i % 8 == 0
        headers: list[tuple[bytes, bytes]] = [
            (b"user-agent", UA.encode()),
            (b"accept-language", b"en-US,en;q=0.9"),
            (b"accept", b"*/*"),
            (b"cookie", f"_ga=GA1.1.{cid}; _gid=GA1.1.{rng.getrandbits(40)}".encode()),
        ]
        kind = i % 6
        body: bytes | None = None
        method = "GET"
        if kind == 0:
            host = "www.google-analytics.com"
            path = f"/g/collect?v=2&tid=G-BENCH&cid={cid}&en=page_view&dl=https%3A%2F%2Fnews.example%2Fa{i}"
            method, body = "POST", b"en=page_view&ep.x=" + str(i).encode()
            if leak:
                body += b"&ep.email=" + EMAIL.replace("@", "%40").encode()
        elif kind == 1:
            host = "app-measurement.com"
            events = [
                {"name": f"e{j}", "params": dict(ids), "ts": 1_790_000_000_000 + j}
                for j in range(rng.randint(3, 8))
            ]
            payload = {"app": "com.example.game", "events": events}
            if leak:
                payload["adid"] = ADID
            path, method, body = "/a", "POST", json.dumps(payload).encode()
            headers.append((b"content-type", b"application/json"))
        elif kind == 2:
            host = "graph.facebook.com"
            data = [dict(ids, event="fb_mobile_activate_app") for _ in range(10)]
            if leak:
                data[0]["advertiser_id"] = ADID
            body = gzip.compress(json.dumps({"data": data}).encode())
            path, method = "/v19.0/1234567/activities", "POST"
            headers += [(b"content-type", b"application/json"), (b"content-encoding", b"gzip")]
        elif kind == 3:
            host = "api.mixpanel.com"
            ev = {"event": "open", "properties": dict(ids, token="abc", distinct_id=cid)}
            blob = base64.b64encode(json.dumps([ev]).encode()).decode()
            path, method, body = "/track", "POST", f"data={blob}".encode()
            headers.append((b"content-type", b"application/x-www-form-urlencoded"))
        elif kind == 4:
            host = "securepubads.g.doubleclick.net"
            path = f"/gampad/ads?iu=%2F123%2Fnews&sz=300x250&correlator={rng.getrandbits(50)}"
            if leak:
                path += f"&rdid={ADID}&is_lat=0"
        else:
            host = "news.example"
            path = f"/articles/{i}.html"
            headers.append((b"referer", b"https://news.example/"))
        out.append(
            FlowSnapshot(
                flow_id=f"bench-{seed}-{i}",
                kind="http",
                started_at=t0 + i * 0.05,
                device=device,
                method=method,
                scheme="https",
                host=host,
                port=443,
                path=path,
                http_version="HTTP/2.0",
                request_headers=tuple(headers),
                request_body=body,
                status_code=200,
                request_bytes=len(path) + len(body or b"") + 300,
                response_bytes=43,
                duration_ms=12.5,
                tls_sni=host,
                server_ip="127.0.0.1",
            )
        )
    return out


def fresh_db(directory: Path, name: str, triggers: bool = True) -> tuple[str, bytes]:
    path = str(directory / f"{name}.db")
    db = sqlite_utils.Database(path)
    db.enable_wal()
    db.execute("PRAGMA synchronous=NORMAL")
    migrations.apply(db)
    key = load_key(path, create=True)
    add_identity(db, key, "email", EMAIL)
    add_identity(db, key, "ad_id", ADID)
    add_identity(db, key, "phone", PHONE)
    if not triggers:
        for (t,) in db.execute("select name from sqlite_master where type = 'trigger'").fetchall():
            db.execute(f"drop trigger [{t}]")
    db.conn.commit()
    db.close()
    return path, key


STAGES = ("observe", "classify", "app", "learn", "detect", "scrub", "record", "store")
# How the dashboards' summaries are kept while the store stage runs (see the docstring).
MODES = ("grouped per batch", "per-row triggers", "no summaries")


@contextmanager
def summaries_kept(mode: str) -> Iterator[None]:
    """``store.save_records`` with its summaries kept the way ``mode`` names."""
    saved = store.defer, store.add_batch, store.add_leaks_after
    if mode != MODES[0]:
        # no row in _summary_deferred: the insert triggers fire (or, dropped, nothing happens)
        store.defer = lambda db: None  # type: ignore[assignment]
        store.add_batch = lambda db, rows: None  # type: ignore[assignment]
        store.add_leaks_after = lambda db, after: None  # type: ignore[assignment]
    try:
        yield
    finally:
        store.defer, store.add_batch, store.add_leaks_after = saved


def run_stages(snaps: list[FlowSnapshot], context: Context, db_path: str) -> dict[str, float]:
    """One pass; CPU seconds per stage (process_time)."""
    t = dict.fromkeys(STAGES, 0.0)
    clock = time.process_time
    db = sqlite_utils.Database(db_path)
    db.execute("PRAGMA synchronous=NORMAL")
    capture = store.start_capture(db, "bench", {})
    cache: dict[str, int] = {}
    known: set[str] = set()
    pending: list[Record] = []
    for snap in snaps:
        a = clock()
        obs = observe(snap, context.key)
        b = clock()
        cls = classify(obs, context.index)
        c = clock()
        if obs.app is None and (
            app := infer_app(obs.user_agent, obs.request_headers, obs.query, obs.request_body)
        ):
            obs = replace(obs, app=app, app_source="inferred")
        d = clock()
        learned = learn_from(obs, context) if context.adapters is not None else ()
        e = clock()
        assert context.profile is not None
        det = detect_safe(obs, context.profile, context.key)
        f = clock()
        if det.leaks:
            obs = scrub(obs, det.leaks)
        g = clock()
        pending.append(
            Record(
                observation=obs,
                classification=cls,
                leaks=det.leaks,
                decode_truncated=det.truncated,
                detection=det,
                learned=learned,
            )
        )
        h = clock()
        for name, x, y in (
            ("observe", a, b),
            ("classify", b, c),
            ("app", c, d),
            ("learn", d, e),
            ("detect", e, f),
            ("scrub", f, g),
            ("record", g, h),
        ):
            t[name] += y - x
        if len(pending) >= BATCH:
            s = clock()
            store.save_records(
                db, capture, pending, index=context.index, device_cache=cache, known_trackers=known
            )
            t["store"] += clock() - s
            pending = []
    if pending:
        s = clock()
        store.save_records(
            db, capture, pending, index=context.index, device_cache=cache, known_trackers=known
        )
        t["store"] += clock() - s
    db.close()
    return t


def store_only(d: Path, index: Any, adapters: Any, n: int, rounds: int) -> None:
    """CPU of ``save_records`` alone per request, each summary mode on the same records."""
    per_mode: dict[str, list[float]] = {m: [] for m in MODES}
    for r in range(rounds):
        path, key = fresh_db(d, f"p{r}")
        context = Context(key, index, load_profile(path), adapters)
        records = [process(s, context) for s in snapshots(n, seed=r + 1)]
        for m, label in enumerate(MODES[r % len(MODES) :] + MODES[: r % len(MODES)]):
            target, _ = fresh_db(d, f"s{r}m{m}", triggers=label != "no summaries")
            db = sqlite_utils.Database(target)
            db.execute("PRAGMA synchronous=NORMAL")
            capture = store.start_capture(db, "bench", {})
            cache: dict[str, int] = {}
            known: set[str] = set()
            with summaries_kept(label):
                t = time.process_time()
                for i in range(0, n, BATCH):
                    store.save_records(db, capture, records[i : i + BATCH], index=index,
                                       device_cache=cache, known_trackers=known)  # fmt: skip
                per_mode[label].append((time.process_time() - t) / n * 1e6)
            db.close()
    print(f"Python {sys.version.split()[0]}, {n} requests x {rounds} rounds, store only, "
          f"load average {os.getloadavg()[0]:.2f} at the end\n")  # fmt: skip
    for label, values in per_mode.items():
        print(f"| {label} | {statistics.median(values):.1f} µs | rounds: "
              f"{', '.join(f'{v:.0f}' for v in values)} |")  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--requests", type=int, default=4000)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--profile", action="store_true", help="cProfile one pass, print the top")
    ap.add_argument(
        "--store-only",
        action="store_true",
        help="process the flows once, then time only the store, the summary modes interleaved",
    )
    args = ap.parse_args()
    index = load_index()
    adapters = learn.load_index()
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        if args.profile:
            path, key = fresh_db(d, "p")
            ctx = Context(key, index, load_profile(path), adapters)
            snaps = snapshots(args.requests, seed=0)
            pr = cProfile.Profile()
            pr.enable()
            run_stages(snaps, ctx, path)
            pr.disable()
            pstats.Stats(pr).sort_stats("tottime").print_stats(35)
            return
        if args.store_only:
            store_only(d, index, adapters, args.requests, args.rounds)
            return
        results: dict[str, list[dict[str, float]]] = {m: [] for m in MODES}
        # warm-up: caches (hosts, keys) fill as they would in a long-running writer
        path, key = fresh_db(d, "warm")
        ctx = Context(key, index, load_profile(path), adapters)
        run_stages(snapshots(500, seed=99), ctx, path)
        for r in range(args.rounds):
            # the order turns every round: whichever runs first in a round runs slower here
            for m, label in enumerate(MODES[r % len(MODES) :] + MODES[: r % len(MODES)]):
                path, key = fresh_db(d, f"r{r}m{m}", triggers=label != "no summaries")
                ctx = Context(key, index, load_profile(path), adapters)
                snaps = snapshots(args.requests, seed=r + 1)
                with summaries_kept(label):
                    results[label].append(run_stages(snaps, ctx, path))
                for suffix in ("", "-wal", "-shm"):
                    Path(path + suffix).unlink(missing_ok=True)
        n = args.requests
        print(
            f"Python {sys.version.split()[0]}, {n} requests x {args.rounds} rounds, "
            f"load average {os.getloadavg()[0]:.2f} at the end\n"
        )
        print(f"| stage (µs per request, median) | {' | '.join(MODES)} |")
        print("|---|" + "---:|" * len(MODES))
        for stage in (*STAGES, "total"):
            cells = []
            for label in MODES:
                vals = [
                    (sum(x.values()) if stage == "total" else x[stage]) / n * 1e6
                    for x in results[label]
                ]
                cells.append(f"{statistics.median(vals):.1f}")
            print(f"| {stage} | {' | '.join(cells)} |")
        whole = [sum(x.values()) / n * 1e6 for x in results[MODES[0]]]
        print(f"\nper-round totals (µs): {', '.join(f'{v:.0f}' for v in whole)}")


if __name__ == "__main__":
    main()
