"""Importers: golden files for every fixture, rejected files, idempotency, transactions."""

import json

import pytest
from click.testing import CliRunner
from importgolden import DATA, describe, fixtures, fresh_db, golden_for, import_path

from gazeback.cli.imports import import_
from gazeback.imports import importers
from gazeback.imports.importers import Entry, Problem, Rejected, detect_format, guess_format

REJECTED = [
    ("not-a-har.har", "not a HAR file: it has no log.entries list"),
    ("cut-short.har", "not a HAR file: not valid JSON"),
    ("not-a-dump.mitm", "not a mitmproxy dump"),
    ("not-a-pcap.pcap", "not a pcap file: its 24-byte header is cut short"),
    ("not-a-report.ndjson", "not an App Privacy Report"),
    ("not-pihole.db", "not a Pi-hole FTL database: it has no queries table"),
]


@pytest.mark.parametrize("path", [pytest.param(p, id=p.name) for p in fixtures()])
def test_import_matches_golden(path):
    db = fresh_db()
    import_path(db, path)
    expected = json.loads(golden_for(path).read_text())
    assert describe(db) == expected


@pytest.mark.parametrize(
    "name,fmt",
    [("browse.har", "har"), ("browse.mitm", "mitm"), ("curl.pcap", "pcap"),
     ("curl.pcapng", "pcapng"), ("app-privacy-report.ndjson", "app-privacy-report"),
     ("querylog.json", "adguardhome"), ("pihole-FTL.db", "pihole"),
     ("not-a-report.ndjson", None), ("not-pihole.db", "pihole")],
)  # fmt: skip
def test_detect_format(name, fmt):
    assert detect_format((DATA / name).read_bytes()[:4096]) == fmt


@pytest.fixture
def trail(tmp_path):
    """`gazeback import` adds to a database that exists (it refuses to create one)."""
    import sqlite_utils

    from gazeback.db import migrations

    migrations.apply(sqlite_utils.Database(tmp_path / "t.db"))
    return tmp_path / "t.db"


def test_guess_format_falls_back_to_the_name():
    assert guess_format(b"hello", "x.har") == "har"
    assert guess_format(b"hello", "x.txt") is None


@pytest.mark.parametrize("name,why", REJECTED, ids=[n for n, _ in REJECTED])
def test_rejected_file_leaves_db_unchanged(tmp_path, trail, name, why):
    db_path = tmp_path / "t.db"
    result = CliRunner().invoke(
        import_, [str(db_path), str(DATA / "curl.pcap"), str(DATA / name), "-s"],
        catch_exceptions=False,
    )  # fmt: skip
    assert result.exit_code == 1
    assert f"{DATA / name}: rejected, nothing imported: {why}" in result.stderr
    import sqlite_utils

    db = sqlite_utils.Database(db_path)
    assert [r["file_name"] for r in db["captures"].rows] == ["curl.pcap"]
    assert db["import_problems"].count == 1  # curl.pcap's own unknown DNS type


def test_unrecognised_file_is_rejected(tmp_path, trail):
    junk = tmp_path / "notes.txt"
    junk.write_text("hello")
    result = CliRunner().invoke(import_, [str(tmp_path / "t.db"), str(junk), "-s"])
    assert result.exit_code == 1
    assert "its format is not recognised; name it with --format" in result.stderr


def test_second_import_is_a_no_op(tmp_path, trail):
    args = [str(tmp_path / "t.db"), str(DATA / "browse.har"), str(DATA / "curl.pcap"), "-s"]
    first = CliRunner().invoke(import_, args, catch_exceptions=False)
    assert first.exit_code == 0
    assert "browse.har: 10 requests imported as har (capture 1)" in first.output
    second = CliRunner().invoke(import_, args, catch_exceptions=False)
    assert second.exit_code == 0
    assert "browse.har: already imported (capture 1 on " in second.output
    assert "curl.pcap: already imported (capture 2 on " in second.output
    import sqlite_utils

    db = sqlite_utils.Database(tmp_path / "t.db")
    assert (db["captures"].count, db["requests"].count) == (2, 20)


def test_device_option_puts_everything_on_one_device(tmp_path, trail):
    args = [str(tmp_path / "t.db"), str(DATA / "querylog.json"), "--device", "phone", "-s"]
    assert CliRunner().invoke(import_, args, catch_exceptions=False).exit_code == 0
    import sqlite_utils

    db = sqlite_utils.Database(tmp_path / "t.db")
    assert list(db.query("select key, label from devices")) == [
        {"key": "user:phone", "label": "phone"}
    ]


def test_problems_are_summarised(tmp_path, trail):
    args = [str(tmp_path / "t.db"), str(DATA / "curl-truncated.pcap"), "-s"]
    result = CliRunner().invoke(import_, args, catch_exceptions=False)
    assert result.exit_code == 0
    assert "packet 56: the file ends inside this packet (truncated)" in result.output


def test_imports_reach_the_trail_view_with_classification_and_leaks():
    db = fresh_db()
    import_path(db, DATA / "curl.pcap")
    rows = {(r["kind"], r["host"]): r for r in db["trail"].rows}
    assert rows[("tunnel", "www.google-analytics.com")]["company"]
    assert rows[("tunnel", "www.google-analytics.com")]["is_decrypted"] == 0
    assert rows[("http", "tracker.example")]["leak_count"] == 1
    assert db["leak_report"].count == 2


def test_a_file_rejected_midway_is_rolled_back(monkeypatch):
    db = fresh_db()
    import_path(db, DATA / "browse.har")
    from gazeback.imports.flows import read_har

    good = list(read_har(open(DATA / "browse.har", "rb"), _src("x")))

    def half_then_reject(fp, src):
        yield from (replace_id(e, i) for i, e in enumerate(good[:3]))
        yield Problem("entry 3", "odd")
        raise Rejected("not what it claimed")

    monkeypatch.setattr(importers, "reader_for", lambda fmt: half_then_reject)
    before = describe(db)
    with pytest.raises(Rejected):
        import_path(db, DATA / "browse.mitm", "mitm")
    assert describe(db) == before


def _src(name):
    return importers.Source(name, "0" * 64)


def replace_id(entry, i):
    from dataclasses import replace

    return Entry(replace(entry.snap, flow_id=f"new:{i}"), entry.position)
