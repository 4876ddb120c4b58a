"""Build the per-app import fixtures in tests/data (our own, made from the formats' specs).

    python tests/helpers/appfixtures.py      # rewrites the files, then:
    python scripts/regen_import_goldens.py   # rewrites their .expected.json

Formats: PCAPdroid's pcap trailer and pcapng blocks (its pcap_dump.h, tools/pcapdroid.lua),
its connections CSV (strings.xml ``connections_csv_fields``), TrackerControl's CSV exports
(ActivityMain.csvExport, DetailsActivity.csvExport) and HTTP Toolkit's HAR (its
src/model/http/har.ts). Timestamps and the TLS ClientHello are fixed, so the bytes are the
same on every run.
"""

from __future__ import annotations

import base64
import json
import struct
import zlib
from pathlib import Path

import dpkt

DATA = Path(__file__).resolve().parent.parent / "data"
PHONE, DNS_SERVER, FB, ADS = "10.215.173.1", "10.215.173.2", "157.240.1.1", "142.250.1.1"
T0 = 1795765241  # 2026-11-27T05:40:41Z
EMAIL = "alice@example.org"  # the identity tests/helpers/importgolden.py registers
INSTAGRAM = (10123, "com.instagram.android", "Instagram")
WEATHER = (10456, "com.example.weather", "Weather Today")


def client_hello(sni: str) -> bytes:
    """A minimal TLS 1.2 ClientHello with an SNI extension (RFC 5246, 6066)."""
    name = sni.encode()
    sni_ext = struct.pack("!HHHBH", 0, len(name) + 5, len(name) + 3, 0, len(name)) + name
    body = (
        b"\x03\x03" + bytes(range(32)) + b"\x00" + b"\x00\x02\x00\x2f" + b"\x01\x00"
        + struct.pack("!H", len(sni_ext)) + sni_ext
    )  # fmt: skip
    hs = b"\x01" + len(body).to_bytes(3, "big") + body
    return b"\x16\x03\x01" + struct.pack("!H", len(hs)) + hs


def dns(qid: int, name: str, answer: str | None) -> bytes:
    msg = dpkt.dns.DNS(id=qid, qd=[dpkt.dns.DNS.Q(name=name, type=dpkt.dns.DNS_A)])
    if answer:
        msg.qr = dpkt.dns.DNS_R
        rr = dpkt.dns.DNS.RR(name=name, type=dpkt.dns.DNS_A, ttl=60)
        rr.rdata = bytes(int(x) for x in answer.split("."))
        rr.rlen = 4
        msg.an = [rr]
    return bytes(msg)


def ip(src: str, dst: str, l4: dpkt.Packet) -> bytes:
    proto = dpkt.ip.IP_PROTO_UDP if isinstance(l4, dpkt.udp.UDP) else dpkt.ip.IP_PROTO_TCP
    pkt = dpkt.ip.IP(src=bytes(int(x) for x in src.split(".")),
                     dst=bytes(int(x) for x in dst.split(".")), p=proto, ttl=64, data=l4)  # fmt: skip
    pkt.len = len(bytes(pkt))
    return bytes(pkt)


def udp(sport: int, dport: int, data: bytes) -> dpkt.udp.UDP:
    u = dpkt.udp.UDP(sport=sport, dport=dport, data=data)
    u.ulen = 8 + len(data)
    return u


def tcp(sport: int, dport: int, flags: int, seq: int, data: bytes = b"") -> dpkt.tcp.TCP:
    return dpkt.tcp.TCP(sport=sport, dport=dport, flags=flags, seq=seq, off=5, data=data)


def packets() -> list[tuple[float, bytes, tuple[int, str, str]]]:
    """(time, IP packet, app) of two apps: Instagram's DNS + TLS to Facebook, the weather
    app's cleartext ad request carrying the person's email (a leak)."""
    S, A, PA, F = (
        dpkt.tcp.TH_SYN,
        dpkt.tcp.TH_ACK,
        dpkt.tcp.TH_PUSH | dpkt.tcp.TH_ACK,
        (dpkt.tcp.TH_FIN | dpkt.tcp.TH_ACK),
    )
    hello = client_hello("graph.facebook.com")
    ad = (
        f"GET /ads?bundle=com.example.weather&em={EMAIL} HTTP/1.1\r\n"
        "Host: ads.doubleclick.net\r\nUser-Agent: okhttp/4.12.0\r\n\r\n"
    ).encode()
    ok = b"HTTP/1.1 204 No Content\r\n\r\n"
    out = [
        (
            0.00,
            ip(PHONE, DNS_SERVER, udp(40001, 53, dns(7, "graph.facebook.com", None))),
            INSTAGRAM,
        ),
        (0.01, ip(DNS_SERVER, PHONE, udp(53, 40001, dns(7, "graph.facebook.com", FB))), INSTAGRAM),
        (0.02, ip(PHONE, FB, tcp(50001, 443, S, 100)), INSTAGRAM),
        (0.03, ip(FB, PHONE, tcp(443, 50001, S | A, 900)), INSTAGRAM),
        (0.04, ip(PHONE, FB, tcp(50001, 443, PA, 101, hello)), INSTAGRAM),
        (0.05, ip(FB, PHONE, tcp(443, 50001, PA, 901, b"\x16\x03\x03\x00\x04abcd")), INSTAGRAM),
        (0.06, ip(PHONE, FB, tcp(50001, 443, F, 101 + len(hello))), INSTAGRAM),
        (0.07, ip(FB, PHONE, tcp(443, 50001, F, 910)), INSTAGRAM),
        (1.00, ip(PHONE, ADS, tcp(50002, 80, S, 200)), WEATHER),
        (1.01, ip(ADS, PHONE, tcp(80, 50002, S | A, 700)), WEATHER),
        (1.02, ip(PHONE, ADS, tcp(50002, 80, PA, 201, ad)), WEATHER),
        (1.03, ip(ADS, PHONE, tcp(80, 50002, PA, 701, ok)), WEATHER),
        (1.04, ip(PHONE, ADS, tcp(50002, 80, F, 201 + len(ad))), WEATHER),
        (1.05, ip(ADS, PHONE, tcp(80, 50002, F, 701 + len(ok))), WEATHER),
    ]
    return [(T0 + t, p, app) for t, p, app in out]


