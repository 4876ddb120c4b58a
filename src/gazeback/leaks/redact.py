"""Replace secrets by a keyed fingerprint before anything is stored (pure).

A fingerprint is ``[secret:<12 hex>]``: HMAC-SHA256 with the local key, so the same
secret always gives the same fingerprint (it still links) but cannot be read back.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Iterable, Sequence
from functools import lru_cache
from urllib.parse import quote, unquote_plus

# Header names whose whole value is a secret.
SECRET_HEADERS = frozenset({"authorization", "proxy-authorization"})
# Cookie headers: names stay, values go.
COOKIE_HEADERS = frozenset({"cookie", "set-cookie"})
# A field or header name that smells like a secret: password, pass, pwd, token, secret,
# otp, session, ... matched on the name's word parts (access_token, sessionId, X-Auth-Token).
SECRET_NAME = re.compile(
    r"(?:^|_)(pass|passwd|password|passphrase|pwd|pin|token|secret|otp|session|sessionid|sid"
    r"|auth|apikey|api_key|access_key|credential|credentials|signature|sig)(?:_|$)"
)
# OAuth authorization codes: short-lived, but a secret while they live
OAUTH_CODES = frozenset({"code", "auth_code", "authorization_code", "oauth_code"})
_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")
_NON_WORD = re.compile(r"[^a-z0-9]+")


def fingerprint(value: str | bytes, key: bytes) -> str:
    """Keyed, stable, unreadable stand-in for a secret value."""
    data = value.encode("utf-8", "surrogateescape") if isinstance(value, str) else value
    return "[secret:" + hmac.new(key, data, hashlib.sha256).hexdigest()[:12] + "]"


@lru_cache(maxsize=8192)
def is_secret_name(name: str) -> bool:
    words = _NON_WORD.sub("_", _CAMEL.sub("_", name).lower())
    if words in OAUTH_CODES:
        return True
    return bool(SECRET_NAME.search(words)) or "password" in words or "token" in words


def redact_auth(value: str, key: bytes) -> str:
    """``Bearer abc`` → ``Bearer [secret:…]``; keeps the scheme, which says what kind of secret."""
    scheme, sep, rest = value.partition(" ")
    if sep and scheme.isalpha() and rest:
        return f"{scheme} {fingerprint(rest, key)}"
    return fingerprint(value, key)


def redact_cookie(value: str, key: bytes) -> str:
    """``a=1; b=2`` → ``a=[secret:…]; b=[secret:…]`` (set-cookie attributes kept)."""
    out = []
    for i, part in enumerate(value.split(";")):
        name, eq, val = part.partition("=")
        if eq and (i == 0 or name.strip().lower() not in _COOKIE_ATTRS):
            out.append(f"{name}={fingerprint(val.strip(), key)}")
        else:
            out.append(part)
    return ";".join(out)


_COOKIE_ATTRS = frozenset({"expires", "max-age", "domain", "path", "samesite"})


def redact_header(name: str, value: str, key: bytes) -> tuple[str, bool]:
    """Return the value to store, and whether anything was replaced."""
    lname = name.lower()
    if lname in SECRET_HEADERS:
        return redact_auth(value, key), True
    if lname in COOKIE_HEADERS:
        return redact_cookie(value, key), True
    if is_secret_name(lname) or value.lower().startswith(("bearer ", "basic ")):
        return redact_auth(value, key), True
    return value, False


def redact_query(query: str, key: bytes) -> tuple[str, list[str]]:
    """Replace the values of secret-named fields in a query string; return it and their names."""
    if not query:
        return query, []
    parts = query.split("&")
    names: list[str] = []
    for i, part in enumerate(parts):
        name, eq, val = part.partition("=")
        if eq and val and is_secret_name(unquote_plus(name)):
            parts[i] = f"{name}={quote(fingerprint(unquote_plus(val), key), safe='[]:')}"
            names.append(unquote_plus(name))
    return "&".join(parts), names


LEAK_MARK = "[leak:{}]"


def scrub_path(path: str, query_keys: dict[str, str], segments: dict[int, str]) -> str:
    """Replace the query values and path segments where one of the person's identifiers was
    found with ``[leak:TYPE]``, so the stored path never carries the identifier.

    :param query_keys: stored key name (as in a leak's location) -> pii type
    :param segments: index of a non-empty path segment -> pii type
    """
    from gazeback.leaks.decode import safe_key

    base, q, qs = path.partition("?")
    if segments:
        parts = base.split("/")
        seen = -1
        for i, part in enumerate(parts):
            if part:
                seen += 1
                if seen in segments:
                    parts[i] = LEAK_MARK.format(segments[seen])
        base = "/".join(parts)
    if qs and query_keys:
        fields = qs.split("&")
        for i, field in enumerate(fields):
            name, eq, _ = field.partition("=")
            kind = query_keys.get(safe_key(unquote_plus(name)))
            if eq and kind:
                fields[i] = f"{name}={LEAK_MARK.format(kind)}"
        qs = "&".join(fields)
    return base + q + qs


def scrub_request(
    path: str | None,
    headers: Sequence[tuple[str, str]],
    found: Iterable[tuple[str, str]],
) -> tuple[str | None, list[tuple[str, str]], list[str]]:
    """Take identifiers out of a stored path and headers.

    :param found: (location, pii type) of each leak, e.g. ("url.query:em>b64", "email")
    :returns: the path, the headers and the locations that were replaced
    """
    query: dict[str, str] = {}
    segments: dict[int, str] = {}
    named: dict[str, str] = {}
    for location, pii_type in found:
        kind, _, name = location.split(">", 1)[0].partition(":")
        if kind == "url.query":
            query[name] = pii_type
        elif kind == "url.path" and name.isdigit():
            segments[int(name)] = pii_type
        elif kind == "header":
            named[name.lower()] = pii_type
    if path and (query or segments):
        path = scrub_path(path, query, segments)
    headers = [
        (n, LEAK_MARK.format(named[n.lower()]) if n.lower() in named else v) for n, v in headers
    ]
    fields = [f"url.query:{k}" for k in query] + [f"url.path:{i}" for i in segments]
    return path, headers, fields + [f"header:{h}" for h in named]
