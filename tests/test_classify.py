from __future__ import annotations

import csv
import gzip
import json
from pathlib import Path

import pytest
import sqlite_utils
from conftest import make_obs

from gazeback.db import migrations
from gazeback.knowledge.classify import (
    TrackerIndex,
    classify,
    load_index,
    normalize_host,
    registrable_domain,
)

ACCURACY = Path(__file__).parent / "data" / "tracker_accuracy.csv"


@pytest.fixture(scope="session")
def tracker_index() -> TrackerIndex:
    return load_index()


@pytest.mark.parametrize(
    "host",
    [
        "www.google-analytics.com",
        "WWW.Google-Analytics.COM",
        "www.google-analytics.com.",
        "www.google-analytics.com:443",
        " www.google-analytics.com ",
    ],
)
def test_host_variants_classify_alike(tracker_index: TrackerIndex, host: str) -> None:
    m = tracker_index.lookup(host)
    assert m is not None
    assert (m.tracker_id, m.owner_id, m.matched_domain) == (
        "google_analytics",
        "alphabet",
        "google-analytics.com",
    )


@pytest.mark.parametrize(
    "host", ["192.168.1.10", "[2001:db8::1]", "[2001:db8::1]:443", "10.0.0.1:80", ""]
)
def test_ip_literals_and_empty_hosts_are_not_attributed(
    tracker_index: TrackerIndex, host: str
) -> None:
    assert tracker_index.lookup(host) is None
    assert registrable_domain(host) is None


def test_idn_unicode_and_punycode_are_the_same_host(tracker_index: TrackerIndex) -> None:
    assert normalize_host("BÜCHER.de.") == "xn--bcher-kva.de"
    assert registrable_domain("www.bücher.de") == registrable_domain("www.xn--bcher-kva.de")
    assert tracker_index.lookup("bücher.de") == tracker_index.lookup("xn--bcher-kva.de")


def test_parent_domain_walk_and_owner_chain(tracker_index: TrackerIndex) -> None:
    m = tracker_index.lookup("a.b.stats.g.doubleclick.net")
    assert m is not None
    assert (m.company_id, m.owner_id, m.owner_name, m.country) == (
        "google",
        "alphabet",
        "Alphabet Inc.",
        "US",
    )
    assert m.matched_domain == "doubleclick.net"
    assert "adguard" in m.sources


def test_versions_name_every_source(tracker_index: TrackerIndex) -> None:
    from gazeback.knowledge.build import PRECEDENCE

    assert set(tracker_index.versions()) == set(PRECEDENCE)


def test_url_rules_catch_tracking_paths_on_first_party_hosts(tracker_index: TrackerIndex) -> None:
    assert not tracker_index.lookup("www.google.com").is_tracker  # type: ignore[union-attr]
    m = tracker_index.match_url(
        "https://www.google.com/pagead/1p-conversion/1/", "https://shop.example/"
    )
    assert m is not None and m.is_tracker and m.source == "easyprivacy"
    assert m.owner_id == "alphabet"
    assert tracker_index.match_url("https://www.google.com/search?q=x").is_tracker is False  # type: ignore[union-attr]


def test_filter_list_host_rule_gets_parent_company(tracker_index: TrackerIndex) -> None:
    m = tracker_index.lookup("browser-intake-datadoghq.com")
    assert m is not None and m.source == "easyprivacy" and m.is_tracker
    assert m.tracker_id == "easyprivacy:browser-intake-datadoghq.com"


def test_rows_fit_the_schema(tracker_index: TrackerIndex) -> None:
    db = sqlite_utils.Database(memory=True)
    migrations.apply(db)
    for tid in (
        "google_analytics",
        "hotjar",
        "easyprivacy:browser-intake-datadoghq.com",
        "easyprivacy-url:google.com",
    ):
        rows = tracker_index.rows(tid)
        for table, table_rows in rows.items():
            assert {r for row in table_rows for r in row} <= set(db[table].columns_dict), table
            db[table].upsert_all(table_rows, pk="domain" if table == "tracker_domains" else "id")
    chain = [r["id"] for r in tracker_index.rows("hotjar")["companies"]]
    assert chain == ["hotjar", "contentsquare"]
    assert db["trackers"].get("hotjar")["category"] == "session_replay"
    assert json.loads(db["trackers"].get("hotjar")["sources"])[0] == "gazeback-overlay"


