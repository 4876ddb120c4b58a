"""What every reader shares: the items it yields, the file it reads, its errors, DNS rows.

Readers (``flows``, ``pcap``, ``logs``) and ``importers`` (which picks a reader and runs its
items through the pipeline) import these from here, so that neither imports the other.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from gazeback.models import DeviceKey, FlowSnapshot

# DNS query types by number (RFC 1035, 3596, 9460 ...); others are stored as TYPE<n>.
QTYPES = {
    1: "A", 2: "NS", 5: "CNAME", 6: "SOA", 12: "PTR", 13: "HINFO", 15: "MX", 16: "TXT",
    28: "AAAA", 33: "SRV", 35: "NAPTR", 41: "OPT", 43: "DS", 46: "RRSIG", 47: "NSEC",
    48: "DNSKEY", 50: "NSEC3", 52: "TLSA", 64: "SVCB", 65: "HTTPS", 99: "SPF", 255: "ANY",
    257: "CAA",
}  # fmt: skip
RCODES = {1: "FORMERR", 2: "SERVFAIL", 3: "NXDOMAIN", 4: "NOTIMP", 5: "REFUSED"}


class Rejected(ValueError):
    """The file is not what it claims to be; nothing of it is stored."""


@dataclass(frozen=True)
class Problem:
    """A defect a reader stepped over: where (``entry 3``, ``packet 41``) and why."""

    position: str
    reason: str
    last: bool = field(default=False, compare=False, repr=False)  # nothing after it is read


@dataclass(frozen=True)
class Entry:
    """One record a reader found, with where it came from."""

    snap: FlowSnapshot
    position: str
    app: str | None = None  # bundle ID or package name, when the source knows it
    app_source: str = "reported"  # or "inferred": the tool that wrote the file guessed it


@dataclass(frozen=True)
class Source:
    """What readers know about the file being imported.

    :param device: ``--device``: every record goes to this device instead of the ones
        the file names (client addresses, MACs)
    """

    name: str
    content_hash: str
    size: int = 0
    device: DeviceKey | None = None
    path: Path | None = None  # for formats that are databases (Pi-hole's FTL)

    def flow_id(self, fmt: str, n: int | str) -> str:
        """A stable id for the n-th record of this file: the same bytes give the same ids."""
        return f"{fmt}:{self.content_hash[:16]}:{n}"

    def file_device(self, what: str) -> DeviceKey:
        """The device for files that do not say which device sent what."""
        return self.device or DeviceKey(f"file:{self.content_hash[:12]}", f"{self.name} ({what})")


Item = Entry | Problem
Reader = Callable[[IO[bytes], Source], Iterator[Item]]


def device_for(ip: str, mac: str | None = None) -> DeviceKey:
    """One device per client MAC (when the capture has real ones) or IP, like live capture."""
    local = ip.startswith("127.") or ip == "::1"
    label = "this computer" if local else f"device at {ip}"
    if mac and mac not in ("00:00:00:00:00:00", "ff:ff:ff:ff:ff:ff"):
        return DeviceKey(f"mac:{mac}", label)
    return DeviceKey(f"ip:{ip}", label)


def dns_snapshot(
    flow_id: str,
    started_at: float,
    device: DeviceKey,
    qname: str,
    qtype: int | str,
    *,
    server_ip: str | None = None,
    request_bytes: int = 0,
    response_bytes: int = 0,
    duration_ms: float | None = None,
    error: str | None = None,
) -> FlowSnapshot:
    """A DNS query as a row of ``requests``: host is the name asked, method the query type."""
    return FlowSnapshot(
        flow_id=flow_id,
        kind="dns",
        started_at=started_at,
        device=device,
        method=qtype if isinstance(qtype, str) else QTYPES.get(qtype, f"TYPE{qtype}"),
        scheme="dns",
        host=qname,
        port=53,
        request_bytes=request_bytes,
        response_bytes=response_bytes,
        duration_ms=duration_ms,
        is_decrypted=False,
        server_ip=server_ip,
        error=error,
    )


PCAP_MAGICS = (b"\xa1\xb2\xc3\xd4", b"\xd4\xc3\xb2\xa1", b"\xa1\xb2\x3c\x4d", b"\x4d\x3c\xb2\xa1")
PCAPNG_MAGIC = b"\x0a\x0d\x0d\x0a"
SQLITE_MAGIC = b"SQLite format 3\x00"


_LABEL = re.compile(r"(?!-)[^\W]([\w-]{0,61}[^\W])?", re.UNICODE)


def host_problem(host: str | None) -> str | None:
    """Why ``host`` (from a file) is not a host name or an IP address, or None when it is.

    Labels of letters, digits, ``-`` and ``_`` (``_dmarc``), at most 63 characters each and
    253 in all; an IPv4 or IPv6 address (``[::1]`` too). Never a formula (``=cmd|…``),
    markup or a path."""
    if host is None or host == "":
        return None  # a record without a host (a DNS answer row) is judged elsewhere
    text = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    try:
        ipaddress.ip_address(text)
        return None
    except ValueError:
        pass
    name = text.rstrip(".")
    if len(name) > 253:
        return "is not a host name (longer than 253 characters)"
    if not name or not all(_LABEL.fullmatch(label) for label in name.split(".")):
        return "is not a host name or an IP address"
    return None
