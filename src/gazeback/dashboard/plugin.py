"""Datasette plugin: security headers, a Host check, and a password beyond loopback.

Configuration cannot add response headers or refuse requests, so this is a plugin; the
decisions are pure functions below (tested directly), the hook only applies them.

- Every response carries a Content-Security-Policy that lets pages load nothing from
  other origins (no trackers on the tracker dashboard, no exfiltration from a page that
  was made to run script), and refuses framing.
- Requests whose ``Host`` is not a loopback name are refused: a web page that rebinds its
  own domain name to 127.0.0.1 ("DNS rebinding") cannot read your trail.
- When the dashboard is served beyond loopback, every request needs the password
  (HTTP Basic; the hash, never the password, sits in the dashboard configuration).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from datasette import hookimpl

LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1", "[::1]"})
# Vega compiles chart expressions with Function(): 'unsafe-eval'. Datasette pages carry
# inline scripts and styles: 'unsafe-inline'. Nothing from any other origin.
CSP = (
    "default-src 'self'; script-src 'self' 'unsafe-inline' 'unsafe-eval'; "
    "style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; font-src 'self' data:; "
    "connect-src 'self'; object-src 'none'; base-uri 'self'; form-action 'self'; "
    "frame-ancestors 'none'"
)
SECURITY_HEADERS = [
    (b"content-security-policy", CSP.encode()),
    (b"x-frame-options", b"DENY"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"cross-origin-resource-policy", b"same-origin"),
]
PBKDF2_ROUNDS = 200_000

Scope = dict[str, Any]
ASGIApp = Callable[[Scope, Any, Any], Awaitable[None]]


def hash_password(password: str, salt: bytes | None = None) -> str:
    """``pbkdf2_sha256$rounds$salt$hash`` for the dashboard configuration."""
    salt = salt or os.urandom(16)
    digest = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, PBKDF2_ROUNDS)
    return f"pbkdf2_sha256${PBKDF2_ROUNDS}${salt.hex()}${digest.hex()}"


def check_password(password: str, stored: str) -> bool:
    try:
        _, rounds, salt, digest = stored.split("$")
        got = hashlib.pbkdf2_hmac("sha256", password.encode(), bytes.fromhex(salt), int(rounds))
    except ValueError:
        return False
    return hmac.compare_digest(got.hex(), digest)


def host_allowed(host_header: str | None, allowed: Iterable[str]) -> bool:
    """Is ``Host`` one we serve? ``*`` in ``allowed`` accepts any (served beyond loopback)."""
    allowed = set(allowed)
    if "*" in allowed:
        return True
    if not host_header:
        return False
    host = host_header.strip().lower()
    if host.startswith("["):
        host = host.split("]", 1)[0] + "]"
    elif host.count(":") == 1:
        host = host.split(":", 1)[0]
    return host in allowed


def basic_auth_ok(authorization: str | None, password_hash: str) -> bool:
    if not authorization or not authorization.lower().startswith("basic "):
        return False
    try:
        decoded = base64.b64decode(authorization[6:]).decode("utf-8")
    except (ValueError, UnicodeDecodeError):
        return False
    _, _, password = decoded.partition(":")
    return check_password(password, password_hash)


async def _reply(send: Any, status: int, body: bytes, headers: list[tuple[bytes, bytes]]) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"text/plain; charset=utf-8"), *headers],
        }
    )
    await send({"type": "http.response.body", "body": body})


def wrap(app: ASGIApp, allowed_hosts: Iterable[str], password_hash: str | None) -> ASGIApp:
    allowed = list(allowed_hosts)

    async def gazeback_security(scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        if not host_allowed(headers.get("host"), allowed):
            await _reply(send, 403, b"gazeback: this dashboard only answers on 127.0.0.1\n", [])
            return
        if password_hash and not basic_auth_ok(headers.get("authorization"), password_hash):
            await _reply(
                send, 401, b"gazeback: password required\n",
                [(b"www-authenticate", b'Basic realm="gazeback", charset="UTF-8"')],
            )  # fmt: skip
            return

        async def send_with_headers(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), *SECURITY_HEADERS]}
            await send(message)

        await app(scope, receive, send_with_headers)

    return gazeback_security


@hookimpl  # type: ignore[untyped-decorator]
def asgi_wrapper(datasette: Any) -> Callable[[ASGIApp], ASGIApp]:
    config = datasette.plugin_config("gazeback") or {}
    allowed = config.get("allowed_hosts") or sorted(LOOPBACK_HOSTS)
    password_hash = config.get("password_hash")

    def wrapper(app: ASGIApp) -> ASGIApp:
        return wrap(app, allowed, password_hash)

    return wrapper
