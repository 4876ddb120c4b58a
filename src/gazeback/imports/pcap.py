"""pcap and pcapng captures: DNS, TLS SNI, cleartext HTTP/1, and every connection with its bytes.

Packets are decoded with dpkt (about 13x faster than scapy here, see
docs/benchmarks.md); TLS and QUIC ClientHellos with mitmproxy's own parsers. The
file is streamed packet by packet: a connection is written out when it closes (FIN/RST)
or has been idle for ``IDLE_S`` of capture time, and buffers hold only the first
``MAX_BUFFER`` bytes of each direction, so memory stays bounded on any file size.

    pcap record:  ts_sec u32 | ts_frac u32 | incl_len u32 | orig_len u32 | packet bytes

PCAPdroid (Android, no root) can add which app sent each packet ("PCAPdroid extensions";
format from its pcap_dump.h and tools/pcapdroid.lua):

- pcap: each IP packet gets a zeroed Ethernet header and, after padding, a 32-byte trailer:
  magic 0x01072021 | uid i32 | app name char[20] (NUL-padded) | FCS u32 (big-endian);
- pcapng: a Custom Block (type 0x00000BAD, PEN 62652; version u16, type u8 = 1, pad u8,
  uid i32, package-name length u8, app-name length u8, package name, app name) maps each
  UID once; each Enhanced Packet Block has the comment option ``u-<uid>``.

The connection gets the app of its first packet that names one (pcapng: the package name).
"""

from __future__ import annotations

import socket
import struct
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import IO, Any

import dpkt

from gazeback.imports.base import (
    PCAP_MAGICS,
    PCAPNG_MAGIC,
    QTYPES,
    RCODES,
    Entry,
    Item,
    Problem,
    Rejected,
    Source,
    device_for,
    dns_snapshot,
)
from gazeback.models import FlowSnapshot

MAX_BUFFER = 64 * 1024  # first bytes kept per direction for SNI and HTTP parsing
IDLE_S = 300.0  # a connection silent this long (capture time) is written out
SWEEP_EVERY = 20_000  # packets between idle sweeps
MAX_OPEN = 50_000  # open connections kept at most; the oldest are written out first
MAX_PACKET = 1 << 20
PCAPDROID_MAGIC = b"\x01\x07\x20\x21"
PCAPDROID_TRAILER = 32
PCAPDROID_PEN = 62652
HTTP_METHODS = (b"GET ", b"POST ", b"PUT ", b"HEAD ", b"DELETE ", b"OPTIONS ", b"PATCH ",
                b"CONNECT ")  # fmt: skip

# link types (tcpdump.org/linktypes.html) → how to reach the IP layer
LINKTYPES = {0: "null", 1: "ethernet", 12: "raw", 14: "raw", 101: "raw", 108: "null",
             113: "sll", 228: "raw", 229: "raw", 276: "sll2"}  # fmt: skip


def _mac(b: bytes) -> str:
    return ":".join(f"{x:02x}" for x in b[:6])


def _ip(b: bytes) -> str:
    return socket.inet_ntop(socket.AF_INET if len(b) == 4 else socket.AF_INET6, b)


# --- framing ------------------------------------------------------------------------------


Packets = Iterator[tuple[int, float, bytes] | Problem]


def _pcap_packets(fp: IO[bytes]) -> tuple[str, Packets]:
    hdr = fp.read(24)
    if len(hdr) < 24:
        raise Rejected("not a pcap file: its 24-byte header is cut short")
    magic = hdr[:4]
    endian = "<" if magic in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1") else ">"
    divisor = 1e9 if magic in (b"\xa1\xb2\x3c\x4d", b"\x4d\x3c\xb2\xa1") else 1e6
    linktype = _link(struct.unpack(endian + "I", hdr[20:24])[0] & 0x0FFFFFFF)
    return linktype, _pcap_records(fp, struct.Struct(endian + "IIII"), divisor)


def _pcap_records(fp: IO[bytes], rec: struct.Struct, divisor: float) -> Packets:
    n = 0
    while True:
        head = fp.read(16)
        if not head:
            return
        n += 1
        if len(head) < 16:
            yield Problem(f"packet {n}", "the file ends inside a packet header (truncated)")
            return
        sec, frac, incl, _ = rec.unpack(head)
        if incl > MAX_PACKET:
            yield Problem(f"packet {n}", f"impossible packet length {incl}: the rest is corrupt")
            return
        buf = fp.read(incl)
        if len(buf) < incl:
            yield Problem(f"packet {n}", "the file ends inside this packet (truncated)")
            return
        yield n, sec + frac / divisor, buf


