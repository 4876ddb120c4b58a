"""Android tools that know which app opened each connection: PCAPdroid and TrackerControl CSVs.

PCAPdroid's connections export (Connections → ⋮ → Export CSV; the columns are its string
``connections_csv_fields``)::

    IPProto,SrcIP,SrcPort,DstIp,DstPort,UID,App,PackageName,Proto,Status,Info,
    BytesSent,BytesRcvd,PktsSent,PktsRcvd,FirstSeen,LastSeen[,Malicious]

``IPProto`` is the IP protocol number, ``Info`` the host name PCAPdroid saw (DNS query, TLS
SNI or HTTP Host), times ISO-8601 with milliseconds and an offset (before version 1.7.0,
epoch milliseconds: both are read, see ``_pcapdroid_time``). Fields are not quoted, so an ``Info``
with commas spans several fields: the columns after it are counted from the end.

TrackerControl's log export (⋮ → Export as CSV; opencsv, every field quoted) has one row per
app and host it contacted, with the last time: ``uid, daddr, time (epoch ms), uncertain,
Tracker, Category, Package, App``. Its per-app export (an app's details → Export) has no
app columns (``daddr, time, uncertain, Tracker Name, Tracker Category``); the file is named
``<package>_<yyyyMMdd>.csv``, and the app is taken from that name.

Both record contacts, never payloads: rows are ``tunnel``/``dns`` (PCAPdroid) or
``contact`` (TrackerControl) rows with ``is_decrypted = 0`` and the app as reported.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterator
from datetime import datetime
from typing import IO

from gazeback.imports.base import Entry, Item, Problem, Reader, Rejected, Source, dns_snapshot
from gazeback.models import DeviceKey, FlowSnapshot

PCAPDROID_HEADER = (
    "IPProto,SrcIP,SrcPort,DstIp,DstPort,UID,App,PackageName,Proto,Status,Info,"
    "BytesSent,BytesRcvd,PktsSent,PktsRcvd,FirstSeen,LastSeen"
)
PCAPDROID_COLUMNS = PCAPDROID_HEADER.split(",")
TRACKERCONTROL_ALL = ("uid", "daddr", "time", "uncertain", "Tracker", "Category", "Package", "App")
TRACKERCONTROL_APP = ("daddr", "time", "uncertain", "Tracker Name", "Tracker Category")
IP_PROTOCOLS = {"6": "tcp", "17": "udp", "1": "icmp", "58": "icmp"}
_TC_FILE = re.compile(r"^([A-Za-z][\w]*(?:\.[\w]+)+)_\d{8}\.csv$")


def _android(src: Source, tool: str) -> DeviceKey:
    """One phone per file unless --device says otherwise (the file does not name it)."""
    return src.device or DeviceKey(
        f"file:{src.content_hash[:12]}", f"Android phone ({tool}, {src.name})", "phone"
    )


def _header(fp: IO[bytes], what: str) -> tuple[Iterator[tuple[int, str]], str]:
    """The first line (without a BOM) and the numbered lines after it, as text."""
    first = fp.readline(1 << 16).removeprefix(b"\xef\xbb\xbf")
    try:
        header = first.decode("utf-8").rstrip("\r\n")
    except UnicodeDecodeError as e:
        raise Rejected(f"not a {what}: its first line is not UTF-8 text") from e
    return _lines(fp), header


def _lines(fp: IO[bytes]) -> Iterator[tuple[int, str]]:
    for n, raw in enumerate(fp, 2):
        yield n, raw.decode("utf-8", errors="replace").rstrip("\r\n")


def _pcapdroid_time(text: str) -> float:
    """A PCAPdroid CSV time as seconds since the epoch.

    PCAPdroid 1.7.0 and later (December 2023) write ISO 8601 with milliseconds and an offset
    (``2026-12-01T10:00:00.123+01:00``; ``+0100`` before Android 7); earlier versions wrote
    the epoch number (milliseconds; seconds are read too, told apart by size)."""
    t = text.strip()
    if t.isdigit():
        n = int(t)
        return n / 1000 if n >= 100_000_000_000 else float(n)  # ms after 1973-03
    return datetime.fromisoformat(t).timestamp()


def read_pcapdroid_csv(fp: IO[bytes], src: Source) -> Iterator[Item]:
    """PCAPdroid's connections CSV: one row per connection, with the app's package name."""
    text, header = _header(fp, "PCAPdroid connections CSV")
    if not header.startswith(PCAPDROID_HEADER):
        raise Rejected(
            "not a PCAPdroid connections CSV: the first line is not its header "
            f"({PCAPDROID_HEADER[:40]}…)"
        )
    width = len(header.split(","))
    device = _android(src, "PCAPdroid")
    for n, line in text:
        if not line:
            continue
        pos = f"line {n}"
        fields = line.split(",")
        if len(fields) < width:
            yield Problem(pos, f"{len(fields)} fields where the header has {width}; skipped")
            continue
        extra = len(fields) - width  # commas inside Info
        fields = [*fields[:10], ",".join(fields[10 : 11 + extra]), *fields[11 + extra :]]
        row = dict(zip(header.split(","), fields, strict=True))
        try:
            started, ended = _pcapdroid_time(row["FirstSeen"]), _pcapdroid_time(row["LastSeen"])
            sent, received = int(row["BytesSent"]), int(row["BytesRcvd"])
            port = int(row["DstPort"])
        except ValueError as e:
            yield Problem(
                pos, f"unreadable time (FirstSeen, LastSeen), port or byte count ({e}); skipped"
            )
            continue
        app = row["PackageName"] or row["App"] or (f"uid {row['UID']}" if row["UID"] else None)
        host = row["Info"].strip() or row["DstIp"]
        l7 = row["Proto"].strip().upper()
        flow_id = src.flow_id("pcapdroid", n)
        error = "unreachable" if row["Status"].strip().lower() == "unreachable" else None
        if l7 == "DNS" or port == 53:
            snap = dns_snapshot(
                flow_id, started, device, host, "query", server_ip=row["DstIp"],
                request_bytes=sent, response_bytes=received,
                duration_ms=(ended - started) * 1000, error=error,
            )  # fmt: skip
        else:
            proto = IP_PROTOCOLS.get(row["IPProto"].strip(), "tcp")
            scheme = {"TLS": "tls", "HTTPS": "tls", "QUIC": "quic", "HTTP": "http"}.get(l7, proto)
            snap = FlowSnapshot(
                flow_id=flow_id,
                kind="tunnel",
                started_at=started,
                device=device,
                scheme=scheme,
                host=host,
                port=port,
                request_bytes=sent,
                response_bytes=received,
                duration_ms=(ended - started) * 1000,
                is_decrypted=False,
                tls_sni=host if scheme in ("tls", "quic") and row["Info"].strip() else None,
                server_ip=row["DstIp"],
                error=error,
            )
        yield Entry(snap, pos, app=app)


def read_trackercontrol_csv(fp: IO[bytes], src: Source) -> Iterator[Item]:
    """TrackerControl's CSV log: one row per app and host contacted, with the app's package."""
    text, header = _header(fp, "TrackerControl CSV export")
    columns = tuple(next(csv.reader([header])) if header else ())
    file_app = None
    if columns[: len(TRACKERCONTROL_ALL)] == TRACKERCONTROL_ALL:
        pass
    elif columns[: len(TRACKERCONTROL_APP)] == TRACKERCONTROL_APP:
        m = _TC_FILE.match(src.name)
        file_app = m.group(1) if m else None
    else:
        raise Rejected(
            "not a TrackerControl CSV export: its header is neither "
            f"{','.join(TRACKERCONTROL_ALL)} nor {','.join(TRACKERCONTROL_APP)}"
        )
    device = _android(src, "TrackerControl")
    for n, line in text:
        if not line:
            continue
        pos = f"line {n}"
        try:
            fields = next(csv.reader([line]))
        except csv.Error as e:
            yield Problem(pos, f"not valid CSV ({e}); skipped")
            continue
        if len(fields) != len(columns):
            yield Problem(pos, f"{len(fields)} fields where the header has {len(columns)}; skipped")
            continue
        row = dict(zip(columns, fields, strict=True))
        try:
            at = int(row["time"]) / 1000
        except ValueError:
            yield Problem(pos, f"time {row['time']!r} is not milliseconds since 1970; skipped")
            continue
        host = row["daddr"].strip()
        if not host:
            yield Problem(pos, "no host (daddr); skipped")
            continue
        app = row.get("Package") or row.get("App") or file_app
        if not app and row.get("uid"):
            app = f"uid {row['uid']}"
        snap = FlowSnapshot(
            flow_id=src.flow_id("trackercontrol", n),
            kind="contact",
            started_at=at,
            device=device,
            host=host,
            is_decrypted=False,
        )
        yield Entry(snap, pos, app=app or None)


READERS: dict[str, Reader] = {
    "pcapdroid-csv": read_pcapdroid_csv,
    "trackercontrol-csv": read_trackercontrol_csv,
}
