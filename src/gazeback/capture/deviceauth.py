"""Proxy credentials for devices on the network, and only for them.

mitmproxy's own ``proxyauth`` asks every client of every mode, so a WireGuard peer (already
authenticated by its key) gets 401 and this computer's own browser gets 407. This addon asks
only clients of the regular (or upstream) proxy that are not on this computer. A loopback
client may still present a device's credential: its requests are then that device's.

Passwords are bcrypt hashes in an htpasswd file; a check runs in a worker thread (never on
the proxy's event loop), checks of one credential arriving together share one bcrypt run (a
room of phones joining at once queues one check per password, not one per connection), a
successful one is remembered for the life of the process, and a client address that keeps
failing is refused without checking for a minute.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import ipaddress
import logging
import socket
import time
import weakref
from collections import deque
from collections.abc import MutableMapping
from pathlib import Path
from typing import Any

from mitmproxy import connection, ctx, exceptions, http
from mitmproxy.proxy import mode_specs

logger = logging.getLogger("gazeback")

FAILURES_ALLOWED = 10  # wrong credentials per client address ...
FAILURE_WINDOW = 60.0  # ... within this many seconds, then refused without checking

PAGE = (
    "<!doctype html><title>Proxy user needed</title><h1>Proxy user needed</h1>"
    "<p>This gazeback proxy records the traffic of the devices its owner added. Set this "
    "device's proxy user and password (the ones <code>gazeback device add</code> or "
    "<code>gazeback run --device LABEL</code> printed) in its Wi-Fi proxy settings, or join "
    "with WireGuard instead.</p>"
)


def read_htpasswd(path: Path) -> dict[str, bytes]:
    """user → bcrypt hash, from an htpasswd file; ValueError naming the bad line."""
    users: dict[str, bytes] = {}
    for n, line in enumerate(path.read_text("utf-8").splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        user, sep, pwhash = line.partition(":")
        if not sep or not user or not pwhash.startswith(("$2a$", "$2b$", "$2y$")):
            raise ValueError(f"{path}, line {n}: expected user:bcrypt-hash")
        users[user] = pwhash.encode()
    return users


def from_this_computer(client: connection.Client) -> bool:
    """The client is a program on this computer: its address is loopback or one of this
    computer's own (a TCP peer cannot fake either). Never a WireGuard peer, whose inner
    address (10.0.0.1) says nothing about where it is."""
    if isinstance(client.proxy_mode, mode_specs.WireGuardMode):
        return False
    try:
        addr = ipaddress.ip_address(str(client.peername[0]).split("%")[0])
    except (ValueError, TypeError, IndexError):
        return False
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped:
        addr = addr.ipv4_mapped
    return addr.is_loopback or is_own_address(addr)


def is_own_address(addr: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    """``addr`` is one of this computer's addresses: only those can be bound (no traffic)."""
    family = socket.AF_INET6 if addr.version == 6 else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as s:
        try:
            s.bind((str(addr), 0))
        except OSError:
            return False
    return True


def needs_credential(client: connection.Client) -> bool:
    """Clients of the explicit HTTP proxy that are not programs on this computer."""
    is_proxy = isinstance(client.proxy_mode, mode_specs.RegularMode | mode_specs.UpstreamMode)
    return is_proxy and not from_this_computer(client)


