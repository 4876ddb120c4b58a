"""The fast paths in classify (#3) give what the plain code would."""

from __future__ import annotations

import itertools
from dataclasses import asdict, fields

import pytest
from conftest import make_obs

from gazeback.knowledge.classify import (
    Match,
    TrackerIndex,
    _suffixes,
    classify,
    is_ip_literal,
    load_index,
    normalize_host,
    request_url,
)
from gazeback.models import Classification


@pytest.fixture(scope="module")
def index() -> TrackerIndex:
    return load_index()


obs = make_obs


def reference_lookup(index: TrackerIndex, host: str) -> tuple[str, str, str] | None:
    """(tracker_id, matched_domain, source) by the plain suffix walk."""
    h = normalize_host(host)
    if not h or is_ip_literal(h):
        return None
    suffixes = _suffixes(h)
    for i, candidate in enumerate(suffixes):
        hit = index._all.get(candidate)
        if hit is None:
            continue
        tid, source = hit
        if tid:
            return tid, candidate, source
        for parent in suffixes[i + 1 :]:
            entity = index._domains.get(parent)
            if entity is not None and index.trackers[entity[0]]["is_tracker"]:
                return entity[0], parent, entity[1]
        return f"{source}:{candidate}", candidate, source
    return None


def test_lookups_match_the_plain_suffix_walk(index: TrackerIndex) -> None:
    domains = list(itertools.islice(index._domains, 0, None, 7))
    domains += list(itertools.islice(index._filters, 0, None, 23))
    fresh = index.uncached_copy()
    for d in domains:
        for host in (d, f"a.b.{d}", f"X.{d.upper()}.", f" {d}:443", f"nope-{d}"):
            m = fresh.lookup(host)
            got = None if m is None else (m.tracker_id, m.matched_domain, m.source)
            assert got == reference_lookup(fresh, host), host


@pytest.mark.parametrize("host", ["www.google-analytics.com", "stats.g.doubleclick.net"])
def test_fast_built_match_is_a_plain_match(index: TrackerIndex, host: str) -> None:
    m = index.lookup(host)
    assert m is not None
    plain = Match(**m.__dict__)
    assert m == plain and hash(m) == hash(plain)
    assert list(m.__dict__) == [f.name for f in fields(Match)]


def test_filter_rule_match_is_a_plain_match(index: TrackerIndex) -> None:
    host = next(d for d in index._filters if d not in index._domains)
    m = index.lookup(f"x.{host}")
    assert m is not None and m.tracker_id.endswith(f":{m.matched_domain}")
    assert m == Match(**m.__dict__)
    assert list(m.__dict__) == [f.name for f in fields(Match)]
    assert m.tracker_name == index.tracker(m.tracker_id)["name"]


@pytest.mark.parametrize(
    ("host", "path", "scheme"),
    [
        ("www.google-analytics.com", "/collect?v=1", "https"),
        ("WWW.Google-Analytics.COM.", "/collect", "https"),
        ("shop.example", "/analytics/collect?id=1", "https"),
        ("shop.example", "*", "https"),
        ("shop.example", "/pixel.gif", None),
        ("shop.example:8080", "/pixel.gif", "http"),
        ("203.0.113.7", "/g/collect", "https"),
    ],
)
def test_classify_agrees_with_match_url(
    index: TrackerIndex, host: str, path: str, scheme: str | None
) -> None:
    o = obs(host=host, path=path, scheme=scheme, request_headers=(("sec-fetch-dest", "image"),))
    c = classify(o, index)
    m = index.match_url(request_url(o), "", "image")
    assert (c.tracker_id, c.matched_domain, c.source) == (
        (m.tracker_id, m.matched_domain, m.source) if m else (None, None, None)
    )
    assert c == Classification(**asdict(c))


@pytest.mark.parametrize("with_index", [True, False])
def test_unattributed_classification_is_a_plain_one(index: TrackerIndex, with_index: bool) -> None:
    o = obs(host="cdn.nothing-known.org", referer="https://shop.example.net/")
    c = classify(o, index if with_index else None)
    assert c == Classification(registrable_domain="nothing-known.org", is_third_party=True)
