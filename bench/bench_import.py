"""Import speed and memory: HAR and mitmproxy dumps (requests/s), pcap (MB/s), dpkt vs scapy.

    PYTHONPATH=src python bench/bench_import.py [--pcap-mb 200] [--rounds 3]

Inputs are built from the recorded fixtures in tests/data/ (Chromium's requests
repeated; curl's DNS, TLS and HTTP packets repeated with bulk downloads of 1448-byte
segments in between), written to a temporary folder, and imported through the real
pipeline (classification and leak detection with one registered email) into an
on-disk database. Peak memory is measured in a fresh child process per size.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "tests" / "data"
sys.path.insert(0, str(ROOT / "tests" / "helpers"))


def make_har(path: Path, n: int) -> None:
    har = json.loads((DATA / "browse.har").read_text())
    entries = har["log"]["entries"]
    har["log"]["entries"] = [entries[i % len(entries)] for i in range(n)]
    path.write_text(json.dumps(har))


def make_mitm(path: Path, n: int) -> None:
    import uuid

    from mitmproxy import io

    with open(DATA / "browse.mitm", "rb") as f:
        flows = list(io.FlowReader(f).stream())
    with open(path, "wb") as f:
        w = io.FlowWriter(f)
        for i in range(n):
            flow = flows[i % len(flows)].copy()
            flow.id = str(uuid.uuid4())
            w.add(flow)


def make_pcap(path: Path, mb: int) -> None:
    """curl's packets (DNS, HTTP, TLS) per round, ports shifted, plus a 256 KB download."""
    import struct

    import dpkt

    raw = (DATA / "curl.pcap").read_bytes()
    packets = [(ts, buf) for ts, buf in dpkt.pcap.Reader(open(DATA / "curl.pcap", "rb"))]
    payload = b"x" * 1448
    with open(path, "wb") as f:
        f.write(raw[:24])
        size, rnd, ts0 = 24, 0, packets[0][0]
        while size < mb * 1_000_000:
            rnd += 1
            t = ts0 + rnd
            out = []
            for ts, buf in packets:
                eth = dpkt.ethernet.Ethernet(buf)
                l4 = eth.data.data
                if isinstance(l4, dpkt.tcp.TCP | dpkt.udp.UDP):
                    if l4.sport > 1024:
                        l4.sport = 1025 + (l4.sport + rnd) % 60000
                    if l4.dport > 1024:
                        l4.dport = 1025 + (l4.dport + rnd) % 60000
                out.append((t + ts - ts0, bytes(eth)))
            # a download on its own connection: SYN, then 180 full-size segments, FIN
            ip = dpkt.ip.IP(src=b"\x7f\x00\x00\x01", dst=b"\x7f\x00\x00\x01", p=6)
            port = 1025 + rnd % 60000
            for k in range(182):
                flags = dpkt.tcp.TH_SYN if k == 0 else dpkt.tcp.TH_FIN if k == 181 else 0
                data = payload if 0 < k < 181 else b""
                tcp = dpkt.tcp.TCP(sport=443 if k else port, dport=port if k else 443,
                                   flags=flags | dpkt.tcp.TH_ACK * (k > 0), data=data)  # fmt: skip
                ip.data, ip.len = tcp, 20 + len(tcp)
                eth = dpkt.ethernet.Ethernet(src=b"\x00" * 6, dst=b"\x00" * 6, data=ip)
                out.append((t + 0.5 + k / 1000, bytes(eth)))
            for ts, buf in out:
                sec = int(ts)
                f.write(struct.pack("<IIII", sec, int((ts - sec) * 1e6), len(buf), len(buf)))
                f.write(buf)
                size += 16 + len(buf)


def cpu_seconds() -> float:
    """CPU time of this process and of its finished children (import workers)."""
    me, kids = (
        resource.getrusage(resource.RUSAGE_SELF),
        resource.getrusage(resource.RUSAGE_CHILDREN),
    )
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


LAST_CPU: list[float] = [0.0]  # CPU seconds of the last import_once (parent + workers)


