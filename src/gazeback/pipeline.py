"""process(snapshot, context) → Record: observe, classify, detect leaks, in that order (pure)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from urllib.parse import parse_qsl

from gazeback.knowledge.apps import infer_app
from gazeback.knowledge.classify import TrackerIndex, classify
from gazeback.knowledge.hostnames import normalize_host
from gazeback.leaks.detect import Profile, detect_safe
from gazeback.leaks.redact import redact_header, redact_url, scrub_request
from gazeback.models import MAX_TEXT, TRUNCATION_MARKER, FlowSnapshot, Leak, Observation, Record
from gazeback.timestamps import iso

MAX_HEADERS = 200  # headers kept per request; the rest are counted in a marker entry
MAX_HEADER_VALUE = 2048
MAX_QUERY_PAIRS = 20_000  # decoded pairs handed to leak detection (its budget marks more)


@dataclass(frozen=True)
class Context:
    """What every stage needs, loaded once by the caller (writer thread or importer).

    :param key: the local key: fingerprints secrets and decoded leaves
    :param index: tracker knowledge; None classifies by registrable domain only
    :param profile: the person's identities; None skips leak detection
    """

    key: bytes
    index: TrackerIndex | None = None
    profile: Profile | None = None


def process(snap: FlowSnapshot, context: Context) -> Record:
    """Turn one captured flow into what the store writes."""
    obs = observe(snap, context.key)
    cls = classify(obs, context.index)
    app = infer_app(obs.user_agent, obs.request_headers, obs.query, obs.request_body)
    if context.profile is None:
        return Record(observation=obs, classification=cls, app=app)
    det = detect_safe(obs, context.profile, context.key)
    if det.leaks:
        obs = scrub(obs, det.leaks)
    return Record(
        observation=obs,
        classification=cls,
        leaks=det.leaks,
        decode_truncated=det.truncated,
        detection=det,
        app=app,
    )


def scrub(obs: Observation, leaks: tuple[Leak, ...]) -> Observation:
    """Take the person's identifiers out of what will be stored (path, headers).

    The leak rows say that and how an identifier was sent; the stored request must not
    carry it. Bodies are never stored, cookies and secrets are already fingerprinted.
    """
    path, headers, fields = scrub_request(
        obs.path, obs.request_headers, [(leak.location, leak.pii_type) for leak in leaks]
    )
    if not fields:
        return obs
    return replace(
        obs,
        path=path,
        request_headers=tuple(headers),
        redacted_fields=tuple(dict.fromkeys((*obs.redacted_fields, *fields))),
    )


def clip(text: str, limit: int = MAX_TEXT) -> str:
    if len(text) <= limit:
        return text
    return text[: limit - len(TRUNCATION_MARKER)] + TRUNCATION_MARKER


def _text(b: bytes) -> str:
    # backslashreplace keeps non-UTF-8 bytes visible and storable
    return b.decode("utf-8", "backslashreplace")


def observe(snap: FlowSnapshot, key: bytes) -> Observation:
    """Redact secrets and normalise text; the result is what gazeback may store (plus body)."""
    redacted: list[str] = []
    raw_secrets: list[tuple[str, str]] = []
    headers: list[tuple[str, str]] = []
    first: dict[str, str] = {}
    for i, (bname, bvalue) in enumerate(snap.request_headers):
        name, value = _text(bname), _text(bvalue)
        lname = name.lower()
        first.setdefault(lname, value)
        if i >= MAX_HEADERS:
            continue
        redacted_value, was_secret = redact_header(name, value, key)
        if was_secret:
            redacted.append(f"header:{lname}")
            raw_secrets.append((lname, clip(value, MAX_HEADER_VALUE * 4)))
            value = redacted_value
        headers.append((name, clip(value, MAX_HEADER_VALUE)))
    if len(snap.request_headers) > MAX_HEADERS:
        headers.append(("x-gazeback-truncated", f"{len(snap.request_headers) - MAX_HEADERS} more"))
    raw_path = path = snap.path or None
    query: list[tuple[str, str]] = []
    if path:
        if "?" in path:
            qs = path.partition("?")[2]
            query = parse_qsl(qs, keep_blank_values=True, max_num_fields=None)[:MAX_QUERY_PAIRS]
        path, places = redact_url(path, key)
        redacted += places
    referer = first.get("referer")
    if referer:
        referer = redact_url(referer, key)[0]
    return Observation(
        flow_id=snap.flow_id,
        kind=snap.kind,
        started_at=iso(snap.started_at),
        device=snap.device,
        method=snap.method or None,
        scheme=snap.scheme or None,
        host=clip(normalize_host(snap.host), 1024),
        port=snap.port or None,
        path=clip(path) if path else None,
        query=tuple(query),
        request_headers=tuple(headers),
        request_body=snap.request_body,
        content_type=first.get("content-type"),
        user_agent=first.get("user-agent"),
        referer=referer,
        origin=first.get("origin"),
        sec_fetch_site=first.get("sec-fetch-site"),
        status_code=snap.status_code,
        request_bytes=snap.request_bytes,
        response_bytes=snap.response_bytes,
        duration_ms=round(snap.duration_ms, 3) if snap.duration_ms is not None else None,
        is_decrypted=snap.is_decrypted,
        tls_sni=snap.tls_sni,
        server_ip=snap.server_ip,
        error=clip(snap.error, 1024) if snap.error else None,
        websocket_messages=snap.websocket_messages,
        websocket_bytes=snap.websocket_bytes,
        redacted_fields=tuple(dict.fromkeys(redacted)),
        raw_secret_headers=tuple(raw_secrets),
        raw_path=raw_path if raw_path != path else None,
    )
