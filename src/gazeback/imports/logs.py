"""Other privacy tools' logs: Apple App Privacy Report, Pi-hole's FTL database, AdGuard Home.

These logs name a host and a time, never a payload: rows are ``dns`` queries (Pi-hole,
AdGuard Home) or ``contact`` rows (App Privacy Report), all with ``is_decrypted = 0``.
Row ids come from the row's own content, so overlapping exports of the same log (the
App Privacy Report covers 7 days, a Pi-hole keeps months) add each row once.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
import sqlite3
from collections.abc import Iterator
from datetime import datetime
from typing import IO, Any

from gazeback.imports.base import (
    Entry,
    Item,
    Problem,
    Reader,
    Rejected,
    Source,
    device_for,
    dns_snapshot,
)
from gazeback.models import DeviceKey, FlowSnapshot

# FTL's query types and the statuses that mean "blocked" (docs.pi-hole.net, FTL database)
PIHOLE_TYPES = {1: "A", 2: "AAAA", 3: "ANY", 4: "SRV", 5: "SOA", 6: "PTR", 7: "TXT",
                8: "NAPTR", 9: "MX", 10: "DS", 11: "RRSIG", 12: "DNSKEY", 13: "NS",
                14: "OTHER", 15: "SVCB", 16: "HTTPS"}  # fmt: skip
PIHOLE_BLOCKED = {1: "gravity", 4: "regex", 5: "exact denylist", 6: "upstream (IP)",
                  7: "upstream (0.0.0.0)", 8: "upstream (NXDOMAIN)", 9: "gravity (CNAME)",
                  10: "regex (CNAME)", 11: "denylist (CNAME)", 15: "database busy",
                  16: "special domain", 18: "upstream (EDE 15)"}  # fmt: skip
_FRACTION = re.compile(r"(\.\d{6})\d+")


def _ts(text: str) -> float:
    """ISO-8601 with any number of fraction digits (AdGuard writes nanoseconds)."""
    return datetime.fromisoformat(_FRACTION.sub(r"\1", text.replace("Z", "+00:00"))).timestamp()


class _RowIds:
    """Content-derived ids: the n-th identical row of a file gets the same id every time."""

    def __init__(self, fmt: str) -> None:
        self.fmt = fmt
        self.seen: dict[str, int] = {}

    def __call__(self, *parts: Any) -> str:
        digest = hashlib.sha256(json.dumps(parts, default=str).encode()).hexdigest()[:20]
        k = self.seen.get(digest, 0)
        self.seen[digest] = k + 1
        return f"{self.fmt}:{digest}" + (f"#{k}" if k else "")


def _json_lines(fp: IO[bytes], what: str) -> Iterator[tuple[int, dict[str, Any] | None]]:
    """(line number, object or None when the line is not a JSON object)."""
    first = True
    for n, raw in enumerate(fp, 1):
        if not raw.strip():
            continue
        try:
            obj = json.loads(raw)
        except (ValueError, RecursionError):  # RecursionError: nested too deep to be a record
            obj = None
        if first and not isinstance(obj, dict):
            raise Rejected(f"not {what}: line {n} is not a JSON object")
        first = False
        yield n, obj if isinstance(obj, dict) else None


def read_app_privacy_report(fp: IO[bytes], src: Source) -> Iterator[Item]:
    """Apple's App Privacy Report (iOS Settings → Privacy → Record App Activity → Save), NDJSON.

    ``networkActivity`` lines become contacts with the app's bundle ID; ``access`` lines
    (camera, location ...) are not network traffic and are skipped.
    """
    # one iPhone unless --device says otherwise, so weekly exports land on one device
    device = src.device or DeviceKey("app-privacy-report", "iPhone (App Privacy Report)", "phone")
    ids = _RowIds("app-privacy-report")
    seen_type = False
    for n, obj in _json_lines(fp, "an App Privacy Report"):
        if obj is None:
            yield Problem(f"line {n}", "not a JSON object; skipped")
            continue
        kind = obj.get("type")
        seen_type |= kind in ("networkActivity", "access")
        if not seen_type:
            raise Rejected(f"not an App Privacy Report: line {n} has no type networkActivity")
        if kind != "networkActivity":
            continue
        try:
            domain, at = str(obj["domain"]), _ts(obj.get("timeStamp") or obj["firstTimeStamp"])
        except (KeyError, ValueError, TypeError) as e:
            yield Problem(f"line {n}", f"networkActivity without a usable {e}; skipped")
            continue
        app = obj.get("bundleID") or None
        snap = FlowSnapshot(
            flow_id=ids(domain, at, app, obj.get("context"), obj.get("hits")),
            kind="contact",
            started_at=at,
            device=device,
            host=domain,
            is_decrypted=False,
        )
        yield Entry(snap, f"line {n}", app=app)


def read_adguardhome(fp: IO[bytes], src: Source) -> Iterator[Item]:
    """AdGuard Home's ``querylog.json`` (one JSON object per line: IP, T, QH, QT, Result ...)."""
    ids = _RowIds("adguardhome")
    for n, obj in _json_lines(fp, "an AdGuard Home query log"):
        if obj is None:
            yield Problem(f"line {n}", "not a JSON object; skipped")
            continue
        if n == 1 and "QH" not in obj:
            raise Rejected("not an AdGuard Home query log: line 1 has no QH (query host)")
        try:
            host, at, client = str(obj["QH"]), _ts(obj["T"]), str(obj["IP"])
        except (KeyError, ValueError, TypeError) as e:
            yield Problem(f"line {n}", f"query without a usable {e}; skipped")
            continue
        answer = 0
        if obj.get("Answer"):
            try:
                answer = len(base64.b64decode(obj["Answer"], validate=True))
            except (binascii.Error, ValueError):
                yield Problem(f"line {n}", "Answer is not valid base64; size left out")
        result = obj.get("Result") or {}
        elapsed = obj.get("Elapsed")
        snap = dns_snapshot(
            ids(client, obj["T"], host, obj.get("QT")),
            at,
            src.device or device_for(client),
            host,
            str(obj.get("QT") or "A"),
            response_bytes=answer,
            duration_ms=elapsed / 1e6 if isinstance(elapsed, int | float) else None,
            error="blocked by AdGuard Home" if result.get("IsFiltered") else None,
        )
        yield Entry(snap, f"line {n}")


