"""A room of phones: 30 devices through one gazeback proxy, HTTPS, a new connection each.

    PYTHONPATH=src python bench/room.py [--minutes 10] [--rate 150] [--devices 30]

Loopback only, bounded (minutes x 60 x rate requests, and at most 400 in flight):

- a local HTTPS upstream (asyncio, an ECDSA certificate) answers for every host name, and the
  proxy sends every server connection there (``tests/helpers/hostmap.py``);
- N devices p01..pNN added as ``gazeback device add`` adds them (each its own proxy user and
  password, its own WireGuard server on 127.0.0.1, unused here), then ``gazeback run`` on free
  loopback ports (proxy and dashboard, whose "room" board is the workshop's big screen);
- seat i connects from its own source address 127.0.0.(i+2), opens a new TCP connection for
  every request, sends ``CONNECT host:443`` with its proxy user (gazeback asks devices on the
  network for it; a client on this computer may present one and is then that device), does a
  TLS handshake with the proxy and sends one request of a tracker-heavy mix;
- first a direct baseline: the same client, rate and mix straight to the upstream (TLS, new
  connection each), for ``--baseline-seconds``.

Every 10 s: the proxy's and the writer's RSS, the writer backlog (requests answered minus rows
stored), and the room dashboard's response time (its page and every chart query, as the big
screen loads them). At the end, once the writer has caught up: requests answered vs rows
stored for the seats (lost = answered - stored).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import platform
import random
import re
import shutil
import signal
import socket
import sqlite3
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
HELPERS = ROOT / "tests" / "helpers"
MAX_IN_FLIGHT = 400
# (host, path, body, weight): trackers first, as a phone's background traffic is.
MIX = [
    ("www.google-analytics.com", "/g/collect?v=2&tid=G-ROOM&cid=555.{i}&en=page_view", None, 8),
    ("app-measurement.com", "/a?v=2&gmp_app_id=1:2:android:3&app_instance_id={i:032x}", b"\x00" * 200, 8),
    ("graph.facebook.com", "/v17.0/activities", b'{"event":"MOBILE_APP_INSTALL","advertiser_id":"{aaid}","anon_id":"XZ{i}"}', 6),
    ("googleads.g.doubleclick.net", "/pagead/id?adid={aaid}&rdid={aaid}", None, 6),
    ("api2.branch.io", "/v1/install", b'{"hardware_id":"{aaid}","os":"Android","model":"Pixel 7"}', 3),
    ("app.adjust.com", "/session?gps_adid={aaid}&app_token=abc123&event_count={i}", None, 3),
    ("api.mixpanel.com", "/track?ip=1", b'data=[{"event":"open","properties":{"distinct_id":"u{i}"}}]', 3),
    ("sdk.iad-01.braze.com", "/api/v3/data", b'{"device_id":"{aaid}","events":[{"name":"ss"}]}', 2),
    ("firebaselogging-pa.googleapis.com", "/v1/firelog/legacy/batchlog", b"\x08" * 300, 3),
    ("settings.crashlytics.com", "/spi/v2/platforms/android/apps/x/settings?instance={i:x}", None, 2),
    ("bat.bing.com", "/action/0?ti=1&Ver=2&mid={aaid}", None, 2),
    ("sentry.io", "/api/1/envelope/", b'{"event_id":"' + b"e" * 32 + b'"}', 1),
    ("api.example.org", "/v1/feed?page={i}", None, 4),
    ("cdn.example.org", "/img/{i}.png", None, 3),
]  # fmt: skip
BANNER = re.compile(r"Dashboard:\s+(http://\S+)")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def tree(pid: int) -> list[int]:
    out = [pid]
    try:
        for kid in Path(f"/proc/{pid}/task/{pid}/children").read_text().split():
            out += tree(int(kid))
    except OSError:
        pass
    return out


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    return s[min(len(s) - 1, int(p * len(s)))]


class Load:
    """Open-loop HTTPS load: request i at start + i / rate, from seat i % devices."""

    def __init__(self, rate: float, seats: list[tuple[str, str]], target: tuple[str, int],
                 via_proxy: bool) -> None:  # fmt: skip
        self.rate, self.seats, self.target, self.via_proxy = rate, seats, target, via_proxy
        self.ctx = ssl.create_default_context()
        self.ctx.check_hostname = False
        self.ctx.verify_mode = ssl.CERT_NONE
        self.latencies: list[float] = []
        self.window: list[float] = []
        self.ok = self.errors = self.skipped = self.in_flight = 0
        self.error_kinds: dict[str, int] = {}
        weights = [w for *_, w in MIX]
        rnd = random.Random(19)
        self.plan = rnd.choices(range(len(MIX)), weights, k=100_000)

    async def one(self, i: int) -> None:
        seat = i % len(self.seats)
        user, password = self.seats[seat]
        host, path, body, _ = MIX[self.plan[i % len(self.plan)]]
        aaid = f"38400000-8cf0-11bd-b23e-{seat:012d}"
        path = path.replace("{aaid}", aaid).format(i=i)
        data = (
            body.replace(b"{aaid}", aaid.encode()).replace(b"{i}", str(i).encode())
            if body
            else None
        )
        src = (f"127.0.0.{seat + 2}", 0)
        t0 = time.perf_counter()
        writer = None
        try:
            if self.via_proxy:
                reader, writer = await asyncio.open_connection(*self.target, local_addr=src)
                token = base64.b64encode(f"{user}:{password}".encode()).decode()
                writer.write(f"CONNECT {host}:443 HTTP/1.1\r\nHost: {host}:443\r\n"
                             f"Proxy-Authorization: Basic {token}\r\n\r\n".encode())  # fmt: skip
                head = await reader.readuntil(b"\r\n\r\n")
                if not head.startswith(b"HTTP/1.1 200"):
                    raise ConnectionError(head.split(b"\r\n")[0].decode())
                await writer.start_tls(self.ctx, server_hostname=host)
            else:
                reader, writer = await asyncio.open_connection(
                    *self.target, ssl=self.ctx, server_hostname=host, local_addr=src
                )
            method = "POST" if data is not None else "GET"
            extra = (
                f"Content-Length: {len(data)}\r\nContent-Type: application/json\r\n" if data else ""
            )
            writer.write(f"{method} {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: Dalvik/2.1.0 "
                         f"(Linux; U; Android 14; Pixel 7)\r\n{extra}Connection: close\r\n\r\n"
                         .encode() + (data or b""))  # fmt: skip
            head = await reader.readuntil(b"\r\n\r\n")
            m = re.search(rb"content-length:\s*(\d+)", head, re.I)
            if m:
                await reader.readexactly(int(m.group(1)))
            if not head.startswith(b"HTTP/1.1 200"):
                raise ConnectionError(head.split(b"\r\n")[0].decode())
            dt = time.perf_counter() - t0
            self.latencies.append(dt)
            self.window.append(dt)
            self.ok += 1
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError,
                ConnectionError, ssl.SSLError, TimeoutError) as e:  # fmt: skip
            self.errors += 1
            kind = f"{type(e).__name__}: {str(e)[:60]}"
            self.error_kinds[kind] = self.error_kinds.get(kind, 0) + 1
        finally:
            self.in_flight -= 1
            if writer is not None:
                writer.close()

    async def run(self, seconds: float, tick: Any = None) -> None:
        start = time.monotonic()
        n = int(seconds * self.rate)
        tasks = set()
        next_tick = start + 10
        for i in range(n):
            due = start + i / self.rate
            now = time.monotonic()
            if due > now:
                await asyncio.sleep(due - now)
            if tick and time.monotonic() >= next_tick:
                next_tick += 10
                await asyncio.to_thread(tick, self)
            if self.in_flight >= MAX_IN_FLIGHT:
                self.skipped += 1
                continue
            self.in_flight += 1
            t = asyncio.ensure_future(asyncio.wait_for(self.one(i), 60))
            tasks.add(t)
            t.add_done_callback(tasks.discard)
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)


def make_cert(folder: Path) -> tuple[Path, Path]:
    """A self-signed ECDSA P-256 certificate for every host of the mix (cheap handshakes)."""
    from datetime import UTC, datetime, timedelta

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "room upstream")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1)).not_valid_after(now + timedelta(days=2))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(h) for h, *_ in MIX]), False)
        .sign(key, hashes.SHA256())
    )  # fmt: skip
    crt, pem = folder / "upstream.crt", folder / "upstream.key"
    crt.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    pem.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                      serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption()))  # fmt: skip
    return crt, pem


async def serve_upstream(folder: Path) -> None:
    """The internet's stand-in: HTTPS on 127.0.0.1 for every host name, one small JSON
    answer per request (asyncio: handshakes never wait for each other)."""
    crt, pem = make_cert(folder)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(crt, pem)

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                m = re.search(rb"content-length:\s*(\d+)", head, re.I)
                if m:
                    await reader.readexactly(int(m.group(1)))
                body = b'{"ok":true}'
                writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
                             b"content-length: %d\r\n\r\n%s" % (len(body), body))  # fmt: skip
                await writer.drain()
                if b"connection: close" in head.lower():
                    break
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, OSError, ssl.SSLError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=ctx, backlog=2048)
    print(server.sockets[0].getsockname()[1], flush=True)
    await server.serve_forever()


def start_upstream(folder: Path) -> tuple[subprocess.Popen[str], int]:
    code = (
        f"import asyncio, sys; from pathlib import Path; sys.path.insert(0, {str(ROOT / 'bench')!r}); "
        f"import room; asyncio.run(room.serve_upstream(Path({str(folder)!r})))"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    return proc, int(proc.stdout.readline())


class Dashboard:
    """The big screen as a browser loads it: the page, then every chart's query."""

    def __init__(self, url: str) -> None:
        import httpx

        from gazeback.dashboard import serve

        self.base = url.split("/-/")[0]
        self.client = httpx.Client(timeout=30, follow_redirects=False)
        r = self.client.get(url)
        if r.status_code not in (200, 302):
            raise SystemExit(f"the big screen answered {r.status_code}")
        board = serve.dashboard_metadata("trail")["plugins"]["datasette-dashboards"]["workshop"]
        self.charts = [c["query"] for c in board["charts"].values() if "query" in c]

    def load(self) -> tuple[float, float]:
        """(page ms, slowest chart ms)."""
        t0 = time.perf_counter()
        r = self.client.get(f"{self.base}/-/dashboards/workshop")
        page = (time.perf_counter() - t0) * 1000
        if r.status_code != 200:
            raise RuntimeError(f"big screen page: HTTP {r.status_code}")
        worst = 0.0
        for sql in self.charts:
            sql = re.sub(r"\[\[.*?\]\]", "", sql, flags=re.S)
            t0 = time.perf_counter()
            r = self.client.get(f"{self.base}/trail.json", params={"sql": sql, "_shape": "array"})
            worst = max(worst, (time.perf_counter() - t0) * 1000)
            if r.status_code != 200:
                raise RuntimeError(f"big screen chart: HTTP {r.status_code}: {r.text[:200]}")
        return page, worst