def pcap_with_trailer() -> bytes:
    """pcap, link type Ethernet: zeroed Ethernet header, IP packet, padding, 32-byte trailer."""
    out = [struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)]
    for ts, pkt, (uid, _, name) in packets():
        frame = bytes(12) + b"\x08\x00" + pkt
        frame += bytes((-(len(frame)) - 0) % 4)  # keep the trailer 4-byte aligned
        trailer = struct.pack(">Ii20s", 0x01072021, uid, name.encode()[:19])
        frame += trailer
        frame += struct.pack(">I", zlib.crc32(frame) & 0xFFFFFFFF)
        sec, usec = int(ts), round((ts - int(ts)) * 1e6)
        out.append(struct.pack("<IIII", sec, usec, len(frame), len(frame)) + frame)
    return b"".join(out)


def _block(btype: int, body: bytes) -> bytes:
    body += bytes(-len(body) % 4)
    n = len(body) + 12
    return struct.pack("<II", btype, n) + body + struct.pack("<I", n)


def pcapng_with_blocks() -> bytes:
    """pcapng, raw IP: a UID-mapping Custom Block per app, a ``u-<uid>`` comment per packet."""
    shb = _block(0x0A0D0D0A, struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1))
    idb = _block(1, struct.pack("<HHI", 101, 0, 65535))
    out, mapped = [shb, idb], set()
    for ts, pkt, (uid, package, name) in packets():
        if uid not in mapped:
            mapped.add(uid)
            out.append(_block(0xBAD, struct.pack("<IHBBiBB", 62652, 1, 1, 0, uid, len(package),
                                                 len(name)) + package.encode() + name.encode()))  # fmt: skip
        usec = round(ts * 1e6)
        comment = f"u-{uid}".encode()
        opts = struct.pack("<HH", 1, len(comment)) + comment + bytes(-len(comment) % 4)
        opts += struct.pack("<HH", 0, 0)
        epb = struct.pack("<IIIII", 0, usec >> 32, usec & 0xFFFFFFFF, len(pkt), len(pkt))
        out.append(_block(6, epb + pkt + bytes(-len(pkt) % 4) + opts))
    return b"".join(out)


def pcapdroid_csv() -> str:
    head = ("IPProto,SrcIP,SrcPort,DstIp,DstPort,UID,App,PackageName,Proto,Status,Info,"
            "BytesSent,BytesRcvd,PktsSent,PktsRcvd,FirstSeen,LastSeen")  # fmt: skip
    rows = [
        "17,10.215.173.1,40001,10.215.173.2,53,10123,Instagram,com.instagram.android,DNS,"
        "Closed,graph.facebook.com,36,52,1,1,2026-11-27T06:40:41.000+01:00,"
        "2026-11-27T06:40:41.010+01:00",
        "6,10.215.173.1,50001,157.240.1.1,443,10123,Instagram,com.instagram.android,TLS,"
        "Closed,graph.facebook.com,517,4210,6,7,2026-11-27T06:40:41.020+01:00,"
        "2026-11-27T06:40:43.500+01:00",
        "6,10.215.173.1,50002,142.250.1.1,443,10456,Weather Today,com.example.weather,TLS,"
        "Active,googleads.g.doubleclick.net,812,1500,4,5,2026-11-27T06:40:42.000+01:00,"
        "2026-11-27T06:40:42.300+01:00",
        "6,10.215.173.1,50003,192.0.2.9,443,1000,Android,android,TLS,Unreachable,,0,0,1,0,"
        "2026-11-27T06:40:44.000+01:00,2026-11-27T06:40:44.000+01:00",
        "6,10.215.173.1,50004,192.0.2.10,80,10456,Weather Today,com.example.weather,HTTP,"
        "Closed,api.weather.example,120,900,2,2,not-a-time,2026-11-27T06:40:44.000+01:00",
    ]
    return head + "\n" + "\n".join(rows) + "\n"


