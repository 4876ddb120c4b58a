"""Record the importer fixtures in tests/data/ with real tools, on loopback only.

Runs itself inside a new network namespace (``unshare -n -m``, needs root) whose only
interface is ``lo``, with its own ``/etc/resolv.conf`` pointing at a tiny local DNS server:
nothing can leave the machine. Needs tcpdump, curl, chromium and (for pcapng) tshark's
``editcap``.

    sudo python scripts/make_import_fixtures.py
    python scripts/make_import_fixtures.py --logs   # only the other tools' logs
    python scripts/regen_import_goldens.py   # then review the diff

Records:
  browse.har / browse.mitm  headless Chromium loading a local page through a real mitmdump
                             (mitmproxy's ``hardump`` and ``-w``)
  curl.pcap / curl.pcapng    tcpdump on lo while curl fetches over HTTP and HTTPS, with DNS
and writes the malformed variants next to them.
"""

from __future__ import annotations

import os
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "tests" / "data"
PY = sys.executable
MARK = "GAZEBACK_FIXTURE_NETNS"
EMAIL = "alice@example.org"

PAGE = f"""<!doctype html><html><head><title>News</title>
<script src="https://connect.facebook.net/en_US/fbevents.js"></script></head><body>
<h1>Local news</h1>
<img src="https://www.google-analytics.com/collect?v=1&tid=UA-1-1&cid=555.1&uid={EMAIL}&dl=http%3A%2F%2Fnews.example%2F">
<img src="http://tracker.example/pixel.gif?id=42">
<script>
fetch("https://api.example.org/v1/events", {{method: "POST",
  headers: {{"content-type": "application/json"}},
  body: JSON.stringify({{user: {{email: "{EMAIL}"}}, event: "view"}})}});
</script></body></html>
""".encode()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def _reply(self) -> None:
        n = int(self.headers.get("content-length") or 0)
        if n:
            self.rfile.read(n)
        if self.path == "/":
            body, ctype = PAGE, "text/html"
        elif self.path.endswith(".js"):
            body, ctype = b"/* fbevents */", "application/javascript"
        else:
            body, ctype = b'{"ok":true}', "application/json"
        self.send_response(200)
        self.send_header("content-type", ctype)
        self.send_header("access-control-allow-origin", "*")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = _reply

    def do_OPTIONS(self) -> None:  # the CORS preflight before the page's JSON POST
        self.send_response(204)
        self.send_header("access-control-allow-origin", "*")
        self.send_header("access-control-allow-headers", "content-type")
        self.send_header("access-control-allow-methods", "POST")
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


def dns_server() -> None:
    import dpkt

    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 53))
    while True:
        data, addr = sock.recvfrom(4096)
        q = dpkt.dns.DNS(data)
        r = dpkt.dns.DNS(id=q.id, qd=q.qd, op=dpkt.dns.DNS_RA, rcode=dpkt.dns.DNS_RCODE_NOERR)
        r.qr = dpkt.dns.DNS_R
        name = q.qd[0].name if q.qd else ""
        if name.endswith(".invalid"):
            r.rcode = dpkt.dns.DNS_RCODE_NXDOMAIN
        elif q.qd and q.qd[0].type == dpkt.dns.DNS_A:
            rr = dpkt.dns.DNS.RR(name=name, type=dpkt.dns.DNS_A, cls=1, ttl=60)
            rr.rdata = socket.inet_aton("127.0.0.1")
            r.an = [rr]
        sock.sendto(bytes(r), addr)


def serve(port: int, tls: bool, certdir: Path) -> None:
    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    if tls:
        sys.path.insert(0, str(ROOT / "tests" / "helpers"))
        import upstream

        upstream.HOSTS[:] = ["news.example", "www.google-analytics.com",
                             "connect.facebook.net", "api.example.org", "tracker.example"]  # fmt: skip
        crt, key, _ = upstream.make_cert(certdir)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(crt, key)
        server.socket = ctx.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()


def record_pcap(out: Path) -> None:
    import dpkt

    dump = subprocess.Popen(["tcpdump", "-i", "lo", "-U", "-w", str(out), "not port 8080"],
                            stderr=subprocess.DEVNULL)  # fmt: skip
    time.sleep(1.0)
    curl = ["curl", "-s", "-o", "/dev/null", "--max-time", "5", "-4"]
    subprocess.run([*curl, f"http://tracker.example/pixel.gif?id=42&email={EMAIL}"])
    subprocess.run([*curl, "-k", "https://www.google-analytics.com/collect?v=1&cid=555.1"])
    subprocess.run([*curl, "-X", "POST", "-H", "content-type: application/json",
                    "-d", '{"user":{"email":"' + EMAIL + '"}}',
                    "http://api.example.org/v1/events"])  # fmt: skip
    subprocess.run([*curl, "http://gone.invalid/"])  # NXDOMAIN
    subprocess.run([*curl, "http://news.example:81/"])  # refused: a connection with no payload
    # a query type the importer does not know (a private-use type)
    q = dpkt.dns.DNS(id=7, qd=[dpkt.dns.DNS.Q(name="odd.example", type=65280, cls=1)])
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(2)
        s.sendto(bytes(q), ("127.0.0.1", 53))
        s.recv(4096)
    time.sleep(1.0)
    dump.send_signal(2)
    dump.wait(10)


