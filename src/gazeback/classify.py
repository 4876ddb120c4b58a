"""Observation + tracker knowledge → Classification (pure)."""

from __future__ import annotations

import ipaddress
import json
import logging
from collections import defaultdict
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import publicsuffix2

from .models import Classification, Observation
from .urlrules import LIST_CATEGORY, UrlRules

log = logging.getLogger(__name__)


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
    if not host or not (host[-1].isdigit() or ":" in host):
        return False  # fast path: names end in a letter (TLDs are alphabetic)
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


def third_party(
    obs: Observation, domain: str | None, index: TrackerIndex | None = None
) -> bool | None:
    """True/False from page context; None where there is none (most app traffic).

    With an ``index``, hosts of the same owning company are first party to each other
    (``fonts.googleapis.com`` on a ``www.google.com`` page), even across sites.
    """
    if obs.sec_fetch_site in ("same-origin", "same-site"):
        return False
    page = context_host(obs)
    if index is not None and page is not None and index.same_owner(page, obs.host):
        return False
    if obs.sec_fetch_site == "cross-site":
        return True
    if page is None or domain is None:
        return None
    return registrable_domain(page) != domain


def _suffixes(host: str) -> list[str]:
    """``a.b.example.org`` → ``[a.b.example.org, b.example.org, example.org]``."""
    out = [host]
    i = host.find(".")
    while i != -1 and host.find(".", i + 1) != -1:
        out.append(host[i + 1 :])
        i = host.find(".", i + 1)
    return out


@dataclass(frozen=True)
class Match:
    """What the tracker knowledge says about one host or URL, with provenance."""

    tracker_id: str
    tracker_name: str
    category: str
    is_tracker: bool
    matched_domain: str | None  # None for a URL-rule hit
    source: str  # the list that decided
    source_version: str
    sources: tuple[str, ...]  # every list that knows this tracker
    company_id: str | None = None
    company_name: str | None = None
    owner_id: str | None = None
    owner_name: str | None = None
    country: str | None = None


_DEST_TYPES = {
    "script": "script",
    "image": "image",
    "style": "stylesheet",
    "font": "font",
    "iframe": "sub_frame",
    "empty": "xmlhttprequest",
    "video": "media",
    "audio": "media",
}