PIHOLE_NEEDS = {"id", "timestamp", "type", "status", "domain", "client"}


def read_pihole(fp: IO[bytes], src: Source) -> Iterator[Item]:
    """Pi-hole's long-term database ``/etc/pihole/pihole-FTL.db``, table (or view) ``queries``.

    Opened read-only and immutable, so a copy or the live file is never changed.
    """
    if src.path is None:
        raise Rejected("a Pi-hole database must be imported from a file")
    if not fp.read(16).startswith(b"SQLite format 3"):
        raise Rejected("not a Pi-hole FTL database: not an SQLite file")
    try:
        conn = sqlite3.connect(f"{src.path.resolve().as_uri()}?mode=ro&immutable=1", uri=True)
        cols = {r[1] for r in conn.execute("pragma table_info(queries)")}
    except sqlite3.Error as e:
        raise Rejected(f"not a Pi-hole FTL database: {e}") from e
    if not PIHOLE_NEEDS <= cols:
        conn.close()
        raise Rejected("not a Pi-hole FTL database: it has no queries table with " +
                       ", ".join(sorted(PIHOLE_NEEDS)))  # fmt: skip
    extra = ", reply_time" if "reply_time" in cols else ", null"
    extra += ", forward" if "forward" in cols else ", null"
    sql = f"select id, timestamp, type, status, domain, client{extra} from queries order by id"
    try:
        for qid, at, qtype, status, domain, client, reply, forward in conn.execute(sql):
            if not domain or not isinstance(at, int | float):
                yield Problem(f"query id {qid}", "no domain or no timestamp; skipped")
                continue
            blocked = PIHOLE_BLOCKED.get(status)
            snap = dns_snapshot(
                f"pihole:{qid}:{int(at)}",
                float(at),
                src.device or device_for(str(client)),
                str(domain),
                PIHOLE_TYPES.get(qtype, f"TYPE{qtype}"),
                server_ip=str(forward).split("#", 1)[0] if forward else None,
                duration_ms=reply * 1000 if isinstance(reply, int | float) else None,
                error=f"blocked by Pi-hole ({blocked})" if blocked else None,
            )
            yield Entry(snap, f"query id {qid}")
    except sqlite3.DatabaseError as e:
        yield Problem("queries", f"the database is damaged, the rest is skipped ({e})")
    finally:
        conn.close()


READERS: dict[str, Reader] = {
    "app-privacy-report": read_app_privacy_report,
    "adguardhome": read_adguardhome,
    "pihole": read_pihole,
}