def record_browser(har: Path, mitm: Path, work: Path) -> None:
    log = open(work / "mitmdump.log", "wb")
    proxy = subprocess.Popen(
        [PY, "-c", "from mitmproxy.tools.main import mitmdump; mitmdump()",
         "--listen-host", "127.0.0.1", "--listen-port", "8080", "--set", f"confdir={work}/conf",
         "--set", "ssl_insecure=true", "-w", str(mitm), "--set", f"hardump={har}"],
        stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    time.sleep(4)
    subprocess.run(
        ["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--proxy-server=http://127.0.0.1:8080", "--proxy-bypass-list=<-loopback>",
         "--ignore-certificate-errors", f"--user-data-dir={work}/chrome",
         "--virtual-time-budget=5000", "--dump-dom", "http://news.example/"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=60,
    )  # fmt: skip
    time.sleep(1)
    proxy.send_signal(2)
    proxy.wait(20)


def inside() -> None:
    work = Path(tempfile.mkdtemp())
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    resolv = work / "resolv.conf"
    resolv.write_text("nameserver 127.0.0.1\n")
    subprocess.run(["mount", "--bind", str(resolv), "/etc/resolv.conf"], check=True)
    threading.Thread(target=dns_server, daemon=True).start()
    serve(80, False, work)
    serve(443, True, work)
    record_pcap(DATA / "curl.pcap")
    if shutil.which("editcap"):
        subprocess.run(["editcap", "-F", "pcapng", DATA / "curl.pcap", DATA / "curl.pcapng"])
    record_browser(DATA / "browse.har", DATA / "browse.mitm", work)


def malformed() -> None:
    """Defective variants of each fixture, made from the recorded ones."""
    import json

    har = json.loads((DATA / "browse.har").read_text())
    entries = har["log"]["entries"]
    bad = json.loads(json.dumps(har))
    bad["log"]["entries"][0]["response"]["content"].update(text="@@not base64@@", encoding="base64")
    bad["log"]["entries"].insert(1, {"startedDateTime": "yesterday"})
    (DATA / "browse-defects.har").write_text(json.dumps(bad, indent=1))
    (DATA / "not-a-har.har").write_text(json.dumps({"entries": entries[:1]}))
    raw = (DATA / "browse.har").read_bytes()
    (DATA / "cut-short.har").write_bytes(raw[: len(raw) // 2])
    mitm = (DATA / "browse.mitm").read_bytes()
    (DATA / "browse-truncated.mitm").write_bytes(mitm[:-40])
    (DATA / "not-a-dump.mitm").write_bytes(b"42 is not a flow\n" * 4)
    pcap = (DATA / "curl.pcap").read_bytes()
    (DATA / "curl-truncated.pcap").write_bytes(pcap[:-30])
    (DATA / "not-a-pcap.pcap").write_bytes(b"\xd4\xc3\xb2\xa1" + b"\x00" * 7)


def logs() -> None:
    """Other tools' logs, written to their documented formats (no iPhone, Pi-hole or
    AdGuard Home runs here): Apple's App Privacy Report NDJSON, Pi-hole FTL's ``queries``
    table, AdGuard Home's querylog.json."""
    import base64
    import json
    import sqlite3

    import dpkt

    apr = [
        {"type": "access", "category": "location", "identifier": "A1", "kind": "intervalBegin",
         "timeStamp": "2026-11-20T09:15:02.120+01:00",
         "accessor": {"identifier": "com.example.weather", "identifierType": "bundleID"}},
        {"type": "networkActivity", "domain": "graph.facebook.com", "firstTimeStamp":
         "2026-11-20T09:15:03.001+01:00", "timeStamp": "2026-11-20T09:16:40.511+01:00",
         "bundleID": "com.example.weather", "initiatedType": "AppInitiated", "hits": 4,
         "domainType": 2, "domainOwner": "", "context": ""},
        {"type": "networkActivity", "domain": "app-measurement.com", "firstTimeStamp":
         "2026-11-20T09:15:03.200+01:00", "timeStamp": "2026-11-20T09:15:03.200+01:00",
         "bundleID": "com.example.weather", "initiatedType": "AppInitiated", "hits": 1,
         "domainType": 2, "domainOwner": "", "context": ""},
        {"type": "networkActivity", "domain": "news.example", "firstTimeStamp":
         "2026-11-20T10:01:00.000+01:00", "timeStamp": "2026-11-20T10:01:00.000+01:00",
         "bundleID": "com.apple.mobilesafari", "initiatedType": "NonAppInitiated", "hits": 9,
         "domainType": 1, "domainOwner": "", "context": "news.example"},
    ]  # fmt: skip
    lines = [json.dumps(x) for x in apr]
    (DATA / "app-privacy-report.ndjson").write_text("\n".join(lines) + "\n")
    bad = [*lines[:2], '{"type": "networkActivity", "timeStamp": "2026-11-20T09:17:00Z"}',
           "{not json", *lines[2:]]  # fmt: skip
    (DATA / "app-privacy-report-defects.ndjson").write_text("\n".join(bad) + "\n")
    (DATA / "not-a-report.ndjson").write_text('{"hello": "world"}\n')

    def answer(name: str) -> str:
        q = dpkt.dns.DNS(id=1, qd=[dpkt.dns.DNS.Q(name=name, type=1, cls=1)])
        q.qr = dpkt.dns.DNS_R
        return base64.b64encode(bytes(q)).decode()

    agh = [
        {"IP": "192.168.1.23", "T": "2026-11-20T09:15:03.123456789+01:00",
         "QH": "graph.facebook.com", "QT": "A", "QC": "IN", "CP": "", "Answer":
         answer("graph.facebook.com"), "Result": {}, "Elapsed": 20345678,
         "Upstream": "tls://9.9.9.9:853"},
        {"IP": "192.168.1.23", "T": "2026-11-20T09:15:03.300000001+01:00",
         "QH": "app-measurement.com", "QT": "HTTPS", "QC": "IN", "CP": "",
         "Result": {"IsFiltered": True, "Reason": 3, "Rules": [{"Text": "||app-measurement.com^",
         "FilterListID": 1}]}, "Elapsed": 51234},
        {"IP": "192.168.1.40", "T": "2026-11-20T09:20:00.5+01:00", "QH": "news.example",
         "QT": "AAAA", "QC": "IN", "CP": "", "Result": {}, "Elapsed": 1200000},
    ]  # fmt: skip
    lines = [json.dumps(x) for x in agh]
    (DATA / "querylog.json").write_text("\n".join(lines) + "\n")
    broken = json.loads(lines[0])
    broken["Answer"] = "%%%"
    bad = [json.dumps(broken), lines[1], lines[2][: len(lines[2]) // 2]]
    (DATA / "querylog-defects.json").write_text("\n".join(bad) + "\n")

    def ftl(path: Path, rows: list[tuple[Any, ...]]) -> None:
        path.unlink(missing_ok=True)
        db = sqlite3.connect(path)
        db.execute(
            "CREATE TABLE queries (id INTEGER PRIMARY KEY AUTOINCREMENT, timestamp INTEGER NOT"
            " NULL, type INTEGER NOT NULL, status INTEGER NOT NULL, domain TEXT NOT NULL,"
            " client TEXT NOT NULL, forward TEXT, additional_info TEXT, reply_type INTEGER,"
            " reply_time REAL, dnssec INTEGER)"
        )
        db.executemany(
            "insert into queries (id, timestamp, type, status, domain, client, forward,"
            " reply_type, reply_time) values (?, ?, ?, ?, ?, ?, ?, ?, ?)", rows
        )  # fmt: skip
        db.commit()
        db.execute("vacuum")
        db.close()

    rows = [
        (1, 1795680903, 1, 2, "graph.facebook.com", "192.168.1.23", "9.9.9.9#53", 4, 0.021),
        (2, 1795680903, 16, 1, "app-measurement.com", "192.168.1.23", None, 1, 0.0001),
        (3, 1795681200, 2, 3, "news.example", "192.168.1.40", None, 4, 0.0002),
        (4, 1795681201, 1, 2, "news.example", "fe80::1", "9.9.9.9#53", 4, 0.015),
    ]  # fmt: skip
    ftl(DATA / "pihole-FTL.db", rows)
    ftl(DATA / "pihole-defects.db", [*rows[:2], (3, 1795681200, 2, 3, "", "192.168.1.40",
                                                 None, 4, 0.0002)])  # fmt: skip
    other = DATA / "not-pihole.db"
    other.unlink(missing_ok=True)
    db = sqlite3.connect(other)
    db.execute("create table notes (text)")
    db.commit()
    db.close()


def main() -> None:
    if sys.argv[1:] == ["--logs"]:
        logs()
        return
    if os.environ.get(MARK) == "1":
        inside()
        return
    env = {**os.environ, MARK: "1"}
    subprocess.run(["unshare", "-n", "-m", PY, __file__], env=env, check=True)
    malformed()
    logs()


if __name__ == "__main__":
    main()