def _pcapng_packets(fp: IO[bytes]) -> tuple[str, Packets]:
    try:
        reader = dpkt.pcapng.Reader(fp)
    except (ValueError, dpkt.UnpackError, struct.error) as e:
        raise Rejected(f"not a pcapng file: {e}") from e
    return _link(reader.datalink()), _pcapng_blocks(iter(reader))


def _pcapng_blocks(packets: Iterator[tuple[float, bytes]]) -> Packets:
    n = 0
    while True:
        try:
            ts, buf = next(packets)
        except StopIteration:
            return
        except (dpkt.UnpackError, struct.error, ValueError) as e:
            yield Problem(f"packet {n + 1}", f"unreadable block, the rest is skipped ({e})")
            return
        n += 1
        yield n, ts, buf


def _link(linktype: int) -> str:
    if linktype not in LINKTYPES:
        raise Rejected(f"link type {linktype} is not supported (Ethernet, Linux cooked, raw IP)")
    return LINKTYPES[linktype]


def _ip_layer(kind: str, buf: bytes) -> tuple[Any, str | None]:
    """(IP or IP6 packet, source MAC) or (None, None) for what is not IP (ARP, ...)."""
    if kind == "ethernet":
        eth = dpkt.ethernet.Ethernet(buf)
        return eth.data, _mac(eth.src)
    if kind == "sll":
        sll = dpkt.sll.SLL(buf)
        return sll.data, _mac(sll.hdr) if sll.hlen == 6 else None
    if kind == "sll2":
        sll2 = dpkt.sll2.SLL2(buf)
        return sll2.data, _mac(sll2.hdr) if sll2.hlen == 6 else None
    if kind == "null":
        return dpkt.loopback.Loopback(buf).data, None
    if buf[:1] and buf[0] >> 4 == 6:
        return dpkt.ip6.IP6(buf), None
    return dpkt.ip.IP(buf), None


# --- connections --------------------------------------------------------------------------


@dataclass
class Conn:
    n: int  # packet number of the first packet: the connection's stable id
    ts: float
    proto: str  # tcp, udp
    client: tuple[str, int]
    server: tuple[str, int]
    mac: str | None
    last: float = 0.0
    up: int = 0
    down: int = 0
    up_buf: bytearray = field(default_factory=bytearray)
    down_buf: bytearray = field(default_factory=bytearray)
    next_up: int | None = None
    next_down: int | None = None
    datagrams: list[bytes] = field(default_factory=list)
    sni: str | None = None
    tls: bool = False
    closing: int = 0  # FINs seen
    app: str | None = None  # the app PCAPdroid named for it