def trackercontrol_csv() -> str:
    rows = [
        ["uid", "daddr", "time", "uncertain", "Tracker", "Category", "Package", "App"],
        ["10123", "graph.facebook.com", "1795765243000", "0", "Facebook", "Advertisement",
         "com.instagram.android", "Instagram"],
        ["10456", "app-measurement.com", "1795765250000", "0", "Google Analytics",
         "Analytics", "com.example.weather", "Weather Today"],
        ["10456", "api.weather.example", "1795765251000", "0", "", "", "com.example.weather",
         "Weather Today"],
        ["10789", "tracker.example", "yesterday", "0", "", "", "org.example.notes", "Notes"],
    ]  # fmt: skip
    return "".join(",".join(f'"{v}"' for v in r) + "\r\n" for r in rows)


def trackercontrol_app_csv() -> str:
    rows = [
        ["daddr", "time", "uncertain", "Tracker Name", "Tracker Category"],
        ["app-measurement.com", "1795765250000", "0", "Google Analytics", "Analytics"],
        ["graph.facebook.com", "1795765255000", "0", "Facebook", "Advertisement"],
    ]
    return "".join(",".join(f'"{v}"' for v in r) + "\r\n" for r in rows)


def httptoolkit_har() -> str:
    body = json.dumps({"event": "open", "email": EMAIL}).encode() + b"\xff\x00"
    entries = [
        {
            "pageref": "Instagram 312.0 (Android)",
            "startedDateTime": "2026-11-27T05:40:41.000Z",
            "time": 20,
            "request": {
                "method": "POST",
                "url": "https://graph.facebook.com/v19.0/activities?application_package_name="
                "com.instagram.android",
                "httpVersion": "HTTP/1.1",
                "headers": [{"name": "User-Agent", "value": "okhttp/4.12.0"}],
                "queryString": [],
                "cookies": [],
                "headersSize": -1,
                "bodySize": len(body),
                "_requestBodyStatus": "discarded:not-representable",
                "_content": {
                    "text": base64.b64encode(body).decode(),
                    "size": len(body),
                    "encoding": "base64",
                },  # fmt: skip
            },
            "response": {
                "status": 200,
                "statusText": "OK",
                "httpVersion": "HTTP/1.1",
                "headers": [],
                "cookies": [],
                "content": {"size": 2, "mimeType": "application/json", "text": "{}"},
                "redirectURL": "",
                "headersSize": -1,
                "bodySize": 2,
            },  # fmt: skip
            "cache": {},
            "timings": {"send": 1, "wait": 18, "receive": 1},
        },
        {
            "pageref": "Chrome 131.0.0.0 (Android 14)",
            "startedDateTime": "2026-11-27T05:40:42.000Z",
            "time": 10,
            "request": {
                "method": "GET",
                "url": "https://www.google-analytics.com/g/collect?v=2&tid=G-TEST&en=page_view",
                "httpVersion": "HTTP/2",
                "headers": [
                    {
                        "name": "User-Agent",
                        "value": "Mozilla/5.0 (Linux; Android 14)"
                        " AppleWebKit/537.36 Chrome/131.0.0.0 Mobile Safari/537.36",
                    }
                ],
                "queryString": [],
                "cookies": [],
                "headersSize": -1,
                "bodySize": 0,
            },  # fmt: skip
            "response": {
                "status": 204,
                "statusText": "No Content",
                "httpVersion": "HTTP/2",
                "headers": [],
                "cookies": [],
                "content": {"size": 0, "mimeType": ""},
                "redirectURL": "",
                "headersSize": -1,
                "bodySize": 0,
            },  # fmt: skip
            "cache": {},
            "timings": {"send": 1, "wait": 8, "receive": 1},
            "_pinned": True,
        },
    ]
    har = {
        "log": {
            "version": "1.2",
            "creator": {"name": "HTTP Toolkit", "version": "1.19.0"},
            "pages": [
                {
                    "id": e["pageref"],
                    "title": e["pageref"],
                    "pageTimings": {},
                    "startedDateTime": e["startedDateTime"],
                }
                for e in entries
            ],  # fmt: skip
            "entries": entries,
            "_tlsErrors": [
                {
                    "startedDateTime": "2026-11-27T05:40:43.000Z",
                    "time": 5,
                    "hostname": "i.instagram.com",
                    "cause": "cert-rejected",
                    "clientIPAddress": "10.215.173.1",
                    "clientPort": 50010,
                },
                {"time": 5, "cause": "closed"},
            ],  # fmt: skip
        }
    }
    return json.dumps(har, indent=1) + "\n"


def main() -> None:
    (DATA / "pcapdroid-trailer.pcap").write_bytes(pcap_with_trailer())
    (DATA / "pcapdroid.pcapng").write_bytes(pcapng_with_blocks())
    (DATA / "pcapdroid-connections.csv").write_text(pcapdroid_csv(), newline="")
    (DATA / "trackercontrol_log_20261127.csv").write_text(trackercontrol_csv(), newline="")
    (DATA / "com.example.weather_20261127.csv").write_text(trackercontrol_app_csv(), newline="")
    (DATA / "httptoolkit.har").write_text(httptoolkit_har())


if __name__ == "__main__":
    main()
