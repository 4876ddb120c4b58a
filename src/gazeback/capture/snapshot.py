"""mitmproxy flows → FlowSnapshot (cheap, on the event loop); ``pipeline.observe`` makes the
Observation (redacted) from it, off the event loop.

The only core module that imports mitmproxy, and only for flow types.
"""

from __future__ import annotations

import ipaddress
from functools import lru_cache

from mitmproxy import connection, http, tcp
from mitmproxy.proxy import mode_specs

from gazeback.models import DeviceKey, FlowSnapshot


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
