"""Replace secrets by a keyed fingerprint before anything is stored (pure).

A fingerprint is ``[secret:<12 hex>]``: HMAC-SHA256 with the local key, so the same
secret always gives the same fingerprint (it still links) but cannot be read back.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from functools import lru_cache
from urllib.parse import quote, unquote_plus

# Header names whose whole value is a secret.
SECRET_HEADERS = frozenset({"authorization", "proxy-authorization"})
# Cookie headers: names stay, values go.
COOKIE_HEADERS = frozenset({"cookie", "set-cookie"})
# Headers whose value is a URL (or a list of them), parsed like the request's own.
URL_HEADERS = frozenset({"referer", "origin", "location", "content-location", "link"})
# A field or header name that smells like a secret: password, pass, pwd, token, secret,
# otp, session, key, ticket, ... matched on the name's word parts (access_token, sessionId,
# X-Auth-Token, passcode, pincode).
SECRET_NAME = re.compile(
    r"(?:^|_)(pass|passwd|password|passphrase|passcode|pwd|pw|pin|pincode|token|secret|otp"
    r"|session|sessionid|sid|jsessionid|auth|apikey|api_key|access_key|key|credential"
    r"|credentials|signature|sig|ticket|state|nonce|csrf|xsrf|jwt|magic)(?:_|$)"
)
# OAuth authorization codes and one-time codes: short-lived, but secrets while they live
OAUTH_CODES = frozenset(
    {"code", "auth_code", "authorization_code", "oauth_code", "verification_code", "pin_code"}
)
_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")
_NON_WORD = re.compile(r"[^a-z0-9]+")

# --- secrets by shape -----------------------------------------------------------------
# A JSON Web Token anywhere: header.payload.signature, the first two base64url of "{".
JWT = re.compile(r"eyJ[A-Za-z0-9_-]{6,}\.[A-Za-z0-9_-]{6,}\.[A-Za-z0-9_-]*")
# Runs of token characters long enough to be a generated secret.
_RUN = re.compile(r"[A-Za-z0-9_\-+/=~.]{%d,}")
MIN_TOKEN = 20  # shorter random strings (ids, short codes) are not judged by shape
MIN_HEX = 32  # hex-only: session ids, reset tokens, digests (an md5 is 32)
# A 20+ character run of two or more character classes is taken as random when fewer than
# MAX_WORDLIKE of its characters sit in word-like runs and it has at least MIN_ENTROPY
# bits per character. Measured (docs/leak-detection.md): random base64url tokens of 20-48
# characters have 3.35-5.2 bits and a word-like share under 0.45 (99.9 %); slugs and
# CamelCase names have a share over 0.6.
MIN_ENTROPY = 3.0
MAX_WORDLIKE = 0.5
_RUN_RX = re.compile(_RUN.pattern % MIN_TOKEN)
_UUID = re.compile(
    r"\{?[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\}?"
)
_HEX = re.compile(r"[0-9a-fA-F]+")
_NUMERIC = re.compile(r"[0-9._-]+")
_WORD = re.compile(r"[A-Z]?[a-z]{3,}|[A-Z]{4,}")
_VOWELS = re.compile(r"[aeiouyAEIOUY]")
_CONSONANTS = re.compile(r"[^aeiouyAEIOUY]{4,}")  # four consonants in a row: not a word
# Prefixes that vendors put on their secrets (GitHub, Slack, Stripe, AWS, Google, GitLab).
SECRET_PREFIXES = ("ghp_", "gho_", "ghu_", "ghs_", "github_pat_", "xoxb-", "xoxp-", "xoxa-",
                   "sk_live_", "sk_test_", "rk_live_", "AKIA", "ASIA", "AIza", "ya29.", "glpat-")  # fmt: skip


def fingerprint(value: str | bytes, key: bytes) -> str:
    """Keyed, stable, unreadable stand-in for a secret value."""
    data = value.encode("utf-8", "surrogateescape") if isinstance(value, str) else value
    return "[secret:" + hmac.new(key, data, hashlib.sha256).hexdigest()[:12] + "]"


@lru_cache(maxsize=8192)
def is_secret_name(name: str) -> bool:
    words = _NON_WORD.sub("_", _CAMEL.sub("_", name).lower()).strip("_")
    if words in OAUTH_CODES:
        return True
    return bool(SECRET_NAME.search(words)) or "password" in words or "token" in words


def entropy(text: str) -> float:
    """Shannon entropy in bits per character."""
    n = len(text)
    return -sum(c / n * math.log2(c / n) for c in Counter(text).values())


@lru_cache(maxsize=16384)
def looks_secret(value: str) -> bool:
    """A JWT, a vendor-prefixed key, or a long random token (by length and entropy).

    UUIDs, numbers, timestamps and word-like slugs are not secrets by shape: trackers'
    client ids (Google Analytics ``cid``) and page paths stay readable.
    """
    v = value.strip("=.~-_")
    if len(v) < 16:
        return False
    if v.startswith("eyJ") and JWT.fullmatch(v):
        return True
    if v.startswith(SECRET_PREFIXES):
        return True
    if _UUID.fullmatch(v) or _NUMERIC.fullmatch(v):
        return False
    if _HEX.fullmatch(v):
        return len(v) >= MIN_HEX
    if len(v) < MIN_TOKEN or "." in v and max(map(len, v.split("."))) <= 16:
        return False  # a dotted name (main.3f2a9c1b.js, fb.1.1700000000.123): not a token
    classes = (
        any(c.isdigit() for c in v),
        any(c.isupper() for c in v),
        any(c.islower() for c in v),
    )
    if sum(classes) < 2 or wordlike(v) >= MAX_WORDLIKE:
        return False
    return entropy(v) >= MIN_ENTROPY


def wordlike(v: str) -> float:
    """Share of characters in word-like runs (``Shoes``, ``running``): high for slugs and
    CamelCase names, low for random tokens."""
    words = [w for w in _WORD.findall(v) if _VOWELS.search(w[1:]) and not _CONSONANTS.search(w)]
    return sum(map(len, words)) / len(v)


def scrub_text(text: str, key: bytes) -> str:
    """Fingerprint every JWT and secret-shaped run inside free text (a header value)."""
    if len(text) < 16:
        return text
    out = JWT.sub(lambda m: fingerprint(m.group(), key), text)
    return _RUN_RX.sub(
        lambda m: fingerprint(m.group(), key) if looks_secret(m.group()) else m.group(), out
    )


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
_URL_IN_TEXT = re.compile(r"(?:https?|wss?)://[^\s<>\"',]+")


# Header values found to hold nothing to redact (they are stored as they are anyway): a device
# sends the same user-agent, accept and language headers with every request (#19). Bounded;
# never holds a value that had anything replaced.
_CLEAN_HEADERS: dict[tuple[str, str], None] = {}
_CLEAN_MAX = 4096
_CLEAN_VALUE_MAX = 1024


def redact_header(name: str, value: str, key: bytes) -> tuple[str, bool]:
    """Return the value to store, and whether anything was replaced."""
    lname = name.lower()
    if (lname, value) in _CLEAN_HEADERS:
        return value, False
    out, replaced = _redact_header(lname, value, key)
    if not replaced and len(value) <= _CLEAN_VALUE_MAX:
        if len(_CLEAN_HEADERS) >= _CLEAN_MAX:
            _CLEAN_HEADERS.clear()
        _CLEAN_HEADERS[(lname, value)] = None
    return out, replaced


def _redact_header(lname: str, value: str, key: bytes) -> tuple[str, bool]:
    if lname in SECRET_HEADERS:
        return redact_auth(value, key), True
    if lname in COOKIE_HEADERS:
        return redact_cookie(value, key), True
    if is_secret_name(lname) or value.lower().startswith(("bearer ", "basic ")):
        return redact_auth(value, key), True
    if lname in URL_HEADERS or "://" in value:
        out = _URL_IN_TEXT.sub(lambda m: redact_url(m.group(), key)[0], value)
        if lname in URL_HEADERS and "://" not in value and value.startswith("/"):
            out = redact_url(value, key)[0]  # a relative Location
    else:
        out = scrub_text(value, key)
    return out, out != value


def redact_url(url: str, key: bytes) -> tuple[str, list[str]]:
    """Redact a URL or a path: userinfo, path segments (matrix parameters, tokens), query.

    Returns the URL and the places replaced (``url.path:2``, ``url.query:token``).
    """
    head, path = "", url
    if "://" in url[:12]:
        scheme, _, rest = url.partition("://")
        authority, slash, path = rest.partition("/")
        if "@" in authority:
            user, _, host = authority.rpartition("@")
            # no brackets here: URL parsers read [..] after the scheme as an IPv6 host
            authority = fingerprint(user, key).strip("[]").replace(":", "-") + "@" + host
        head, path = f"{scheme}://{authority}", slash + path
    path, hsep, fragment = path.partition("#")
    base, q, qs = path.partition("?")
    places: list[str] = []
    if len(base) >= 16 or ";" in base:
        base = _redact_segments(base, key, places)
    if qs:
        qs, names = redact_query(qs, key)
        places += [f"url.query:{n}" for n in names]
    if fragment:
        fragment, _ = redact_query(fragment, key)
    return head + base + q + qs + hsep + fragment, places


def _redact_segments(base: str, key: bytes, places: list[str]) -> str:
    parts = base.split("/")
    seen = -1
    for i, part in enumerate(parts):
        if not part:
            continue
        seen += 1
        seg, semi, matrix = part.partition(";")
        if semi:
            pairs = matrix.split(";")
            for j, pair in enumerate(pairs):
                name, eq, val = pair.partition("=")
                if eq and val and (is_secret_name(name) or looks_secret(unquote_plus(val))):
                    pairs[j] = f"{name}={fingerprint(unquote_plus(val), key)}"
            matrix = ";".join(pairs)
        if looks_secret(unquote_plus(seg)) or JWT.search(seg):
            seg = fingerprint(unquote_plus(seg), key)
        new = seg + semi + matrix
        if new != part:
            parts[i] = new
            places.append(f"url.path:{seen}")
    return "/".join(parts)


def redact_query(query: str, key: bytes) -> tuple[str, list[str]]:
    """Replace secret values in a query string (by name, or by shape); return it and their names.

    A value that is itself a URL or a query (a redirect target) is redacted in turn.
    """
    if not query:
        return query, []
    parts = query.split("&")
    names: list[str] = []
    for i, part in enumerate(parts):
        name, eq, val = part.partition("=")
        if not (eq and val):
            continue
        plain = unquote_plus(val)
        if is_secret_name(unquote_plus(name)) or looks_secret(plain) or JWT.search(plain):
            parts[i] = f"{name}={quote(fingerprint(plain, key), safe='[]:')}"
            names.append(unquote_plus(name))
        elif ("=" in plain or "/" in plain) and len(plain) >= 16:
            inner, found = redact_url(plain, key)
            if not found and len(plain) >= MIN_TOKEN:
                inner = scrub_text(plain, key)
            if inner != plain:
                parts[i] = f"{name}={quote(inner, safe='/:[]')}"
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
