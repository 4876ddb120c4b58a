"""Observation + tracker knowledge → Classification (pure)."""

from __future__ import annotations

import ipaddress
import json
import logging
import re
from collections import defaultdict
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import publicsuffix2

from gazeback.knowledge.hostnames import (
    normalize_host as normalize_host,  # re-exported: its old home
)
from gazeback.knowledge.urlrules import LIST_CATEGORY, UrlRules
from gazeback.models import Classification, Observation

log = logging.getLogger(__name__)


# Hosts that normalize_host would return unchanged (the usual case): skip it.
_already_normal = re.compile(r"[a-z0-9_-][a-z0-9._-]*(?<!\.)").fullmatch


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


@lru_cache(maxsize=8192)
def _url_hostname(url: str) -> str | None:
    return urlsplit(url).hostname  # pages repeat: one split per distinct Referer/Origin


def context_host(obs: Observation) -> str | None:
    """The page a request was made from (Origin, then Referer), if the client said."""
    for value in (obs.origin, obs.referer):
        if value and value != "null":
            host = _url_hostname(value)
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
    if obs.sec_fetch_site in ("same-origin", "same-site") or is_top_level_visit(obs):
        return False
    page = context_host(obs)
    if index is not None and page is not None and index.same_owner(page, obs.host):
        return False
    if obs.sec_fetch_site == "cross-site":
        return True
    if page is None or domain is None:
        return None
    return registrable_domain(page) != domain


def is_top_level_visit(obs: Observation) -> bool:
    """The person opened this page themselves (typed it, followed a link, a bookmark): a
    top-level navigation (``Sec-Fetch-Mode: navigate`` with ``Sec-Fetch-Dest: document``).
    The site visited is the first party on that visit, whoever owns it (facebook.com opened
    is Meta as a first party, not a tracker)."""
    mode = dest = ""
    for name, value in obs.request_headers:
        if name == "sec-fetch-mode":
            mode = value
        elif name == "sec-fetch-dest":
            dest = value
    return mode == "navigate" and dest == "document"


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


def _build_match(base: dict[str, Any], domain: str | None) -> Match:
    """``Match(**base)`` with ``matched_domain=domain``."""
    return Match(**{**base, "matched_domain": domain})


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
        self._bases: dict[tuple[str, str], dict[str, Any]] = {}  # Match fields per (tid, source)
        self._synthetic_bases: dict[tuple[str, str | None], dict[str, Any]] = {}
        self._by_domain: dict[str, Match] = {}  # lookup result per most specific listed suffix
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

    def uncached_copy(self) -> TrackerIndex:
        """The same knowledge with every cache empty (benchmarks and tests of cold lookups)."""
        filter_domains: dict[str, list[str]] = defaultdict(list)
        for domain, source in self._filters.items():
            filter_domains[source].append(domain)
        doc = {
            "sources": self.sources,
            "companies": self.companies,
            "trackers": self.trackers,
            "domains": self._domains,
            "filter_domains": dict(filter_domains),
        }
        copy = TrackerIndex(doc, use_url_rules=False)
        copy.url_rules = self.url_rules
        return copy

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
        h = host if _already_normal(host) else normalize_host(host)
        if not h or ((h[-1].isdigit() or ":" in h) and is_ip_literal(h)):
            return None
        # Walk h, then each parent down to two labels (as _suffixes), without a list.
        get = self._all.get
        candidate = h
        i = h.find(".")  # the dot before the next candidate
        while True:
            hit = get(candidate)
            if hit is not None:
                break
            if i == -1:
                return None
            j = h.find(".", i + 1)
            if j == -1:
                return None
            candidate = h[i + 1 :]
            i = j
        m = self._by_domain.get(candidate)
        if m is None:
            m = self._by_domain[candidate] = self._domain_match(candidate, hit)
        return m

    def _domain_match(self, domain: str, hit: tuple[str, str]) -> Match:
        """The Match for a host whose most specific listed suffix is ``domain`` (``_all[domain]``)."""
        tid, source = hit
        if tid:  # (cached per domain by _lookup, so no need for _match's cache)
            base = self._bases.get(hit)
            if base is None:
                base = self._bases[hit] = self._match_fields(tid, source, self.tracker(tid))
            return Match(**{**base, "matched_domain": domain})
        # A filter-list host rule: a tracker entry on a parent keeps its richer name;
        # a non-tracker parent (metrics.apple.com under apple.com) loses to the rule.
        domains = self._domains
        entity: tuple[str, list[str]] | None = None  # nearest parent entry (its company)
        i = domain.find(".")
        while i != -1 and domain.find(".", i + 1) != -1:
            parent = domain[i + 1 :]
            found = domains.get(parent)
            if found is not None:
                if entity is None:
                    entity = parent, found
                if self.trackers[found[0]]["is_tracker"]:
                    return self._match(found[0], parent, found[1])
            i = domain.find(".", i + 1)
        # A synthetic tracker (_synthetic_row): only its id, name and domain are its own.
        company_id = self.trackers[entity[1][0]]["company_id"] if entity else None
        key = (source, company_id)
        base = self._synthetic_bases.get(key)
        if base is None:
            row = self._synthetic_row(f"{source}:", entity)  # for domain "": " (... rule)"
            base = self._synthetic_bases[key] = self._match_fields("", source, row)
        return Match(
            **{
                **base,
                "tracker_id": f"{source}:{domain}",
                "tracker_name": domain + base["tracker_name"],  # "<domain> (EasyPrivacy host rule)"
                "matched_domain": domain,
            }
        )

    def _synthetic(self, tid: str) -> dict[str, Any]:
        """Tracker row for a filter-list hit: ``easyprivacy:host`` or ``easyprivacy-url:domain``."""
        return self._synthetic_row(tid, self._entity(tid.partition(":")[2]))

    def _synthetic_row(self, tid: str, entity: tuple[str, list[str]] | None) -> dict[str, Any]:
        """``_synthetic`` given the domain's nearest ``domains`` entry (``_entity``)."""
        source, _, domain = tid.partition(":")
        list_name = source.removesuffix("-url")
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
        return _build_match(self._match_fields(tid, source, self.tracker(tid)), domain)

    def _match_fields(self, tid: str, source: str, t: dict[str, Any]) -> dict[str, Any]:
        """Match's fields, in order, for tracker row ``t`` (``matched_domain`` left None)."""
        company = self.companies.get(t["company_id"] or "")
        owner = self.companies.get(company["owner_id"]) if company else None
        return {
            "tracker_id": tid,
            "tracker_name": t["name"],
            "category": t["category"],
            "is_tracker": bool(t["is_tracker"]),
            "matched_domain": None,
            "source": source,
            "source_version": self.sources[source]["version"],
            "sources": tuple(t["sources"]),
            "company_id": t["company_id"],
            "company_name": company["name"] if company else None,
            "owner_id": company["owner_id"] if company else None,
            "owner_name": owner["name"] if owner else None,
            "country": company["country"] if company else None,
        }

    def match_url(self, url: str, page_url: str = "", request_type: str = "other") -> Match | None:
        """Host lookup, then (for hosts no list marks a tracker) the lists' URL rules."""
        try:
            parts = urlsplit(url if "//" in url else f"https://{url}")
            hostname = parts.hostname or ""
        except ValueError:  # not a URL a list could match (e.g. a broken IPv6 literal)
            return None
        return self._match_url(url, hostname, page_url, request_type)

    def _match_url(self, url: str, hostname: str, page_url: str, request_type: str) -> Match | None:
        """``match_url`` given ``hostname``, the URL's ``urlsplit(url).hostname or ""``."""
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
            row = {k: v for k, v in c.items() if k != "history"}  # the artifact's, not a column
            companies.append({"id": cid, **row, "sources": json.dumps(c["sources"])})
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


