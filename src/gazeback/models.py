"""Plain data shared by every stage of the pipeline: no I/O, no mitmproxy objects."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, NewType

CaptureId = NewType("CaptureId", int)
DeviceId = NewType("DeviceId", int)
RequestId = NewType("RequestId", int)
IdentityId = NewType("IdentityId", int)

# What one row of `requests` describes.
#   http       a request (and its response) that the proxy decrypted or saw in clear
#   websocket  a WebSocket handshake, with message counts and bytes
#   error      an HTTP request that failed (no response: refused, reset, timeout ...)
#   tls_failed a TLS connection the client refused to open with our certificate (pinning, no CA)
#   tunnel     a connection passed through without decryption (ignored host, pinned host)
#   dns        a DNS query (imported pcaps, Pi-hole, AdGuard Home, mitmproxy DNS flows)
#   contact    a contact known only from another tool's log (App Privacy Report), no payload
RequestKind = Literal[
    "http", "websocket", "error", "tls_failed", "tunnel", "dns", "contact", "refused"
]

# Longest text we keep in a single column; longer values end with TRUNCATION_MARKER.
MAX_TEXT = 4096
TRUNCATION_MARKER = "…[truncated]"


@dataclass(frozen=True, slots=True)
class DeviceKey:
    """How the proxy tells one device from another.

    ``key`` is stable and local-only (``ip:192.168.1.23``, ``user:phone``,
    ``port:51821``); ``label`` is the name shown until the person renames it.
    """

    key: str
    label: str
    kind: str = "other"


@dataclass(frozen=True, slots=True)
class FlowSnapshot:
    """What the proxy hook copies from a flow: cheap references to immutable data.

    Built on the event loop in microseconds; everything expensive (redaction,
    classification, leak detection) happens later on the writer thread.
    """

    flow_id: str
    kind: RequestKind
    started_at: float  # epoch seconds
    device: DeviceKey
    method: str = ""
    scheme: str = ""
    host: str = ""  # the name the client asked for (Host header, authority or SNI)
    port: int = 0
    path: str = ""  # path with query string, as sent
    http_version: str = ""
    request_headers: tuple[tuple[bytes, bytes], ...] = ()
    request_body: bytes | None = None  # read for leak detection, never stored
    status_code: int | None = None
    request_bytes: int = 0
    response_bytes: int = 0
    duration_ms: float | None = None
    is_decrypted: bool = True
    tls_sni: str | None = None
    server_ip: str | None = None
    error: str | None = None
    websocket_messages: int | None = None
    websocket_bytes: int | None = None


@dataclass(frozen=True, slots=True)
class Observation:
    """A request as gazeback records it: secrets redacted, sizes known, body kept in memory only."""

    flow_id: str
    kind: RequestKind
    started_at: str  # ISO-8601 UTC, e.g. 2026-11-27T06:50:24.123Z
    device: DeviceKey
    method: str | None
    scheme: str | None
    host: str
    port: int | None
    path: str | None  # redacted, truncated with a marker when longer than MAX_TEXT
    query: tuple[tuple[str, str], ...]  # decoded, for leak detection only (not stored)
    request_headers: tuple[tuple[str, str], ...]  # redacted
    request_body: bytes | None  # never stored
    content_type: str | None
    user_agent: str | None
    referer: str | None  # redacted page context (for first/third party)
    origin: str | None
    sec_fetch_site: str | None
    status_code: int | None
    request_bytes: int
    response_bytes: int
    duration_ms: float | None
    is_decrypted: bool
    tls_sni: str | None
    server_ip: str | None
    error: str | None
    websocket_messages: int | None = None
    websocket_bytes: int | None = None
    redacted_fields: tuple[
        str, ...
    ] = ()  # where secrets were replaced, e.g. "header:authorization"
    # The values that redaction replaced (cookie, authorization, ...), as sent: leak detection
    # only, never stored. Detection prefers these over the redacted header values.
    raw_secret_headers: tuple[tuple[str, str], ...] = ()
    # The path as sent when redaction changed it: leak detection only, never stored.
    raw_path: str | None = None
    app: str | None = None  # the app that sent it, when the source says (App Privacy Report)
    # who said which app: 'reported' (the capture names it per connection) or 'inferred'
    # (read from the request: knowledge.apps); None when no app is known
    app_source: str | None = None


@dataclass(frozen=True, slots=True)
class Classification:
    """Who is behind a host, and whether the request is a third-party one."""

    registrable_domain: str | None
    is_third_party: bool | None  # None: no page context to judge from (most app traffic)
    tracker_id: str | None = None
    tracker_name: str | None = None
    company_id: str | None = None
    category: str | None = None
    is_tracker: bool = False
    matched_domain: str | None = None
    source: str | None = None  # which list said so
    owner_id: str | None = None  # top of the company chain (doubleclick -> google -> alphabet)
    country: str | None = None  # the company's country, ISO 3166-1 alpha-2
    sources: tuple[str, ...] = ()  # every list that knows this tracker


@dataclass(frozen=True, slots=True)
class Leak:
    """One of the person's identifiers found in a request: that and how, never the value."""

    pii_type: str
    transform_chain: str  # e.g. "lower>sha256:hex"
    location: str  # e.g. "url.query:ud[em]", "body.json:$.user.email"
    tier: Literal["strong", "medium", "weak"]
    identity_id: int | None = None