class PcapReader:
    """Turns packets into entries; one instance per file."""

    def __init__(self, src: Source, link: str) -> None:
        self.src, self.link = src, link
        self.conns: dict[tuple[str, int, str, int, str], Conn] = {}
        self.names: dict[str, str] = {}  # server IP → name a DNS answer gave it
        self.queries: dict[tuple[str, int, int], tuple[Any, ...]] = {}
        self.apps: list[str | None] = []  # pcapng from PCAPdroid: the app of packet n (1-based)
        self.app: str | None = None  # the app of the packet being read

    def device(self, ip: str, mac: str | None) -> Any:
        return self.src.device or device_for(ip, mac)

    def packet(self, n: int, ts: float, buf: bytes) -> Iterator[Item]:
        self.app = self.apps[n - 1] if n <= len(self.apps) else None
        if (
            self.link == "ethernet"
            and len(buf) >= 14 + PCAPDROID_TRAILER
            and buf[-PCAPDROID_TRAILER : -PCAPDROID_TRAILER + 4] == PCAPDROID_MAGIC
        ):
            name = buf[-24:-4].split(b"\0", 1)[0].decode("utf-8", "replace").strip()
            self.app = name or f"uid {int.from_bytes(buf[-28:-24], 'big', signed=True)}"
        try:
            ip, mac = _ip_layer(self.link, buf)
        except (dpkt.UnpackError, struct.error, IndexError):
            yield Problem(f"packet {n}", "not a readable IP packet; skipped")
            return
        l4 = getattr(ip, "data", None)
        if not isinstance(ip, dpkt.ip.IP | dpkt.ip6.IP6) or isinstance(l4, bytes | None):
            return  # ARP, ICMP, fragments: not a contact we record
        src, dst = _ip(ip.src), _ip(ip.dst)
        if isinstance(l4, dpkt.udp.UDP) and 53 in (l4.sport, l4.dport):
            yield from self.dns(n, ts, src, l4.sport, dst, l4.dport, mac, bytes(l4.data))
        elif isinstance(l4, dpkt.tcp.TCP | dpkt.udp.UDP):
            yield from self.segment(n, ts, src, dst, mac, l4)

    def segment(
        self, n: int, ts: float, src: str, dst: str, mac: str | None, l4: Any
    ) -> Iterator[Item]:
        tcp = isinstance(l4, dpkt.tcp.TCP)
        proto = "tcp" if tcp else "udp"
        sp, dp, data = l4.sport, l4.dport, l4.data
        conn = self.conns.get((src, sp, dst, dp, proto))
        from_client = True
        if conn is None:
            conn = self.conns.get((dst, dp, src, sp, proto))
            from_client = False
        if conn is None:
            if tcp and not data and not l4.flags & dpkt.tcp.TH_SYN:
                return  # the last ACK of a closed connection, or a lone RST
            # the client: who sent the SYN; without one, the side with the higher port
            syn, ack = tcp and l4.flags & dpkt.tcp.TH_SYN, tcp and l4.flags & dpkt.tcp.TH_ACK
            from_client = bool(syn and not ack) or (not (syn and ack) and sp >= dp)
            c, s = ((src, sp), (dst, dp)) if from_client else ((dst, dp), (src, sp))
            conn = Conn(n, ts, proto, c, s, mac if from_client else None, app=self.app)
            self.conns[(*c, *s, proto)] = conn
            if len(self.conns) > MAX_OPEN:
                yield from self.close(next(iter(self.conns.values())))
        conn.last = ts
        conn.app = conn.app or self.app
        if from_client and conn.mac is None:
            conn.mac = mac
        if data:
            if from_client:
                conn.up += len(data)
                if tcp:
                    conn.next_up = _append(conn.up_buf, conn.next_up, l4.seq, data)
                elif len(conn.datagrams) < 3:
                    conn.datagrams.append(bytes(data))
            else:
                conn.down += len(data)
                if tcp:
                    conn.next_down = _append(conn.down_buf, conn.next_down, l4.seq, data)
        if tcp and l4.flags & (dpkt.tcp.TH_FIN | dpkt.tcp.TH_RST):
            conn.closing += 2 if l4.flags & dpkt.tcp.TH_RST else 1
            if conn.closing >= 2:
                yield from self.close(conn)
        if n % SWEEP_EVERY == 0:
            for old in [c for c in self.conns.values() if ts - c.last > IDLE_S]:
                yield from self.close(old)

    def close(self, conn: Conn) -> Iterator[Item]:
        self.conns.pop((*conn.client, *conn.server, conn.proto), None)
        device = self.device(conn.client[0], conn.mac)
        up = bytes(conn.up_buf)
        if up.startswith(HTTP_METHODS):
            yield from self.http(conn, device, up)
            return
        _sni(conn, up)
        server_ip, port = conn.server
        name = conn.sni or self.names.get(server_ip) or server_ip
        scheme = ("quic" if conn.proto == "udp" else "tls") if conn.tls else conn.proto
        yield Entry(
            FlowSnapshot(
                flow_id=self.src.flow_id("pcap", conn.n),
                kind="tunnel",
                started_at=conn.ts,
                device=device,
                scheme=scheme,
                host=name,
                port=port,
                request_bytes=conn.up,
                response_bytes=conn.down,
                duration_ms=(conn.last - conn.ts) * 1000,
                is_decrypted=False,
                tls_sni=conn.sni,
                server_ip=server_ip,
                error=None if conn.up or conn.down else "no payload: refused or never completed",
            ),
            f"packet {conn.n}",
            app=conn.app,
        )

    def http(self, conn: Conn, device: Any, up: bytes) -> Iterator[Item]:
        """Cleartext HTTP/1: one entry per request on the connection, paired with responses."""
        responses = _responses(bytes(conn.down_buf))
        server_ip, port = conn.server
        i = 0
        while up:
            try:
                req = dpkt.http.Request(up)
            except (dpkt.NeedData, dpkt.UnpackError, ValueError) as e:
                if i == 0 or len(up) < MAX_BUFFER:
                    yield Problem(f"packet {conn.n}", f"HTTP request {i} unreadable ({e})")
                break
            headers = tuple(
                (k.encode("latin-1"), v.encode("latin-1"))
                for k, vs in req.headers.items()
                for v in (vs if isinstance(vs, list) else [vs])
            )
            host = str(req.headers.get("host", "")).rsplit(":", 1)[0]
            status, size = responses[i] if i < len(responses) else (None, 0)
            yield Entry(
                FlowSnapshot(
                    flow_id=self.src.flow_id("pcap", conn.n if i == 0 else f"{conn.n}.{i}"),
                    kind="http",
                    started_at=conn.ts,
                    device=device,
                    method=req.method,
                    scheme="http",
                    host=host or self.names.get(server_ip) or server_ip,
                    port=port,
                    path=req.uri,
                    http_version=f"HTTP/{req.version}",
                    request_headers=headers,
                    request_body=bytes(req.body) or None,
                    status_code=status,
                    request_bytes=len(req.body),
                    response_bytes=size,
                    is_decrypted=True,
                    server_ip=server_ip,
                ),
                f"packet {conn.n}",
                app=conn.app,
            )
            up, i = bytes(req.data), i + 1

    def dns(
        self, n: int, ts: float, src: str, sp: int, dst: str, dp: int, mac: str | None, data: bytes
    ) -> Iterator[Item]:
        try:
            msg = dpkt.dns.DNS(data)
        except (dpkt.UnpackError, struct.error, IndexError) as e:
            yield Problem(f"packet {n}", f"malformed DNS message ({type(e).__name__}); skipped")
            return
        types = [q.type for q in msg.qd] if msg.qr == dpkt.dns.DNS_Q else [r.type for r in msg.an]
        for t in dict.fromkeys(types):
            if t not in QTYPES:
                yield Problem(f"packet {n}", f"unknown DNS record type {t}; stored as TYPE{t}")
        q = msg.qd[0] if msg.qd else None
        if msg.qr == dpkt.dns.DNS_Q:
            self.queries[(src, sp, msg.id)] = (n, ts, q, len(data), dst, mac, self.app)
            return
        asked = self.queries.pop((dst, dp, msg.id), None)
        for rr in msg.an:
            if rr.type in (dpkt.dns.DNS_A, dpkt.dns.DNS_AAAA) and len(rr.rdata) in (4, 16):
                self.names[_ip(rr.rdata)] = q.name if q is not None else rr.name
        if asked is None:  # the answer to a query sent before the capture started
            asked = (n, ts, q, 0, src, None, self.app)
        qn, qts, qq, qlen, server, qmac, app = asked
        yield self._dns_entry(qn, qts, qq, dst, qmac, server, qlen, len(data),
                              (ts - qts) * 1000, RCODES.get(msg.rcode), app)  # fmt: skip

    def _dns_entry(self, n: int, ts: float, q: Any, client: str, mac: str | None, server: str,
                   qlen: int, rlen: int, ms: float | None, error: str | None,
                   app: str | None = None) -> Entry:  # fmt: skip
        snap = dns_snapshot(
            self.src.flow_id("pcap", n), ts, self.device(client, mac),
            q.name if q is not None else "(no question)", q.type if q is not None else 0, server_ip=server,
            request_bytes=qlen, response_bytes=rlen, duration_ms=ms, error=error,
        )  # fmt: skip
        return Entry(snap, f"packet {n}", app=app)

    def finish(self) -> Iterator[Item]:
        for conn in list(self.conns.values()):
            yield from self.close(conn)
        for (client, _, _), (n, ts, q, qlen, server, mac, app) in self.queries.items():
            yield self._dns_entry(n, ts, q, client, mac, server, qlen, 0, None, "no answer", app)
        self.queries.clear()


