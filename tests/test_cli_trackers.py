from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlite_utils
from click.testing import CliRunner

from gazeback.cli.trackers import reclassify, trackers
from gazeback.db import migrations
from gazeback.knowledge.classify import load_index

SRC = Path(__file__).resolve().parent.parent / "data" / "trackers-src"


@pytest.fixture(autouse=True)
def data_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    load_index.cache_clear()
    yield tmp_path / "xdg" / "gazeback" / "trackers"
    load_index.cache_clear()


def test_info_shows_sources_versions_and_licences() -> None:
    result = CliRunner().invoke(trackers, ["info"], catch_exceptions=False)
    assert result.exit_code == 0
    assert "bundled with gazeback" in result.output
    for fragment in (
        "adguard",
        "2026-07-20",
        "CC-BY-SA-4.0",
        "easyprivacy",
        "webXray (Timothy Libert)",
    ):
        assert fragment in result.output


@pytest.mark.parametrize(
    "arg,fragment",
    [
        ("stats.g.doubleclick.net", "owner_name           Alphabet Inc."),
        ("https://static.hotjar.com/c/hotjar-1.js", "session_replay"),
        ("https://www.google.com/pagead/1p-conversion/1/", "easyprivacy"),
        ("www.example.com", "not in any tracker list"),
    ],
)
def test_lookup(arg: str, fragment: str) -> None:
    result = CliRunner().invoke(trackers, ["lookup", arg], catch_exceptions=False)
    assert result.exit_code == 0
    assert fragment in result.output


def test_lookup_json() -> None:
    result = CliRunner().invoke(
        trackers, ["lookup", "--json", "connect.facebook.net"], catch_exceptions=False
    )
    answer = json.loads(result.output)
    assert (answer["owner_id"], answer["source"], answer["is_tracker"]) == ("meta", "adguard", True)


def test_update_from_file_swaps_in_new_data(tmp_path: Path, data_home: Path) -> None:
    text = (SRC / "easylist" / "easyprivacy.txt").read_text()
    text = text.replace("! Last modified: Sat, 22 Aug 2026", "! Last modified: Sun, 23 Aug 2026")
    new = tmp_path / "easyprivacy.txt"
    new.write_text(text + "||brand-new-tracker.example^\n")
    result = CliRunner().invoke(
        trackers, ["update", "--from-file", str(new)], catch_exceptions=False
    )
    assert result.exit_code == 0, result.output
    assert "easyprivacy" in result.output and "2026-08-23" in result.output
    assert {p.name for p in data_home.iterdir()} == {
        "trackers.json.gz",
        "sources.json.gz",
        "update.json",
    }
    index = load_index()
    assert index.versions()["easyprivacy"] == "2026-08-23"
    assert index.lookup("x.brand-new-tracker.example") is not None


@pytest.mark.parametrize(
    "name,content,message",
    [
        (
            "easyprivacy.txt",
            "[Adblock Plus 2.0]\n||a.example^\n",
            "easylist/easyprivacy.txt: only 1 domain rules",
        ),
        ("trackers.json", '{"trackers": {', "adguard-companiesdb/trackers.json: not valid JSON"),
        ("hosts.txt", "0.0.0.0 a.example", "hosts.txt: not a file update knows"),
    ],
)
def test_update_failure_keeps_previous_data(
    tmp_path: Path, data_home: Path, name: str, content: str, message: str
) -> None:
    bad = tmp_path / name
    bad.write_text(content)
    result = CliRunner().invoke(trackers, ["update", "--from-file", str(bad)])
    assert result.exit_code == 1
    assert message in result.output
    assert "previous tracker data is still in use" in result.output
    assert not data_home.exists()


def test_reclassify(tmp_path: Path) -> None:
    path = tmp_path / "trail.db"
    db = sqlite_utils.Database(path)
    migrations.apply(db)
    db["captures"].insert({"id": 1, "source": "har", "tracker_list_versions": "{}"})
    db["devices"].insert({"id": 1, "key": "ip:10.0.0.2", "label": "phone"})
    base = {
        "capture_id": 1,
        "device_id": 1,
        "kind": "http",
        "started_at": "2026-11-27T06:00:00Z",
        "scheme": "https",
    }
    db["requests"].insert_all(
        [
            {
                **base,
                "id": 1,
                "flow_id": "a",
                "host": "www.google-analytics.com",
                "path": "/g/collect?v=2",
            },
            {**base, "id": 2, "flow_id": "b", "host": "www.example.com", "path": "/"},
            {
                **base,
                "id": 3,
                "flow_id": "c",
                "host": "142.250.1.1",
                "tls_sni": "static.hotjar.com",
                "kind": "tunnel",
            },
            {
                **base,
                "id": 4,
                "flow_id": "d",
                "host": "www.google.com",
                "path": "/pagead/1p-conversion/1/",
            },
        ]
    )
    result = CliRunner().invoke(reclassify, [str(path)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "4 requests, 4 changed, 3 trackers (3 new to this database)" in result.output
    rows = {r["id"]: (r["tracker_id"], r["registrable_domain"]) for r in db["requests"].rows}
    assert rows == {
        1: ("google_analytics", "google-analytics.com"),
        2: (None, "example.com"),
        3: ("hotjar", "hotjar.com"),
        4: ("easyprivacy-url:google.com", "google.com"),
    }
    assert db["companies"].get("google")["owner_id"] == "alphabet"
    assert db["companies"].get("alphabet")["country"] == "US"
    assert db["tracker_domains"].get("google-analytics.com")["tracker_id"] == "google_analytics"
    assert json.loads(db["captures"].get(1)["tracker_list_versions"])["adguard"] == "2026-07-20"
    trail = {r["request_id"]: r for r in db["trail"].rows}
    assert (
        trail[3]["company"],
        trail[3]["owner"],
        trail[3]["category"],
        trail[3]["is_tracker"],
    ) == ("Hotjar", "Contentsquare", "session_replay", 1)
    again = CliRunner().invoke(reclassify, [str(path)], catch_exceptions=False)
    assert "0 changed" in again.output