IDENTITY_KINDS = (
    "email",
    "phone",
    "name",
    "ad_id",
    "android_id",
    "imei",
    "mac",
    "location",
    "ip",
    "other",
)


@dataclass(frozen=True)
class IdentityValue:
    """One of the person's own identifiers, in clear: in memory only, never stored in the db.

    ``value`` is kept out of ``repr`` so that a log line or a traceback cannot print it.
    """

    id: int
    kind: str  # one of IDENTITY_KINDS
    value: str = field(repr=False)
    label: str | None = None


@dataclass(frozen=True, slots=True)
class Learned:
    """One property a tracker learned from a request (an adapter found it), stored safely.

    Identifier-like properties keep only ``fingerprint`` (the leak detector's keyed leaf
    fingerprint) and a masked ``preview``; ``value`` is then None. Coordinates are rounded to
    2 decimals; other values are short, secret- and identity-scrubbed text.
    """

    adapter: str  # the adapter's id, e.g. "google-analytics-ua"
    company: str  # the adapter file's company
    property: str  # TrackHAR vocabulary name, e.g. "advertisingId"
    location: str  # "query:cid", "body:events.0.device.ifa", "header:x-device", "path:2"
    group: Literal["identifier", "device", "activity", "location"]
    value: str | None
    fingerprint: int | None
    preview: str  # what the dashboard shows: the masked identifier, or the value


@dataclass(frozen=True, slots=True)
class Candidate:
    """An ID-shaped value, by keyed fingerprint only: input to the persistent-ID heuristic."""

    fingerprint: int  # fingerprint(key, value): keyed BLAKE2b, 64 bits, signed
    location: str  # array indices replaced by [*]
    shape: str  # uuid, hex, b64, digits


@dataclass(frozen=True, slots=True)
class Detection:
    """What the leak detector found in one request (``leaks.detect.detect``): no values."""

    leaks: tuple[Leak, ...] = ()
    truncated: bool = False  # a budget was hit: store the request with decode_truncated = 1
    # (keyed fingerprint of the lower-cased leaf, location) for retroactive matching
    leaf_fingerprints: tuple[tuple[int, str], ...] = ()
    candidates: tuple[Candidate, ...] = ()


@dataclass(frozen=True, slots=True)
class Record:
    """The pipeline's output for one flow: what the store writes (``db.store.save_records``)."""

    observation: Observation
    classification: Classification
    leaks: tuple[Leak, ...] = ()
    decode_truncated: bool = False
    # the leak detector's result (leaf fingerprints, ID candidates); None when it did not run
    detection: Detection | None = None
    learned: tuple[Learned, ...] = ()  # what adapters found (see knowledge/learn.py)