def _append(buf: bytearray, expected: int | None, seq: int, data: bytes) -> int | None:
    """Keep the first bytes of a stream in order: retransmissions skipped, gaps end it."""
    if expected is not None and seq != expected:
        return expected if seq < expected else None if len(buf) < MAX_BUFFER else expected
    if len(buf) < MAX_BUFFER:
        buf += data[: MAX_BUFFER - len(buf)]
    return (seq + len(data)) & 0xFFFFFFFF


def _sni(conn: Conn, up: bytes) -> None:
    from mitmproxy.proxy.layers.tls import parse_client_hello

    try:
        if conn.proto == "tcp" and up[:1] == b"\x16":
            hello = parse_client_hello(up)
        elif conn.proto == "udp" and conn.datagrams and conn.datagrams[0][:1] >= b"\xc0":
            from mitmproxy.proxy.layers.quic import quic_parse_client_hello_from_datagrams

            hello = quic_parse_client_hello_from_datagrams(conn.datagrams)
        else:
            return
    except Exception:
        return  # not TLS after all, or a hello we cannot read: the connection still counts
    if hello is not None:
        conn.tls = True
        conn.sni = hello.sni


def _responses(down: bytes) -> list[tuple[int | None, int]]:
    out: list[tuple[int | None, int]] = []
    while down.startswith(b"HTTP/"):
        try:
            resp = dpkt.http.Response(down)
        except (dpkt.NeedData, dpkt.UnpackError, ValueError):
            out.append((int(down[9:12]) if down[9:12].isdigit() else None, 0))
            break
        out.append((int(resp.status), len(resp.body)))
        down = bytes(resp.data)
    return out


