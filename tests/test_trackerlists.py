from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from gazeback.knowledge import build as trackerbuild
from gazeback.knowledge import trackerlists

ROOT = Path(__file__).resolve().parent.parent
SRC = ROOT / "data" / "trackers-src"


def _build_script():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location(
        "build_trackers", ROOT / "scripts" / "build_trackers.py"
    )
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_shipped_artifacts_equal_a_fresh_build() -> None:
    out = _build_script().outputs(SRC)
    for name, data in out.items():
        assert (ROOT / "src" / "gazeback" / "data" / name).read_bytes() == data, name


def test_build_is_deterministic() -> None:
    files = _build_script().read_sources(SRC)
    assert trackerbuild.build(files) == trackerbuild.build(dict(reversed(files.items())))


def test_attribution_lists_every_source_and_licence() -> None:
    text = (ROOT / "src" / "gazeback" / "data" / "ATTRIBUTION.md").read_text()
    for meta in trackerbuild.SOURCES.values():
        assert meta["licence"] in text and meta["attribution"] in text
    for source in trackerbuild.RAW_FILES:
        folder = SRC / trackerbuild.RAW_FILES[source][0].split("/")[0]
        assert (folder / "SOURCE.md").exists()


ADGUARD_OK = {
    "timeUpdated": "2026-07-20T11:02:11.184Z",
    "categories": {"4": "advertising", "9": "cdn"},
    "trackers": {"ad": {"name": "Ad", "categoryId": 4, "companyId": "adco"}},
    "trackerDomains": {f"d{i}.example": "ad" for i in range(1000)},
}


def _adguard(**patch: object) -> bytes:
    return json.dumps({**ADGUARD_OK, **patch}).encode()


def test_parse_adguard_trackers() -> None:
    layer = trackerlists.parse_adguard_trackers(_adguard())
    assert layer.version == "2026-07-20"
    assert layer.trackers[0]["category"] == "advertising"
    assert layer.domains[0] == ("d0.example", "ad")


@pytest.mark.parametrize(
    "parser,data,message",
    [
        (
            trackerlists.parse_adguard_trackers,
            b'{"trackers": ',
            r"adguard-companiesdb/trackers\.json: not valid JSON",
        ),
        (
            trackerlists.parse_adguard_trackers,
            _adguard(trackerDomains={"a.example": "ad"}),
            r"only 1 tracker domains.*truncated",
        ),
        (
            trackerlists.parse_adguard_trackers,
            _adguard(trackers={"ad": {"name": "Ad", "categoryId": 99}}),
            r"trackers\.json tracker 'ad': unknown categoryId 99",
        ),
        (
            trackerlists.parse_adguard_trackers,
            _adguard(trackerDomains={**ADGUARD_OK["trackerDomains"], "bad host!": "ad"}),  # type: ignore[dict-item]
            r"trackerDomains 'bad host!'.*not a host name",
        ),
        (
            trackerlists.parse_adguard_trackers,
            _adguard(trackerDomains={**ADGUARD_OK["trackerDomains"], "x.example": "nope"}),  # type: ignore[dict-item]
            r"trackerDomains 'x\.example': tracker 'nope' is not defined",
        ),
        (trackerlists.parse_third_party_web, b"[]", r"entities-nostats\.json: only 0 entities"),
        (
            trackerlists.parse_webxray,
            b'[{"id": 1, "parent_id": 7, "owner_name": "X"}]',
            r"owner 1: parent_id 7",
        ),
        (
            trackerlists.parse_whotracksme,
            b"CREATE TABLE broken(",
            r"whotracksme-2022/trackerdb\.sql",
        ),
        (
            lambda d: trackerlists.parse_filter_list(d, "easyprivacy"),
            b"||a.example^\n",
            r"easyprivacy\.txt: line 1",
        ),
        (
            lambda d: trackerlists.parse_filter_list(d, "easyprivacy"),
            b"[Adblock Plus 2.0]\n||a.example^\n",
            r"easyprivacy\.txt: only 1 domain rules",
        ),
        (
            trackerlists.parse_overlay,
            b'{"trackers": [{"id": "x", "category": "advertising", "domains": []}]}',
            r"overlay\.json trackers #0 'x': every overlay entry needs a public https source_url",
        ),
        (
            trackerlists.parse_overlay,
            b'{"trackers": [{"id": "x", "category": "spying", "source_url": "https://e.org"}]}',
            r"category 'spying' not in taxonomy",
        ),
    ],
)
def test_parse_errors_name_file_and_entry(parser, data: bytes, message: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValueError, match=message):
        parser(data)


def test_parse_filter_list_splits_host_and_url_rules() -> None:
    lines = ["[Adblock Plus 2.0]", "! Last modified: Sat, 22 Aug 2026 07:18:10 +0000"]
    lines += [f"||t{i}.example^$third-party" for i in range(1000)]
    lines += ["/analytics/collect?", "example.org##.ad", "@@||ok.example/a.js$script"]
    layer = trackerlists.parse_filter_list("\n".join(lines).encode(), "easyprivacy")
    assert layer.version == "2026-08-22"
    assert len(layer.domains) == 1000
    assert layer.url_rules == ["/analytics/collect?", "@@||ok.example/a.js$script"]


@pytest.mark.parametrize(
    "value,expected", [("uk", "GB"), ("us", "US"), ("DE ", "DE"), ("USA", None), (None, None)]
)
def test_country_code(value: object, expected: str | None) -> None:
    assert trackerlists.country_code(value) == expected


@pytest.mark.parametrize(
    "name,key",
    [
        ("Google LLC", "google"),
        ("Criteo SA", "criteo"),
        ("Index Exchange, Inc. ", "index_exchange"),
    ],
)
def test_norm_name(name: str, key: str) -> None:
    assert trackerbuild.norm_name(name) == key


def test_owner_of_is_cycle_safe() -> None:
    companies = {"a": {"parent_id": "b"}, "b": {"parent_id": "a"}}
    assert trackerbuild.owner_of("a", companies) == "b"


def test_read_artifact_rejects_garbage(tmp_path: Path) -> None:
    bad = tmp_path / "trackers.json.gz"
    bad.write_bytes(b"\x1f\x8b truncated")
    with pytest.raises(ValueError, match="cannot read tracker artifact"):
        trackerlists.read_artifact(bad)
