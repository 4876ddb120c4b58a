"""mitmproxy flows → FlowSnapshot (cheap, on the event loop) → Observation (redacted, off it).

The only core module that imports mitmproxy, and only for flow types.
"""

from __future__ import annotations

import ipaddress
import json
from functools import lru_cache
from urllib.parse import parse_qsl

from mitmproxy import connection, http, tcp
from mitmproxy.proxy import mode_specs

from gazeback.knowledge.hostnames import normalize_host
from gazeback.leaks.redact import redact_header, redact_url
from gazeback.models import MAX_TEXT, TRUNCATION_MARKER, DeviceKey, FlowSnapshot, Observation
from gazeback.timestamps import iso

MAX_HEADERS = 200  # headers kept per request; the rest are counted in a marker entry
MAX_HEADER_VALUE = 2048
MAX_QUERY_PAIRS = 20_000  # decoded pairs handed to leak detection (its budget marks more)


def _client_ip(client: connection.Client) -> str:
    ip = str(client.peername[0]) if client.peername else "unknown"
    if ip.startswith("::ffff:"):  # dual-stack listeners show IPv4 clients as mapped addresses
        ip = ip[7:]
    return ip


def device_key(client: connection.Client, proxy_user: str | None = None) -> DeviceKey:
    """Which device sent this: proxy-auth user, else WireGuard listen port, else client address."""
    mode = client.proxy_mode
    port = mode.listen_port() if isinstance(mode, mode_specs.WireGuardMode) else None
    return _device_key(_client_ip(client), proxy_user, port)


@lru_cache(maxsize=4096)
def _device_key(ip: str, proxy_user: str | None, wireguard_port: int | None) -> DeviceKey:
    # cached: called for every flow on the event loop, and devices are few
    if proxy_user:
        return DeviceKey(f"user:{proxy_user}", proxy_user)
    if wireguard_port is not None:
        return DeviceKey(
            f"wireguard:{wireguard_port}", f"WireGuard device on port {wireguard_port}"
        )
    try:
        local = ipaddress.ip_address(ip).is_loopback
    except ValueError:
        local = False
    return DeviceKey(f"ip:{ip}", "this computer" if local else f"device at {ip}")


def _body_len(message: http.Message | None) -> int:
    if message is None:
        return 0
    raw = message.raw_content
    if raw is not None:
        return len(raw)
    try:
        return int(message.headers.get("content-length", 0))
    except ValueError:
        return 0


def _user(flow: http.HTTPFlow, fallback: str | None) -> str | None:
    auth = flow.metadata.get("proxyauth")
    return str(auth[0]) if auth else fallback


def snapshot_http(
    flow: http.HTTPFlow, kind: str = "http", proxy_user: str | None = None
) -> FlowSnapshot:
    """Copy what gazeback needs from an HTTP flow (references to immutable data only)."""
    req, resp = flow.request, flow.response
    ws = flow.websocket
    return FlowSnapshot(
        flow_id=flow.id,
        kind=kind,  # type: ignore[arg-type]
        started_at=req.timestamp_start,
        device=device_key(flow.client_conn, _user(flow, proxy_user)),
        method=req.method,
        scheme=req.scheme,
        host=req.pretty_host,
        port=req.port,
        path=req.path,
        http_version=req.http_version,
        request_headers=req.headers.fields,
        request_body=req.raw_content,
        status_code=resp.status_code if resp else None,
        request_bytes=_body_len(req),
        response_bytes=_body_len(resp),
        duration_ms=(
            (resp.timestamp_end - req.timestamp_start) * 1000
            if resp and resp.timestamp_end
            else None
        ),
        is_decrypted=True,
        tls_sni=flow.client_conn.sni,
        server_ip=_server_ip(flow.server_conn),
        error=flow.error.msg if flow.error else _reason(flow, kind),
        websocket_messages=len(ws.messages) if ws else None,
        websocket_bytes=sum(len(m.content) for m in ws.messages) if ws else None,
    )


def _reason(flow: http.HTTPFlow, kind: str) -> str | None:
    if kind == "refused":  # a device asked for this computer (capture/localguard.py)
        return str(flow.metadata.get("gazeback_refused"))
    return _proxy_reason(flow.response) if kind == "error" else None


def _proxy_reason(resp: http.Response | None) -> str | None:
    # A CONNECT that failed carries its reason in the 502 the proxy answered with.
    if resp is None or not resp.raw_content:
        return None
    text = resp.raw_content[:500].decode("utf-8", "replace").split(" If you plan", 1)[0]
    return text.strip() or None


def _server_ip(server: connection.Server | None) -> str | None:
    if server is None or not server.peername:
        return None
    return str(server.peername[0])


def snapshot_tls_failed(
    client: connection.Client,
    server: connection.Server,
    sni: str | None,
    error: str | None,
    proxy_user: str | None = None,
) -> FlowSnapshot:
    """A TLS connection the client would not open with our certificate."""
    host = sni or (str(server.address[0]) if server.address else "")
    return FlowSnapshot(
        flow_id=f"tls-{client.id}-{server.id}",
        kind="tls_failed",
        started_at=client.timestamp_start or 0.0,
        device=device_key(client, proxy_user),
        scheme="https",
        host=host,
        port=int(server.address[1]) if server.address else 0,
        is_decrypted=False,
        tls_sni=sni,
        server_ip=_server_ip(server),
        error=error,
    )


def snapshot_refused(client: connection.Client, server: connection.Server) -> FlowSnapshot:
    """A device's connection to this computer, refused before it was opened (localguard)."""
    host, port = server.address[:2] if server.address else ("", 0)
    return FlowSnapshot(
        flow_id=f"refused-{client.id}-{server.id}",
        kind="refused",
        started_at=client.timestamp_start or 0.0,
        device=device_key(client, None),
        scheme="",
        host=str(host),
        port=int(port),
        is_decrypted=False,
        error=server.error,
    )


def snapshot_tcp(
    flow: tcp.TCPFlow,
    bytes_up: int,
    bytes_down: int,
    sni: str | None,
    reason: str,
    proxy_user: str | None = None,
) -> FlowSnapshot:
    """A connection passed through without decryption (pinned or ignored host)."""
    server = flow.server_conn
    host = sni or (str(server.address[0]) if server.address else "")
    return FlowSnapshot(
        flow_id=flow.id,
        kind="tunnel",
        started_at=flow.client_conn.timestamp_start or flow.timestamp_created,
        device=device_key(flow.client_conn, proxy_user),
        scheme="tls" if sni else "tcp",
        host=host,
        port=int(server.address[1]) if server.address else 0,
        request_bytes=bytes_up,
        response_bytes=bytes_down,
        is_decrypted=False,
        tls_sni=sni,
        server_ip=_server_ip(server),
        error=reason if not flow.error else f"{reason}; {flow.error.msg}",
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


def headers_json(obs: Observation) -> str:
    return json.dumps(obs.request_headers, ensure_ascii=False)
