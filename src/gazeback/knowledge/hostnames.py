"""Host names as gazeback stores and matches them (pure)."""

from __future__ import annotations

from functools import lru_cache


@lru_cache(maxsize=65536)
def normalize_host(host: str) -> str:
    """Lower-case, strip a trailing dot, port and IPv6 brackets, and turn IDNs into punycode
    (as tracker lists write them). A name that is not a valid IDN is kept as it came."""
    h = host.strip().lower()
    if h.startswith("["):  # [::1]:8080 -> ::1
        h = h[1:].split("]", 1)[0]
    elif h.count(":") == 1:  # a Host header may carry a port: it has its own column
        h = h.split(":", 1)[0]
    h = h.rstrip(".")
    if h and not h.isascii():
        try:
            h = h.encode("idna").decode("ascii")
        except UnicodeError:
            pass
    return h