_URL_SCHEMES = frozenset({None, "", "http", "https", "ws", "wss"})


def classify(obs: Observation, index: TrackerIndex | None = None) -> Classification:
    """Attribute one observation: registrable domain, tracker/company, first/third party.

    Without an index only the registrable domain and first/third party are filled.
    """
    host = obs.host
    normal = _already_normal(host) is not None
    url_host = host if normal else normalize_host(host)  # the host request_url() uses
    h = url_host
    if obs.tls_sni and is_ip_literal(h):
        host = obs.tls_sni  # the name the client asked for beats the address
        h = normalize_host(host)
    domain = registrable_domain(host)
    is_third = third_party(obs, domain, index)
    if index is None:
        return _classification(domain, is_third, None)
    path = obs.path
    if path is None or is_ip_literal(h) or h == "localhost" or h.endswith(".local"):
        # A connection we could not open, or a machine addressed directly: host rules only.
        # (EasyPrivacy's rules against pages probing 127.0.0.1 need a page context we rarely
        # have; applied to a device's own local traffic they would call everything a tracker.)
        m = index.lookup(host)
    else:
        dest = ""
        for name, value in obs.request_headers:  # the last one wins, as in a dict
            if name == "sec-fetch-dest":
                dest = value
        page = obs.referer or obs.origin or ""
        request_type = _DEST_TYPES.get(dest, "other")
        url = f"{obs.scheme or 'https'}://{url_host}{path or '/'}"  # request_url(obs)
        if normal and (not path or path[0] == "/") and obs.scheme in _URL_SCHEMES:
            # urlsplit(url).hostname would give url_host back: skip the split
            m = index._match_url(url, url_host, page, request_type)
        else:
            m = index.match_url(url, page, request_type)
    return _classification(domain, is_third, m)


def _classification(domain: str | None, is_third: bool | None, m: Match | None) -> Classification:
    if m is None:
        return Classification(domain, is_third)
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
    from gazeback.knowledge import trackerlists

    if path is not None:
        return TrackerIndex(trackerlists.read_artifact(path))
    user = trackerlists.user_dir() / "trackers.json.gz"
    if user.exists():
        try:
            return TrackerIndex(trackerlists.read_artifact(user))
        except ValueError as e:
            log.warning("ignoring updated tracker data: %s", e)
    return TrackerIndex(trackerlists.read_artifact(trackerlists.bundled_path()))