class TrackerIndex:
    """Host → tracker, company, owner and category, from a merged artifact (see trackerbuild).

    Lookups match the exact host, then each parent domain; results are cached.
    """

    def __init__(self, doc: dict[str, Any], use_url_rules: bool = True) -> None:
        self.sources: dict[str, dict[str, str]] = doc["sources"]
        self.companies: dict[str, dict[str, Any]] = doc["companies"]
        self.trackers: dict[str, dict[str, Any]] = doc["trackers"]
        self._domains: dict[str, list[str]] = doc["domains"]
        self._filters: dict[str, str] = {}
        for source in reversed(list(doc.get("filter_domains", {}))):
            self._filters.update(dict.fromkeys(doc["filter_domains"][source], source))
        self._all: dict[str, tuple[str, str]] = {d: ("", s) for d, s in self._filters.items()}
        self._all.update((d, (v[0], v[1])) for d, v in self._domains.items())
        self.url_rules = UrlRules(doc.get("url_rules", {})) if use_url_rules else None
        self._by_tracker: dict[str, list[str]] | None = None
        self._matches: dict[tuple[str, str | None, str], Match] = {}
        self.lookup = lru_cache(maxsize=131072)(self._lookup)

    def __getstate__(self) -> dict[str, Any]:
        # for import worker processes started with spawn: the data, not the caches
        state = dict(self.__dict__)
        del state["lookup"]
        state["_matches"] = {}
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self.lookup = lru_cache(maxsize=131072)(self._lookup)

    def versions(self) -> dict[str, str]:
        """``{source: version}`` of every list in this index."""
        return {s: meta["version"] for s, meta in self.sources.items()}

    def _entity(self, host: str) -> tuple[str, list[str]] | None:
        for candidate in _suffixes(host):
            hit = self._domains.get(candidate)
            if hit is not None:
                return candidate, hit
        return None

    def _lookup(self, host: str) -> Match | None:
        h = normalize_host(host)
        if not h or is_ip_literal(h):
            return None
        suffixes = _suffixes(h)
        for i, candidate in enumerate(suffixes):
            hit = self._all.get(candidate)
            if hit is None:
                continue
            tid, source = hit
            if tid:
                return self._match(tid, candidate, source)
            # A filter-list host rule: a tracker entry on a parent keeps its richer name;
            # a non-tracker parent (metrics.apple.com under apple.com) loses to the rule.
            for parent in suffixes[i + 1 :]:
                entity = self._domains.get(parent)
                if entity is not None and self.trackers[entity[0]]["is_tracker"]:
                    return self._match(entity[0], parent, entity[1])
            return self._match(f"{source}:{candidate}", candidate, source)
        return None

    def _synthetic(self, tid: str) -> dict[str, Any]:
        """Tracker row for a filter-list hit: ``easyprivacy:host`` or ``easyprivacy-url:domain``."""
        source, _, domain = tid.partition(":")
        list_name = source.removesuffix("-url")
        entity = self._entity(domain)
        label = "URL rules" if source.endswith("-url") else "host rule"
        return {
            "name": f"{domain} ({self.sources[list_name]['name']} {label})",
            "company_id": self.trackers[entity[1][0]]["company_id"] if entity else None,
            "category": LIST_CATEGORY[list_name],
            "is_tracker": True,
            "website_url": None,
            "sources": [list_name],
        }

    def tracker(self, tid: str) -> dict[str, Any]:
        """The tracker row (as stored in the artifact) for ``tid``, synthetic ones included."""
        return self.trackers.get(tid) or self._synthetic(tid)

    def _match(self, tid: str, domain: str | None, source: str) -> Match:
        key = (tid, domain, source)
        m = self._matches.get(key)
        if m is None:
            m = self._matches[key] = self._new_match(tid, domain, source)
        return m

    def _new_match(self, tid: str, domain: str | None, source: str) -> Match:
        t = self.tracker(tid)
        company = self.companies.get(t["company_id"] or "")
        owner = self.companies.get(company["owner_id"]) if company else None
        return Match(
            tracker_id=tid,
            tracker_name=t["name"],
            category=t["category"],
            is_tracker=bool(t["is_tracker"]),
            matched_domain=domain,
            source=source,
            source_version=self.sources[source]["version"],
            sources=tuple(t["sources"]),
            company_id=t["company_id"],
            company_name=company["name"] if company else None,
            owner_id=company["owner_id"] if company else None,
            owner_name=owner["name"] if owner else None,
            country=company["country"] if company else None,
        )

    def match_url(self, url: str, page_url: str = "", request_type: str = "other") -> Match | None:
        """Host lookup, then (for hosts no list marks a tracker) the lists' URL rules."""
        try:
            parts = urlsplit(url if "//" in url else f"https://{url}")
            hostname = parts.hostname or ""
        except ValueError:  # not a URL a list could match (e.g. a broken IPv6 literal)
            return None
        host_match = self.lookup(hostname)
        if (host_match and host_match.is_tracker) or self.url_rules is None:
            return host_match
        source = self.url_rules.check(url, page_url, request_type)
        if source is None:
            return host_match
        domain = registrable_domain(hostname) or normalize_host(hostname)
        return self._match(f"{source}-url:{domain}", None, source)

    def same_owner(self, host_a: str, host_b: str) -> bool:
        """Whether two hosts belong to the same top-level owner (hosting/CDN customers excluded)."""
        a, b = self.lookup(host_a), self.lookup(host_b)
        if a is None or b is None or a.owner_id is None or a.category in ("cdn", "hosting"):
            return False
        return a.owner_id == b.owner_id

    def rows(self, tracker_id: str) -> dict[str, list[dict[str, Any]]]:
        """Rows for ``companies`` (whole chain), ``trackers`` and ``tracker_domains``.

        Column names are the schema's (migrations m003); lists are JSON text.
        """
        t = self.tracker(tracker_id)
        companies: list[dict[str, Any]] = []
        cid = t["company_id"]
        while cid and cid in self.companies and all(c["id"] != cid for c in companies):
            c = self.companies[cid]
            companies.append({"id": cid, **c, "sources": json.dumps(c["sources"])})
            cid = c["parent_id"]
        if self._by_tracker is None:
            by: dict[str, list[str]] = defaultdict(list)
            for d, (tid, _) in self._domains.items():
                by[tid].append(d)
            self._by_tracker = dict(by)
        source, _, domain = tracker_id.partition(":")
        if tracker_id in self.trackers:
            domains = [(d, self._domains[d][1]) for d in self._by_tracker.get(tracker_id, [])]
        elif not source.endswith("-url"):
            domains = [(domain, source)]
        else:
            domains = []
        return {
            "companies": companies,
            "trackers": [
                {
                    "id": tracker_id,
                    "name": t["name"],
                    "company_id": t["company_id"],
                    "category": t["category"],
                    "is_tracker": int(t["is_tracker"]),
                    "website_url": t["website_url"],
                    "sources": json.dumps(t["sources"]),
                }
            ],
            "tracker_domains": [
                {
                    "domain": d,
                    "tracker_id": tracker_id,
                    "source": s,
                    "source_version": self.sources[s]["version"],
                }
                for d, s in sorted(domains)
            ],
        }


