"""Who may read the dashboard: the token of this start, and the password beyond loopback.

- **Token** (every start, loopback included, as Jupyter does): a random value printed in the
  address that ``gazeback run``/``dashboard``/``demo`` show. The first visit with
  ``?token=...`` gets an HttpOnly, SameSite=Strict cookie and is sent on to the same address
  without the token, so it does not stay in the browser's history. Another account on the
  same computer can reach 127.0.0.1 but never sees the token: it is not in any command line,
  file or database, only in the dashboard process's environment (readable by its owner).
- **Password** (served beyond loopback): HTTP Basic, checked with bcrypt in a worker thread
  (never on the event loop), successful checks cached for a few minutes, and failures
  rate-limited per client address: after ``MAX_FAILURES`` in ``FAILURE_WINDOW`` seconds the
  address gets 429 with Retry-After, without running bcrypt at all; and addresses that
  already failed share one bcrypt at a time (429, Retry-After: 1 while it is busy).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import secrets
import time
from collections import OrderedDict, deque
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, urlencode

import bcrypt

TOKEN_PARAM = "token"
TOKEN_ENV = "GAZEBACK_DASHBOARD_TOKEN"
BCRYPT_ROUNDS = 12
MAX_FAILURES = 5
FAILURE_WINDOW = 60.0
CACHE_SECONDS = 300.0
CACHE_SIZE = 64
TRACKED_ADDRESSES = 4096


def new_token() -> str:
    return secrets.token_urlsafe(32)


def cookie_name(port: int | None) -> str:
    # Browsers send a 127.0.0.1 cookie to every port: one name per port keeps two dashboards apart.
    return f"gazeback_{port or 0}"


def same(given: str | None, expected: str) -> bool:
    """Constant-time comparison of a presented secret with the expected one."""
    if given is None:
        return False
    return hmac.compare_digest(given.encode("utf-8", "replace"), expected.encode())


def cookies(header: str | None) -> dict[str, str]:
    out: dict[str, str] = {}
    for part in (header or "").split(";"):
        name, eq, value = part.strip().partition("=")
        if eq and name not in out:
            out[name] = value.strip().strip('"')
    return out


def split_token(query_string: str) -> tuple[str | None, str]:
    """(the ``token`` parameter, the query string without it)."""
    pairs = parse_qsl(query_string, keep_blank_values=True)
    token = next((v for k, v in pairs if k == TOKEN_PARAM), None)
    if token is None:
        return None, query_string
    return token, urlencode([(k, v) for k, v in pairs if k != TOKEN_PARAM])


def local_location(path: str, query_string: str) -> str:
    """A redirect target on this server only: ``//evil.example/`` must not leave it."""
    path = "/" + path.lstrip("/\\")
    return path + (f"?{query_string}" if query_string else "")


def set_cookie(name: str, token: str) -> bytes:
    return f"{name}={token}; HttpOnly; SameSite=Strict; Path=/".encode()


def hash_password(password: str) -> str:
    """The bcrypt hash kept in the dashboard's configuration (never the password)."""
    return bcrypt.hashpw(password.encode(), bcrypt.gensalt(BCRYPT_ROUNDS)).decode()


def check_password(password: str, stored: str) -> bool:
    try:
        return bcrypt.checkpw(password.encode(), stored.encode())
    except ValueError:  # not a bcrypt hash, or a password with a NUL byte
        return False


def basic_password(authorization: str | None) -> str | None:
    """The password of an HTTP Basic ``Authorization`` header (any user name), or None."""
    if not authorization or not authorization.lower().startswith("basic "):
        return None
    try:
        decoded = base64.b64decode(authorization[6:], validate=True).decode("utf-8")
    except (ValueError, UnicodeDecodeError):
        return None
    return decoded.partition(":")[2]


@dataclass
class PasswordGate:
    """bcrypt off the event loop, a short cache of good passwords, a limit on failures."""

    stored: str
    max_failures: int = MAX_FAILURES
    window: float = FAILURE_WINDOW
    _good: OrderedDict[str, float] = field(default_factory=OrderedDict)
    _failures: OrderedDict[str, deque[float]] = field(default_factory=OrderedDict)
    # Addresses that already failed get one bcrypt at a time between them (the others are
    # told to retry in a second), so a crowd of guessers cannot fill the worker threads and
    # the CPU ahead of a person typing the right password.
    _suspects: asyncio.Semaphore = field(default_factory=lambda: asyncio.Semaphore(1))

    def _key(self, password: str) -> str:
        return hashlib.sha256(f"{self.stored}\0{password}".encode()).hexdigest()

    def retry_after(self, address: str, now: float | None = None) -> int:
        """Seconds until ``address`` may try again (0: it may try now)."""
        now = time.monotonic() if now is None else now
        fails = self._failures.get(address)
        while fails and fails[0] <= now - self.window:
            fails.popleft()
        if not fails or len(fails) < self.max_failures:
            return 0
        return max(1, int(fails[0] + self.window - now + 0.999))

    def _fail(self, address: str) -> None:
        fails = self._failures.pop(address, None) or deque(maxlen=self.max_failures)
        fails.append(time.monotonic())
        self._failures[address] = fails
        while len(self._failures) > TRACKED_ADDRESSES:
            self._failures.popitem(last=False)

    async def check(self, address: str, password: str) -> tuple[bool, int]:
        """(password accepted, seconds to wait before trying again when refused unheard)."""
        key = self._key(password)
        expires = self._good.get(key)
        if expires is not None and expires > time.monotonic():
            return True, 0
        wait = self.retry_after(address)
        if wait:
            return False, wait
        if address in self._failures:
            if self._suspects.locked():  # another address that already failed is being checked
                return False, 1
            async with self._suspects:
                ok = await asyncio.to_thread(check_password, password, self.stored)
        else:
            ok = await asyncio.to_thread(check_password, password, self.stored)
        if ok:
            self._good[key] = time.monotonic() + CACHE_SECONDS
            self._good.move_to_end(key)
            while len(self._good) > CACHE_SIZE:
                self._good.popitem(last=False)
            return True, 0
        self._fail(address)
        return False, 0