def parse_basic(value: str) -> tuple[str, str] | None:
    scheme, _, token = value.strip().partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        user, sep, password = base64.b64decode(token.strip(), validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return None
    return (user, password) if sep else None


def auth_required(reason: str) -> http.Response:
    return http.Response.make(
        407,
        PAGE,
        {
            "Proxy-Authenticate": 'Basic realm="gazeback"',
            "Content-Type": "text/html; charset=utf-8",
            "X-Gazeback-Reason": reason,
        },
    )


class DeviceAuth:
    """Asks devices on the network for their proxy user; nobody else."""

    def __init__(self) -> None:
        self.users: dict[str, bytes] = {}
        self._verified: set[tuple[str, bytes]] = set()  # (user, sha256(password)) that passed
        self._pending: dict[tuple[str, bytes], asyncio.Future[bool]] = {}  # checks running now
        self.checks_run = 0  # bcrypt checks started (coalesced ones count once)
        self._failures: dict[str, deque[float]] = {}
        self.authenticated: MutableMapping[connection.Client, str] = weakref.WeakKeyDictionary()

    def load(self, loader: Any) -> None:
        loader.add_option(
            "gazeback_proxy_users",
            str,
            "",
            "gazeback: htpasswd file (bcrypt) of the devices' proxy users. When set, clients "
            "of the regular proxy that are not on this computer need one of them (407 "
            "without); WireGuard devices and this computer's own programs do not.",
        )

    def configure(self, updated: set[str]) -> None:
        if "gazeback_proxy_users" not in updated:
            return
        value = ctx.options.gazeback_proxy_users
        if not value:
            self.users = {}
            return
        try:
            self.users = read_htpasswd(Path(value).expanduser())
        except (OSError, ValueError, UnicodeDecodeError) as e:
            raise exceptions.OptionsError(f"gazeback_proxy_users: {e}") from None  # type: ignore[no-untyped-call]
        self._verified.clear()
        self._pending.clear()

    async def http_connect(self, flow: http.HTTPFlow) -> None:
        user = await self._check(flow)
        if user is not None:
            self.authenticated[flow.client_conn] = user

    async def requestheaders(self, flow: http.HTTPFlow) -> None:
        if flow.response is not None or flow.is_replay:
            return
        user = self.authenticated.get(flow.client_conn)
        if user is not None:  # inside a tunnel this device opened with its credential
            flow.metadata["proxyauth"] = (user, "")
            return
        await self._check(flow)

    async def _check(self, flow: http.HTTPFlow) -> str | None:
        """The device's user name, or None (with a 407 set when one was needed)."""
        if not self.users or not isinstance(
            flow.client_conn.proxy_mode, mode_specs.RegularMode | mode_specs.UpstreamMode
        ):
            return None
        header = flow.request.headers.get("Proxy-Authorization")
        if header is None:
            if needs_credential(flow.client_conn):
                flow.response = auth_required("no proxy user given")
            return None
        del flow.request.headers["Proxy-Authorization"]  # never forwarded, never stored
        creds = parse_basic(header)
        peer = str(flow.client_conn.peername[0])
        if creds is None:
            flow.response = auth_required("unreadable Proxy-Authorization")
        elif self._throttled(peer):
            flow.response = auth_required("too many wrong passwords: wait a minute")
        elif await self._valid(*creds):
            flow.metadata["proxyauth"] = (creds[0], "")
            return creds[0]
        else:
            self._failures.setdefault(peer, deque()).append(time.monotonic())
            logger.warning(f"gazeback: wrong proxy user or password from {peer}")
            flow.response = auth_required("wrong proxy user or password")
        return None

    async def _valid(self, user: str, password: str) -> bool:
        stored = self.users.get(user)
        if stored is None:
            return False
        key = (user, hashlib.sha256(password.encode()).digest())
        if key in self._verified:
            return True
        pending = self._pending.get(key)
        if pending is None:  # the first of its kind: the others arriving now await this one
            self.checks_run += 1
            pending = asyncio.ensure_future(asyncio.to_thread(_checkpw, password.encode(), stored))
            self._pending[key] = pending
            pending.add_done_callback(lambda done: self._settle(key, stored, done))
        # shielded: one waiter's connection closing does not cancel the others' check
        return await asyncio.shield(pending)

    def _settle(self, key: tuple[str, bytes], stored: bytes, done: asyncio.Future[bool]) -> None:
        if self._pending.get(key) is done:
            del self._pending[key]
        if (
            not done.cancelled()
            and done.exception() is None
            and done.result()
            and self.users.get(key[0]) == stored  # the file was not re-read meanwhile
        ):
            self._verified.add(key)

    def _throttled(self, peer: str) -> bool:
        times = self._failures.get(peer)
        if not times:
            return False
        while times and time.monotonic() - times[0] > FAILURE_WINDOW:
            times.popleft()
        return len(times) >= FAILURES_ALLOWED


def _checkpw(password: bytes, stored: bytes) -> bool:
    import bcrypt

    try:
        return bool(bcrypt.checkpw(password[:72], stored))
    except ValueError:
        return False
