"""Devices must not reach this computer through the proxy (SSRF).

The dashboard, the workshop pages and any other local service listen on this computer. A
device (a WireGuard peer, or a client of the proxy that is not on this computer) asking the
proxy for ``http://127.0.0.1:8001/trail.json?sql=...`` would otherwise be answered by them,
as if it were the person at the keyboard. Refused: loopback, link-local, unspecified
(``0.0.0.0``) and every address of this computer, by IP or by any name resolving to one.

- A request naming such an address (``127.0.0.1``, ``[::1]``, ``localhost``, ``2130706433``)
  gets a 403 page saying why; the attempt is recorded (``requests.kind = 'refused'``).
- Every other server connection of a device is resolved here and connected to the very
  address that was checked, so a name that resolves to this computer (or rebinds to it
  between two lookups) fails too, with the reason in the error.

This computer's own programs (clients whose address is this computer's) are not restricted:
they can reach local services directly anyway. mitmproxy's ``block_private`` and
``block_global`` options look at the *client's* address (who may use the proxy), not at
where a request goes, so they do not cover this.
"""

from __future__ import annotations

import asyncio
import html
import ipaddress
import socket
from typing import Any

from mitmproxy import connection, ctx, http
from mitmproxy.proxy import mode_specs, server_hooks

from gazeback.capture.deviceauth import from_this_computer, is_own_address

REASON_KEY = "gazeback_refused"
PREFIX = "refused by gazeback: "

PAGE = (
    "<!doctype html><title>Refused by gazeback</title><h1>Refused by gazeback</h1>"
    "<p>{reason}</p><p>gazeback records what this device sends to the internet. It does not "
    "let devices reach the computer it runs on (its dashboard holds the whole trail), so this "
    "request was refused and noted in the trail.</p>"
)

Address = ipaddress.IPv4Address | ipaddress.IPv6Address


def is_device(client: connection.Client) -> bool:
    """A device: anything but this computer's own programs."""
    return not from_this_computer(client)


def this_computer(addr: Address) -> str | None:
    """Why ``addr`` is this computer (or its link), else None."""
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped:
        addr = addr.ipv4_mapped
    if addr.is_loopback:
        return "a loopback address (this computer)"
    if addr.is_unspecified:
        return "the unspecified address (this computer)"
    if addr.is_link_local:
        return "a link-local address"
    return "one of this computer's own addresses" if is_own_address(addr) else None


def numeric(host: str) -> Address | None:
    """``host`` as an address if it is one in any form a client library accepts
    (``127.1``, ``0x7f.1``, ``2130706433``, ``[::1]``), else None."""
    host = host.strip("[]")
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        pass
    try:
        return ipaddress.IPv4Address(socket.inet_aton(host))
    except OSError:
        return None


def refusal(host: str, port: int | None) -> str | None:
    """Why a device may not go to ``host``, judged without a name lookup, else None."""
    name = host.strip("[]").rstrip(".").lower()
    if name == "localhost" or name.endswith(".localhost"):
        return f"{host} is this computer (localhost)."
    addr = numeric(host)
    why = this_computer(addr) if addr is not None else None
    if why is None:
        return None
    where = f"{host}:{port}" if port else host
    return f"{where} is {why}."


def _on_open_connection(flow: http.HTTPFlow) -> bool:
    conn = flow.server_conn
    return (
        conn.timestamp_start is not None
        and conn.address is not None
        and (flow.request.host, flow.request.port) == tuple(conn.address[:2])
    )


class LocalGuard:
    """Refuses devices' requests to this computer, with a page saying why."""

    def load(self, loader: Any) -> None:
        loader.add_option(
            "gazeback_block_local",
            bool,
            True,
            "gazeback: refuse requests from devices (WireGuard peers and clients not on this "
            "computer) to this computer's own addresses, loopback and link-local: a 403 page, "
            "recorded as kind 'refused'. This computer's own programs are not restricted.",
        )

    def _refuse(self, flow: http.HTTPFlow) -> None:
        if flow.response is not None or not ctx.options.gazeback_block_local:
            return
        if not is_device(flow.client_conn):
            return
        why = None
        error = flow.server_conn.error or ""
        if error.startswith(PREFIX):  # its connection was refused already (server_connect)
            why = error.removeprefix(PREFIX)
        elif isinstance(
            flow.client_conn.proxy_mode, mode_specs.RegularMode | mode_specs.UpstreamMode
        ) and not _on_open_connection(flow):
            # a proxy request (CONNECT host:port, GET http://host/...): where the proxy will
            # connect next. Requests inside a tunnel, and in WireGuard and transparent modes,
            # go to their connection's destination, checked when it was opened (server_connect)
            why = refusal(flow.request.host, flow.request.port)
        if why:
            flow.metadata[REASON_KEY] = PREFIX + why
            flow.response = http.Response.make(
                403,
                PAGE.format(reason=html.escape(why)),
                {"Content-Type": "text/html; charset=utf-8"},
            )

    http_connect = _refuse
    requestheaders = _refuse

    async def server_connect(self, data: server_hooks.ServerConnectionHookData) -> None:
        if not ctx.options.gazeback_block_local or not is_device(data.client):
            return
        server = data.server
        if server.address is None or server.error:
            return
        host, port = server.address[:2]
        if server.transport_protocol == "udp" and port == 53:
            return  # name lookups the proxy forwards for WireGuard devices
        why = refusal(str(host), port)
        if why is None and numeric(str(host)) is None:
            try:
                infos = await asyncio.get_running_loop().getaddrinfo(
                    host, port, type=socket.SOCK_STREAM
                )
            except (OSError, UnicodeError):
                return  # the proxy's own lookup fails the same way
            addrs = [ipaddress.ip_address(str(i[4][0]).split("%")[0]) for i in infos]
            for addr in addrs:
                if found := this_computer(addr):
                    why = f"{host} resolves to {addr}, {found}."
                    break
            else:
                if addrs:  # connect to the address just checked, not to a second lookup
                    server.address = (str(addrs[0]), port)
        if why:
            server.error = PREFIX + why