@pytest.mark.parametrize(
    "kw,expected",
    [
        ({}, None),  # app traffic: no page context, say so
        ({"sec_fetch_site": "same-site"}, False),
        ({"sec_fetch_site": "cross-site"}, True),
        ({"referer": "https://www.example.org/page"}, False),
        ({"referer": "https://news.example.net/"}, True),
        (
            {
                "host": "fonts.googleapis.com",
                "origin": "https://www.google.com",
                "sec_fetch_site": "cross-site",
            },
            False,
        ),
        ({"host": "www.google-analytics.com", "referer": "https://www.youtube.com/"}, False),
        ({"host": "www.google-analytics.com", "referer": "https://shop.example/"}, True),
        ({"host": "connect.facebook.net", "referer": "https://d1.cloudfront.net/"}, True),
    ],
)
def test_first_or_third_party(
    tracker_index: TrackerIndex, kw: dict[str, str], expected: bool | None
) -> None:
    obs = make_obs(**{"host": "cdn.example.org", **kw})
    assert classify(obs, tracker_index).is_third_party is expected


def test_classify_fills_tracker_fields(tracker_index: TrackerIndex) -> None:
    c = classify(make_obs(host="static.hotjar.com", path="/c/hotjar-1.js"), tracker_index)
    assert (c.tracker_id, c.company_id, c.owner_id, c.category, c.is_tracker, c.source) == (
        "hotjar",
        "hotjar",
        "contentsquare",
        "session_replay",
        True,
        "gazeback-overlay",
    )
    assert c.registrable_domain == "hotjar.com"


def test_classify_without_index_keeps_old_behaviour() -> None:
    c = classify(make_obs(host="static.hotjar.com"))
    assert (
        c.tracker_id is None and c.registrable_domain == "hotjar.com" and c.is_third_party is None
    )


def test_classify_ip_host_uses_sni_and_tunnel_uses_host_rules(tracker_index: TrackerIndex) -> None:
    c = classify(
        make_obs(host="142.250.1.1", tls_sni="www.google-analytics.com", path=None), tracker_index
    )
    assert c.tracker_id == "google_analytics"


def test_load_index_prefers_user_copy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    user = tmp_path / "gazeback" / "trackers"
    user.mkdir(parents=True)
    load_index.cache_clear()
    try:
        (user / "trackers.json.gz").write_bytes(b"not gzip")
        assert "adguard" in load_index().versions()  # broken copy: bundled data stays in use
        load_index.cache_clear()
        doc = {
            "format": 1,
            "sources": {"x": {"version": "7"}},
            "companies": {},
            "trackers": {},
            "domains": {},
        }
        (user / "trackers.json.gz").write_bytes(gzip.compress(json.dumps(doc).encode()))
        assert load_index().versions() == {"x": "7"}
    finally:
        load_index.cache_clear()


def _accuracy(index: TrackerIndex) -> dict[str, float | list[str]]:
    rows = list(csv.DictReader(ACCURACY.open(encoding="utf-8")))
    tp = fp = fn = tn = 0
    owner_checked = owner_ok = 0
    top50_wrong, fp_hosts = [], []
    for r in rows:
        m = index.lookup(r["host"])
        predicted = bool(m and m.is_tracker)
        actual = r["is_tracker"] == "1"
        tp += predicted and actual
        fp += predicted and not actual
        fn += actual and not predicted
        tn += not predicted and not actual
        if predicted and not actual:
            fp_hosts.append(r["host"])
        if r["expected_owner"]:
            owner_checked += 1
            ok = m is not None and m.owner_id == r["expected_owner"]
            owner_ok += ok
            if r["top50"] == "1" and not ok:
                top50_wrong.append(r["host"])
        elif r["top50"] == "1" and not predicted:
            top50_wrong.append(r["host"])
    return {
        "hosts": len(rows),
        "precision": tp / (tp + fp),
        "recall": tp / (tp + fn),
        "owner_agreement": owner_ok / owner_checked,
        "top50_wrong": top50_wrong,
        "false_positives": fp_hosts,
    }


def test_accuracy_targets(tracker_index: TrackerIndex) -> None:
    result = _accuracy(tracker_index)
    assert result["hosts"] >= 150
    assert result["top50_wrong"] == []
    assert result["false_positives"] == []  # no CDN or first-party host marked a tracker
    assert result["recall"] >= 0.95


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "192.168.1.20", "printer.local"])
def test_local_traffic_is_not_a_tracker(host):
    from mitmproxy.test import tflow

    from gazeback.capture.snapshot import snapshot_http
    from gazeback.knowledge.classify import classify, load_index
    from gazeback.pipeline import observe

    f = tflow.tflow(resp=True)
    f.request.url = f"http://{host}:18999/collect?ga=1"
    f.client_conn.sni = None  # plain HTTP: no server name
    obs = observe(snapshot_http(f), b"k" * 32)
    assert classify(obs, load_index()).is_tracker is False
