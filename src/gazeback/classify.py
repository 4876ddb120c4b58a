"""Observation + tracker knowledge → Classification (pure)."""

from __future__ import annotations

import ipaddress
from functools import lru_cache
from urllib.parse import urlsplit

import publicsuffix2

from .models import Classification, Observation


@lru_cache(maxsize=65536)
def normalize_host(host: str) -> str:
    """Lower-case, strip a trailing dot, port and IPv6 brackets, and turn IDNs into punycode."""
    h = host.strip().lower()
    if h.startswith("["):
        h = h[1:].split("]", 1)[0]
    elif h.count(":") == 1:
        h = h.split(":", 1)[0]
    h = h.rstrip(".")
    if h and not h.isascii():
        try:
            h = h.encode("idna").decode("ascii")
        except UnicodeError:
            pass
    return h


def is_ip_literal(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


@lru_cache(maxsize=65536)
def registrable_domain(host: str) -> str | None:
    """eTLD+1 from the offline Public Suffix List; None for IP literals and empty hosts."""
    h = normalize_host(host)
    if not h or is_ip_literal(h):
        return None
    sld = publicsuffix2.get_sld(h)
    return str(sld) if sld else h


def context_host(obs: Observation) -> str | None:
    """The page a request was made from (Origin, then Referer), if the client said."""
    for value in (obs.origin, obs.referer):
        if value and value != "null":
            host = urlsplit(value).hostname
            if host:
                return host
    return None


def third_party(obs: Observation, domain: str | None) -> bool | None:
    """True/False from page context; None where there is none (most app traffic)."""
    if obs.sec_fetch_site in ("same-origin", "same-site"):
        return False
    if obs.sec_fetch_site == "cross-site":
        return True
    page = context_host(obs)
    if page is None or domain is None:
        return None
    return registrable_domain(page) != domain


def classify(obs: Observation) -> Classification:
    """Attribute one observation: registrable domain and first/third party."""
    domain = registrable_domain(obs.host)
    return Classification(registrable_domain=domain, is_third_party=third_party(obs, domain))