def stored(db: Path) -> int:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)
    try:
        return int(conn.execute(
            "select count(*) from requests r join devices d on d.id = r.device_id "
            "where d.key like 'user:p%'"
        ).fetchone()[0])  # fmt: skip
    finally:
        conn.close()


def add_devices(db_path: Path, n: int) -> None:
    """Seats p01..pNN as ``gazeback device add`` makes them, each WireGuard server on a UDP
    port free right now on 127.0.0.1 (other programs on this machine hold 51820 and up)."""
    from sqlite_utils import Database

    from gazeback.db import migrations
    from gazeback.devices import registry

    db = Database(db_path)
    migrations.apply(db)
    for i in range(1, n + 1):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        registry.add(db, db_path, f"p{i:02d}", "phone", port=port, endpoint_host="127.0.0.1")
    db.close()


def bare(a: argparse.Namespace, tmp: Path, up_port: int, port: int) -> None:
    """The same load through mitmdump without gazeback (no proxy users: none are asked)."""
    proc = subprocess.Popen(
        [sys.executable, "-c", "from mitmproxy.tools.main import mitmdump; mitmdump()", "-q",
         "--listen-host", "127.0.0.1", "--listen-port", str(port), "--set", f"confdir={tmp}",
         "-s", str(HELPERS / "hostmap.py"), "--set", f"hostmap_port={up_port}",
         "--set", "ssl_insecure=true"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        for _ in range(300):
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.2)
        seats = [(f"p{i:02d}", "x") for i in range(1, a.devices + 1)]
        base = Load(a.rate, seats, ("127.0.0.1", up_port), via_proxy=False)
        asyncio.run(base.run(a.baseline_seconds))
        load = Load(a.rate, seats, ("127.0.0.1", port), via_proxy=True)
        asyncio.run(load.run(a.minutes * 60))
        print(f"bare mitmdump, {a.rate:g} requests/s: answered {load.ok}, errors {load.errors}, "
              f"not sent {load.skipped}; p50 {pct(load.latencies, .5) * 1000:.1f} ms, p99 "
              f"{pct(load.latencies, .99) * 1000:.1f} ms; direct p50 "
              f"{pct(base.latencies, .5) * 1000:.1f} ms, p99 {pct(base.latencies, .99) * 1000:.1f} ms")  # fmt: skip
    finally:
        proc.terminate()
        proc.wait(30)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--minutes", type=float, default=10)
    ap.add_argument(
        "--rate", type=float, default=150, help="requests per second, all seats together"
    )
    ap.add_argument("--devices", type=int, default=30)
    ap.add_argument("--baseline-seconds", type=float, default=60)
    ap.add_argument(
        "--bare",
        action="store_true",
        help="bare mitmdump (no gazeback) instead: mitmproxy's own share of the latency",
    )
    a = ap.parse_args()
    if not 1 <= a.devices <= 200 or a.minutes > 60:
        raise SystemExit("--devices 1-200 and --minutes up to 60")
    tmp = Path(tempfile.mkdtemp(prefix="gazeback-room-"))
    upstream, up_port = start_upstream(tmp)
    folder = tmp / "room"
    folder.mkdir(mode=0o700)
    db = folder / "trail.db"
    add_devices(db, a.devices)
    ports = {k: free_port() for k in ("proxy", "dashboard")}
    if a.bare:
        bare(a, tmp, up_port, ports["proxy"])
        upstream.terminate()
        return
    lines: list[str] = []
    proc = subprocess.Popen(
        [sys.executable, "-m", "gazeback", "run", "--db", str(db),
         "--listen-port", str(ports["proxy"]), "--dashboard-port", str(ports["dashboard"]),
         "--endpoint", "127.0.0.1", "--wireguard-host", "127.0.0.1",
         "--", "-s", str(HELPERS / "hostmap.py"), "--set", f"hostmap_port={up_port}",
         "--set", "ssl_insecure=true", "--set", f"confdir={folder / 'mitmproxy'}"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    assert proc.stdout is not None
    threading.Thread(
        target=lambda: lines.extend(iter(proc.stdout.readline, "")), daemon=True
    ).start()  # type: ignore[union-attr]
    try:
        deadline = time.monotonic() + 180
        url = None
        while url is None and time.monotonic() < deadline and proc.poll() is None:
            url = next((m.group(1) for ln in lines if (m := BANNER.search(ln))), None)
            time.sleep(0.2)
        if url is None:
            raise SystemExit("gazeback run did not start:\n" + "".join(lines))
        time.sleep(5)  # the writer process loads the tracker knowledge
        from gazeback.devices.access import credentials_path

        creds = json.loads(credentials_path(db).read_text())
        seats = [(f"p{i:02d}", creds[f"p{i:02d}"]) for i in range(1, a.devices + 1)]
        print(f"machine: {platform.platform()}, {os.cpu_count()} cores, Python "
              f"{platform.python_version()}; {a.devices} seats, {a.rate:g} requests/s")  # fmt: skip
        base = Load(a.rate, seats, ("127.0.0.1", up_port), via_proxy=False)
        asyncio.run(base.run(a.baseline_seconds))
        print(f"direct baseline: {base.ok} ok, {base.errors} errors; p50 "
              f"{pct(base.latencies, .5) * 1000:.1f} ms, p99 {pct(base.latencies, .99) * 1000:.1f} ms")  # fmt: skip
        board = Dashboard(url)
        samples: list[dict[str, Any]] = []
        started = time.monotonic()
        print(
            "| minute | answered | stored | backlog | p50 ms | p99 ms | proxy RSS MB | writer RSS MB | dashboard RSS MB | big screen page ms | slowest chart ms |"
        )
        print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")

        def tick(load: Load) -> None:
            pids = tree(proc.pid)
            writer = [p for p in pids if "multiprocessing" in cmdline(p)]
            dash = [p for p in pids if "datasette" in cmdline(p)]
            proxy = [p for p in pids if p not in writer and p not in dash]
            page, chart = board.load()
            n = stored(db)
            s = {"minute": (time.monotonic() - started) / 60, "answered": load.ok, "stored": n,
                 "backlog": load.ok + warm.ok - n, "p50": pct(load.window, .5) * 1000,
                 "p99": pct(load.window, .99) * 1000,
                 "proxy_rss": sum(rss_mb(p) for p in proxy),
                 "writer_rss": sum(rss_mb(p) for p in writer),
                 "dash_rss": sum(rss_mb(p) for p in dash), "page": page, "chart": chart}  # fmt: skip
            load.window = []
            samples.append(s)
            print("| {minute:.1f} | {answered} | {stored} | {backlog} | {p50:.1f} | {p99:.1f} | "
                  "{proxy_rss:.0f} | {writer_rss:.0f} | {dash_rss:.0f} | {page:.0f} | {chart:.0f} |".format(**s),
                  flush=True)  # fmt: skip

        room = Load(a.rate, seats, ("127.0.0.1", ports["proxy"]), via_proxy=True)
        t0 = time.perf_counter()
        warm = Load(a.rate, seats, ("127.0.0.1", ports["proxy"]), via_proxy=True)
        warm.plan = list(range(len(MIX)))
        for i in range(max(len(seats), len(MIX))):  # each device joins; each host's certificate
            warm.in_flight += 1
            asyncio.run(warm.one(i))
        print(f"warm-up: {warm.ok} requests one at a time (each device's first, each host's "
              f"first) in {time.perf_counter() - t0:.1f} s, {warm.errors} errors")  # fmt: skip
        asyncio.run(room.run(a.minutes * 60, tick))
        t_end = time.monotonic() + 120
        n = stored(db)
        while n < room.ok + warm.ok and time.monotonic() < t_end:
            time.sleep(1)
            n = stored(db)
        sent = int(a.minutes * 60 * a.rate)
        p99_added = (pct(room.latencies, 0.99) - pct(base.latencies, 0.99)) * 1000
        late = [s for s in samples if s["minute"] >= 2] or samples
        print(f"\nsent {sent}, answered {room.ok}, errors {room.errors}, not sent (client over "
              f"{MAX_IN_FLIGHT} in flight) {room.skipped}; stored {n - warm.ok}; "
              f"lost {room.ok + warm.ok - n}")  # fmt: skip
        if room.error_kinds:
            print("errors: " + "; ".join(f"{k} ×{v}" for k, v in room.error_kinds.items()))
        print(f"through the proxy: p50 {pct(room.latencies, .5) * 1000:.1f} ms, p99 "
              f"{pct(room.latencies, .99) * 1000:.1f} ms; p99 added vs direct {p99_added:.1f} ms")  # fmt: skip
        print(f"writer backlog: max {max(s['backlog'] for s in samples)}, median "
              f"{statistics.median(s['backlog'] for s in samples):.0f} requests")  # fmt: skip
        print(f"RSS from minute {late[0]['minute']:.1f} to the end: proxy "
              f"{late[0]['proxy_rss']:.0f} → {late[-1]['proxy_rss']:.0f} MB, writer "
              f"{late[0]['writer_rss']:.0f} → {late[-1]['writer_rss']:.0f} MB")  # fmt: skip
        print(f"big screen: page max {max(s['page'] for s in samples):.0f} ms, slowest chart max "
              f"{max(s['chart'] for s in samples):.0f} ms")  # fmt: skip
    finally:
        if os.environ.get("ROOM_DEBUG"):
            print("".join(lines[-40:]))
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(120)
        except subprocess.TimeoutExpired:
            proc.kill()
        upstream.terminate()
        upstream.wait(10)
        shutil.rmtree(tmp, ignore_errors=True)  # the trail and the devices' keys


if __name__ == "__main__":
    main()