def read_pcap(fp: IO[bytes], src: Source) -> Iterator[Item]:
    """pcap or pcapng (told apart by their magic numbers)."""
    magic = fp.read(4)
    fp.seek(0)
    if magic in PCAP_MAGICS:
        link, packets = _pcap_packets(fp)
    elif magic == PCAPNG_MAGIC:
        apps = _pcapdroid_apps(fp)
        fp.seek(0)
        link, packets = _pcapng_packets(fp)
    else:
        raise Rejected(f"not a pcap or pcapng file (it starts with {magic.hex() or 'nothing'})")
    reader = PcapReader(src, link)
    if magic == PCAPNG_MAGIC:
        reader.apps = apps
    for got in packets:
        if isinstance(got, Problem):
            yield got
            continue
        yield from reader.packet(*got)
    yield from reader.finish()


def _pcapdroid_apps(fp: IO[bytes]) -> list[str | None]:
    """pcapng: for each packet block in order, the app PCAPdroid's blocks name (else None).

    A quick walk over the blocks (dpkt's reader skips custom blocks and packet options);
    whatever it cannot read ends the walk, and the packet reader then says why. A file
    whose first packet has no ``u-<uid>`` comment is not PCAPdroid's: the walk stops there,
    so other pcapng files are not read twice.
    """
    names: dict[int, str] = {}  # uid → package name (or app name)
    uids: list[int | None] = []
    end = "<"
    while True:
        head = fp.read(8)
        if len(head) < 8:
            break
        if head[:4] == PCAPNG_MAGIC:
            bom = fp.read(4)
            end = "<" if bom == b"\x4d\x3c\x2b\x1a" else ">"
            body = bom
            length = struct.unpack(end + "I", head[4:])[0]
            if not 12 <= length <= MAX_PACKET * 2:
                break
            body += fp.read(length - 12)
        else:
            btype, length = struct.unpack(end + "II", head)
            if not 12 <= length <= MAX_PACKET * 2:
                break
            body = fp.read(length - 8)
            if len(body) < length - 8:
                break
            if btype == 6:
                uid = _epb_uid(body, end)
                if not uids and uid is None:
                    return []  # PCAPdroid comments every packet: this file is not one of its
                uids.append(uid)
            elif btype in (2, 3):  # obsolete Packet Block, Simple Packet Block
                uids.append(None)
            elif btype == 0xBAD:
                _uid_map(body, end, names)
    if not names:
        return []
    return [None if u is None else names.get(u, f"uid {u}") for u in uids]


def _epb_uid(body: bytes, end: str) -> int | None:
    """The UID in an Enhanced Packet Block's ``u-<uid>`` comment."""
    if len(body) < 20:
        return None
    caplen = struct.unpack(end + "I", body[12:16])[0]
    at = 20 + ((caplen + 3) & ~3)
    while at + 4 <= len(body) - 4:
        code, size = struct.unpack(end + "HH", body[at : at + 4])
        if code == 0:
            break
        value = body[at + 4 : at + 4 + size]
        if code == 1 and value.startswith(b"u-") and value[2:].lstrip(b"-").isdigit():
            return int(value[2:])
        at += 4 + ((size + 3) & ~3)
    return None


def _uid_map(body: bytes, end: str, names: dict[int, str]) -> None:
    """A PCAPdroid Custom Block: PEN, version, type 1 = UID → package name, app name."""
    if len(body) < 14 or struct.unpack(end + "I", body[:4])[0] != PCAPDROID_PEN:
        return
    if body[6] != 1:
        return
    uid = struct.unpack(end + "i", body[8:12])[0]
    plen, alen = body[12], body[13]
    package = body[14 : 14 + plen].decode("utf-8", "replace")
    app = body[14 + plen : 14 + plen + alen].decode("utf-8", "replace")
    if package or app:
        names[uid] = package or app