def import_once(
    path: Path, fmt: str, detect: bool = True, workers: int | None = None
) -> tuple[float, int]:
    import sqlite_utils
    from importgolden import context, fresh_db

    from gazeback.db import migrations
    from gazeback.imports.importers import Source, content_hash, import_file
    from gazeback.knowledge.classify import load_index

    with tempfile.TemporaryDirectory() as tmp:
        db = sqlite_utils.Database(Path(tmp) / "b.db")
        db.enable_wal()
        migrations.apply(db)
        mem = fresh_db()  # the identity lives in a scratch db; the profile is what matters
        ctx = context(mem)
        if not detect:
            ctx = replace(ctx, profile=None)
        index = load_index()
        t, cpu = time.perf_counter(), cpu_seconds()
        with open(path, "rb") as fp:
            src = Source(path.name, content_hash(fp), path.stat().st_size)
            result = import_file(db, fp, src, fmt, ctx, index=index, workers=workers)
        dt = time.perf_counter() - t
        LAST_CPU[0] = cpu_seconds() - cpu
        db.close()
    return dt, result.entries


def parse_only(path: Path, limit: int) -> dict[str, float]:
    import dpkt
    from scapy.all import PcapReader

    t, n = time.perf_counter(), 0
    for _, buf in dpkt.pcap.Reader(open(path, "rb")):
        dpkt.ethernet.Ethernet(buf)
        n += 1
        if n >= limit:
            break
    dpkt_rate = n / (time.perf_counter() - t)
    t, n = time.perf_counter(), 0
    for _ in PcapReader(str(path)):
        n += 1
        if n >= limit:
            break
    return {"dpkt packets/s": dpkt_rate, "scapy packets/s": n / (time.perf_counter() - t)}


def peak_rss_child(path: Path) -> float:
    code = (
        f"import sys, resource; sys.argv=['x']; sys.path.insert(0, {str(Path(__file__).parent)!r}); "
        "from bench_import import import_once; from pathlib import Path; "
        f"import_once(Path({str(path)!r}), 'pcap'); "
        "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env={**os.environ}, check=True)  # fmt: skip
    return int(out.stdout.split()[-1]) / 1024


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--requests", type=int, default=5000)
    ap.add_argument("--pcap-mb", type=int, default=100)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--flows-only", action="store_true", help="HAR and mitmproxy dumps only")
    args = ap.parse_args()
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"Python {platform.python_version()}")  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        har, mitm, pcap = folder / "b.har", folder / "b.mitm", folder / "b.pcap"
        make_har(har, args.requests)
        make_mitm(mitm, args.requests)
        small = folder / "small.pcap"
        if not args.flows_only:
            make_pcap(pcap, args.pcap_mb)
            make_pcap(small, max(args.pcap_mb // 4, 1))
        for path, fmt in ((har, "har"), (mitm, "mitm")):
            # workers=0: everything in this process; None: one worker process per core
            for workers, how in ((0, "one process"), (None, "worker processes")):
                times, cpus = [], []
                for _ in range(args.rounds):
                    times.append(import_once(path, fmt, workers=workers)[0])
                    cpus.append(LAST_CPU[0])
                med = statistics.median(times)
                bare = statistics.median(
                    import_once(path, fmt, detect=False, workers=workers)[0]
                    for _ in range(args.rounds)
                )
                print(f"{fmt}, {how}: {args.requests} requests, median {med:.2f} s = "
                      f"{args.requests / med:,.0f} requests/s (runs: "
                      f"{', '.join(f'{args.requests / t:,.0f}' for t in times)}); CPU "
                      f"{statistics.median(cpus) / args.requests * 1e3:.2f} ms a request; "
                      f"without leak detection {args.requests / bare:,.0f} requests/s",
                      flush=True)  # fmt: skip
        if args.flows_only:
            return
        size = pcap.stat().st_size / 1e6
        runs = [import_once(pcap, "pcap") for _ in range(args.rounds)]
        med = statistics.median(t for t, _ in runs)
        print(f"pcap: {size:.0f} MB, {runs[0][1]} records, median {med:.2f} s = "
              f"{size / med:.1f} MB/s")  # fmt: skip
        rates = parse_only(pcap, 50_000)
        print("parse only, first 50,000 packets: " +
              ", ".join(f"{k} {v:,.0f}" for k, v in rates.items()))  # fmt: skip
        for p in (small, pcap):
            print(f"peak RSS importing {p.stat().st_size / 1e6:.0f} MB pcap: "
                  f"{peak_rss_child(p):.0f} MB")  # fmt: skip
    print(f"(self RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB)")


if __name__ == "__main__":
    main()