def request_url(obs: Observation) -> str:
    """The URL of an observation, for URL rules (path may carry redaction fingerprints)."""
    return f"{obs.scheme or 'https'}://{normalize_host(obs.host)}{obs.path or '/'}"


def classify(obs: Observation, index: TrackerIndex | None = None) -> Classification:
    """Attribute one observation: registrable domain, tracker/company, first/third party.

    Without an index only the registrable domain and first/third party are filled.
    """
    host = obs.host
    if is_ip_literal(normalize_host(host)) and obs.tls_sni:
        host = obs.tls_sni  # the name the client asked for beats the address
    domain = registrable_domain(host)
    is_third = third_party(obs, domain, index)
    if index is None:
        return Classification(registrable_domain=domain, is_third_party=is_third)
    h = normalize_host(host)
    if obs.path is None or is_ip_literal(h) or h == "localhost" or h.endswith(".local"):
        # A connection we could not open, or a machine addressed directly: host rules only.
        # (EasyPrivacy's rules against pages probing 127.0.0.1 need a page context we rarely
        # have; applied to a device's own local traffic they would call everything a tracker.)
        m = index.lookup(host)
    else:
        dest = dict(obs.request_headers).get("sec-fetch-dest", "")
        page = obs.referer or obs.origin or ""
        m = index.match_url(request_url(obs), page, _DEST_TYPES.get(dest, "other"))
    if m is None:
        return Classification(registrable_domain=domain, is_third_party=is_third)
    return Classification(
        registrable_domain=domain,
        is_third_party=is_third,
        tracker_id=m.tracker_id,
        tracker_name=m.tracker_name,
        company_id=m.company_id,
        category=m.category,
        is_tracker=m.is_tracker,
        matched_domain=m.matched_domain,
        source=m.source,
        owner_id=m.owner_id,
        country=m.country,
        sources=m.sources,
    )


@lru_cache(maxsize=4)
def load_index(path: Path | None = None) -> TrackerIndex:
    """The tracker index, loaded once: ``path``, else the user's updated copy, else the bundled one.

    A user copy that cannot be read is skipped with a warning (the bundled data stays usable).
    """
    from . import trackerlists

    if path is not None:
        return TrackerIndex(trackerlists.read_artifact(path))
    user = trackerlists.user_dir() / "trackers.json.gz"
    if user.exists():
        try:
            return TrackerIndex(trackerlists.read_artifact(user))
        except ValueError as e:
            log.warning("ignoring updated tracker data: %s", e)
    return TrackerIndex(trackerlists.read_artifact(trackerlists.bundled_path()))
