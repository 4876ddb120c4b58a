"""Issue #15, "Ask them": current-owner resolution, the first-party rule, the bundled
datenanfragen data, letters (golden files), deadlines with a fixed clock, the dashboard pages,
and the evidence annex holding only the identifiers the person chose."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
from datetime import UTC, date, datetime
from pathlib import Path
from urllib.parse import quote

import pytest
import sqlite_utils
from click.testing import CliRunner
from signin import signed_in

from gazeback.cli import cli
from gazeback.dashboard import demo
from gazeback.dashboard.serve import make_datasette
from gazeback.db import asks, migrations
from gazeback.db.identities import load_identities, load_key
from gazeback.knowledge import build as trackerbuild
from gazeback.knowledge import datenanfragen, letters
from gazeback.knowledge import trackerlists as tl
from gazeback.knowledge.classify import TrackerIndex, classify, load_index

ROOT = Path(__file__).resolve().parent.parent
GOLDEN = Path(__file__).parent / "ask" / "letters"
END = datetime(2026, 11, 27, tzinfo=UTC)
REGEN = os.environ.get("GAZEBACK_REGEN_GOLDEN") == "1"


def _script(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def index():
    return load_index()


@pytest.fixture(scope="module")
def directory():
    return datenanfragen.load()


@pytest.fixture(scope="module")
def trail(tmp_path_factory):
    path = tmp_path_factory.mktemp("ask") / "trail.db"
    demo.generate(path, scale=1500, seed=1, end=END)
    migrations.apply(sqlite_utils.Database(path))
    return path


# --- who holds it now ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "host,company,owner,was",
    [
        ("idsync.rlcdn.com", "LiveRamp Holdings, Inc.", "LiveRamp Holdings, Inc.", "Acxiom"),
        ("pixel.tapad.com", "Tapad, Inc.", "Experian plc", "Telenor Group"),
        ("search.spotxchange.com", "SpotX, Inc.", "Magnite, Inc.", "RTL Group"),
        ("ads.adap.tv", "Yahoo Inc.", "Apollo Global Management, Inc.", "Verizon"),
        ("pixel.advertising.com", "Yahoo Inc.", "Apollo Global Management, Inc.", "Verizon"),
        (
            "imagesrv.adition.com",
            "Virtual Minds GmbH",
            "Virtual Minds GmbH",
            "ProSiebenSat.1 Media",
        ),
        ("dmp.theadex.com", "Virtual Minds GmbH", "Virtual Minds GmbH", "ProSiebenSat.1 Media"),
        ("dynatrace.com", "Dynatrace, Inc.", "Dynatrace, Inc.", "Thoma Bravo"),
    ],
)
def test_trackers_resolve_to_their_current_owner_with_history(index, host, company, owner, was):
    m = index.lookup(host)
    assert (m.company_name, m.owner_name) == (company, owner)
    history = index.companies[m.company_id]["history"]
    assert history[-1]["previous_owner"] == was
    assert history[-1]["source_url"].startswith("https://")


def test_the_ownership_note_says_who_held_it_until_when(index):
    comp = asks.company(index, index.lookup("rlcdn.com").company_id)
    assert letters.ownership_note(comp) == "owned by Acxiom until 2018-10"


def _overlay_files(change: dict) -> dict[str, bytes]:
    files = _script("build_trackers").read_sources()
    doc = json.loads(files["gazeback-overlay/overlay.json"])
    doc["ownership_changes"] = [change]
    files["gazeback-overlay/overlay.json"] = json.dumps(doc).encode()
    return files


@pytest.mark.parametrize(
    "change,message",
    [
        ({"company": "x", "trackers": [], "date": "2020"}, "needs a public https source_url"),
        ({"company": "x", "date": "last year", "source_url": "https://e.example/"}, "date must be"),
        (
            {"company": "x", "trackers": ["no_such_tracker"], "date": "2020",
             "source_url": "https://e.example/"},
            "tracker 'no_such_tracker' is in no list",
        ),
    ],
)  # fmt: skip
def test_a_bad_ownership_change_stops_the_build_with_one_sentence(change, message):
    files = _overlay_files(change)
    with pytest.raises(ValueError, match=re.escape(message)):
        trackerbuild.build(files)


def test_the_bundled_contact_data_and_crosscheck_report_are_current():
    src = _script("build_datenanfragen").SRC
    if not src.is_dir():
        pytest.skip(f"{src} (the datenanfragen snapshot) is not on this machine")
    done = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "build_datenanfragen.py"), "--check"],
        capture_output=True, text=True,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert (ROOT / "src" / "gazeback" / "data" / "licenses" / "datenanfragen-CC0-1.0.txt").exists()


def test_owner_agreement_and_first_party_rule_on_the_labeled_capture(index):
    measure = _script("measure_ask")
    labels = measure.rows()
    hits, total, misses = measure.owner_agreement(index, labels)
    assert hits / total >= 0.97, misses
    share = measure.tracker_share(index, labels, rule=True)
    assert share["wrong"] == []
    old = measure.tracker_share(index, labels, rule=False)  # same knowledge, no first-party rule
    assert old["called"] > share["called"]


# --- first party and third-party services ------------------------------------------------


def _obs(url: str, mode: str, dest: str, site: str, page: str | None):
    row = {
        "page": page or "",
        "url": url,
        "fetch_mode": mode,
        "fetch_dest": dest,
        "fetch_site": site,
    }
    return _script("measure_ask").observation(row)


def test_a_page_opened_directly_is_first_party_even_from_a_link(index):
    c = classify(_obs("https://www.facebook.com/", "navigate", "document", "cross-site",
                      "https://news.example/"), index)  # fmt: skip
    assert c.is_third_party is False and c.owner_id == "meta"
    framed = classify(_obs("https://www.facebook.com/plugins/like.php", "navigate", "iframe",
                           "cross-site", "https://news.example/"), index)  # fmt: skip
    assert framed.is_third_party is True and framed.is_tracker


def test_payments_and_maps_are_services_unless_a_url_rule_says_they_track(index):
    script = classify(_obs("https://js.stripe.com/v3/", "no-cors", "script", "cross-site",
                           "https://shop.example/"), index)  # fmt: skip
    assert (script.category, script.is_tracker) == ("third_party_service", False)
    maps = classify(_obs("https://maps.googleapis.com/maps/api/js", "no-cors", "script",
                         "cross-site", "https://shop.example/"), index)  # fmt: skip
    assert not maps.is_tracker
    telemetry = classify(_obs("https://m.stripe.com/6", "cors", "empty", "cross-site",
                              "https://shop.example/"), index)  # fmt: skip
    assert telemetry.is_tracker and telemetry.source == "easyprivacy"


# --- letters --------------------------------------------------------------------------------

MAJOR = ["google-analytics.com", "connect.facebook.net", "static.criteo.net", "rlcdn.com",
         "api.amplitude.com", "api.mixpanel.com", "cdn.taboola.com", "scorecardresearch.com",
         "appsflyer.com", "bat.bing.com"]  # fmt: skip
EVIDENCE = letters.Evidence(
    first_seen="2026-11-20T08:00:00Z", last_seen="2026-11-27T21:00:00Z",
    devices=[("phone", 40), ("laptop", 2)], hosts=[("collect.example-tracker.com", 42)],
    kinds=[("ad_id", 40), ("email", 2)], persistent_ids=1, requests=42,
    learned=[("advertisingId", 40), ("viewedPage", 1)],  # the letter's language names them
)  # fmt: skip
CHOSEN = [letters.Identifier(4, "ad_id", "Advertising ID", "38400000-8cf0-11bd-b23e-10b96e40000d")]


@pytest.mark.parametrize("lang", ["en", "de", "fr"])
@pytest.mark.parametrize("host", MAJOR)
def test_letters_for_major_trackers_match_the_golden_files(index, directory, host, lang):
    m = index.lookup(host)
    comp = asks.company(index, m.company_id, [m.tracker_id])
    letter = letters.access_letter(directory, comp, EVIDENCE, CHOSEN, lang)
    assert letter.record is not None, f"{comp.name}: no datenanfragen record"
    golden = GOLDEN / f"{host}.{lang}.txt"
    if REGEN:
        golden.parent.mkdir(exist_ok=True)
        golden.write_text(letter.text(), encoding="utf-8")
    assert letter.text() == golden.read_text(encoding="utf-8")
    assert "{" not in letter.body and "[runs>" not in letter.body
    assert CHOSEN[0].value in letter.annex


def test_a_company_without_a_record_gets_a_letter_that_says_to_check_the_contact(index, directory):
    comp = asks.company(index, index.lookup("sdk.iad-01.braze.com").company_id)
    letter = letters.access_letter(directory, comp, EVIDENCE, [], "en")
    assert letter.record is None and letter.email is None
    assert letter.text().startswith("[CHECK THE CONTACT")
    assert "Article 15 GDPR" in letter.body
    assert letter.mailto() is None


def test_a_ccpa_letter_and_an_unknown_law(index, directory):
    comp = asks.company(index, "criteo", ["criteo"])
    letter = letters.access_letter(directory, comp, EVIDENCE, [], "en", "ccpa")
    assert "1798.110" in letter.body
    with pytest.raises(ValueError, match="gdpr, ccpa"):
        letters.access_letter(directory, comp, EVIDENCE, [], "en", "lgpd")


# --- deadlines with a fixed clock --------------------------------------------------------


@pytest.mark.parametrize(
    "sent,due",
    [(date(2026, 1, 31), date(2026, 2, 28)), (date(2026, 12, 15), date(2027, 1, 15)),
     (date(2024, 1, 30), date(2024, 2, 29)), (date(2026, 3, 1), date(2026, 4, 1))],
)  # fmt: skip
def test_the_answer_is_due_one_month_later(sent, due):
    assert letters.due_date(sent) == due


def test_requests_sent_become_due_overdue_then_call_for_reminder_and_complaint(trail):
    run = CliRunner().invoke
    db = ["--db", str(trail)]
    r = run(cli, ["request", "Segment", *db, "--mark-sent", "--on", "2026-10-01"])
    assert r.exit_code == 0, r.output
    assert "due by 2026-11-01" in r.output
    rid = sqlite_utils.Database(trail).execute("select max(id) from requests_sent").fetchone()[0]

    def listed(today: str) -> str:
        out = run(cli, ["request", *db, "--list", "--today", today])
        return next(line for line in out.output.splitlines() if line.strip().startswith(str(rid)))

    def status(today: str) -> str:
        return re.search(r"due \S+\s+(\w+)", listed(today))[1]

    assert status("2026-10-10") == "waiting"
    assert status("2026-10-28") == "due" and "reminder" not in listed("2026-10-28")
    assert status("2026-11-02") == "overdue" and f"--reminder {rid}" in listed("2026-11-02")
    reminder = run(cli, ["request", *db, "--reminder", str(rid), "--today", "2026-11-02"])
    assert "on 2026-10-01 I sent you a request according to Article 15 GDPR" in reminder.output
    assert run(cli, ["request", *db, "--reminded", str(rid), "--on", "2026-11-02"]).exit_code == 0
    assert "--complaint" not in listed("2026-11-10")
    assert f"--complaint {rid}" in listed("2026-11-16")
    complaint = run(cli, ["request", *db, "--complaint", str(rid), "--country", "ie"])
    assert (
        "Article 77 GDPR" in complaint.output and "Data Protection Commission" in complaint.output
    )
    assert run(cli, ["request", *db, "--answered", str(rid), "--on", "2026-11-20"]).exit_code == 0
    assert status("2026-12-01") == "answered"


def test_bad_input_says_what_is_wrong_and_records_nothing(trail):
    run = CliRunner().invoke
    db = ["--db", str(trail)]
    before = sqlite_utils.Database(trail)["requests_sent"].count
    r = run(cli, ["request", "No Such Company", *db, "--mark-sent"])
    assert r.exit_code == 1 and "not among the companies in this trail" in r.output
    r = run(cli, ["request", "Braze", *db, "--include", "2", "--mark-sent"])
    assert r.exit_code == 1 and "identity 2 was not received by this company" in r.output
    r = run(cli, ["request", *db, "--answered", "999"])
    assert r.exit_code == 1 and "no sent request with id 999" in r.output
    assert sqlite_utils.Database(trail)["requests_sent"].count == before


# --- the evidence annex holds only what the person chose --------------------------------


def test_the_annex_never_holds_an_identifier_the_person_did_not_choose(trail):
    db = sqlite_utils.Database(trail)
    values = {v.id: v.value for v in load_identities(db, load_key(trail))}
    received = [
        r["id"]
        for r in asks.received_identities(db, asks.resolve(db, load_index(), "Amplitude")[1])
    ]
    assert len(received) >= 2
    run = CliRunner().invoke
    for chosen in ([], [received[0]], received[1:], received):
        args = [x for i in chosen for x in ("--include", str(i))]
        for fmt in ("text", "mailto", "html"):
            r = run(cli, ["request", "Amplitude", "--db", str(trail), "--format", fmt, *args])
            assert r.exit_code == 0, r.output
            letter = r.stdout
            for i, value in values.items():
                shown = value in letter or quote(value) in letter
                assert shown == (i in chosen), (fmt, chosen, i)
    ids = set(db.execute("select * from requests_sent").fetchall())
    assert all(v not in repr(ids) for v in values.values())


# --- the dashboard ------------------------------------------------------------------------


async def test_the_company_page_button_and_the_letter_page(trail):
    ds = await signed_in(make_datasette(trail))
    page = await ds.client.get("/-/dashboards/company", params={"company": "Braze, Inc."})
    assert page.status_code == 200
    r = await ds.client.get("/-/gazeback/ask", params={"company": "Braze, Inc."})
    assert r.status_code == 200, r.text
    assert "Ask them what they know: Braze" in r.text and "CHECK THE CONTACT" in r.text
    assert r.text.count('type="checkbox" name="include"') == 3 and " checked" not in r.text
    values = {v.id: v.value for v in load_identities(sqlite_utils.Database(trail), load_key(trail))}
    assert not any(v in r.text for v in values.values())
    chosen = await ds.client.get("/-/gazeback/ask?company=Braze%2C+Inc.&include=1&format=html")
    assert chosen.status_code == 200 and values[1] in chosen.text
    assert values[3] not in chosen.text
    missing = await ds.client.get("/-/gazeback/ask", params={"company": "Nobody"})
    assert missing.status_code == 400 and "not among the companies" in missing.text


async def test_recording_a_request_as_sent_from_the_dashboard(trail):
    ds = await signed_in(make_datasette(trail))
    r = await ds.client.get("/-/gazeback/ask", params={"company": "Criteo"})
    token = re.search(r'name="csrftoken" value="([^"]+)"', r.text)[1]
    csrf_cookie = r.headers["set-cookie"].split(";", 1)[0]
    before = sqlite_utils.Database(trail)["requests_sent"].count
    posted = await ds.client.post(
        "/-/gazeback/requests",
        data={"csrftoken": token, "company": "criteo", "lang": "en", "law": "gdpr",
              "method": "email", "on": "2026-10-01"},
        headers={"cookie": f"{ds.client._cookie}; {csrf_cookie}"},
    )  # fmt: skip
    assert posted.status_code == 302, posted.text
    assert sqlite_utils.Database(trail)["requests_sent"].count == before + 1
    listing = await ds.client.get("/-/gazeback/requests")
    assert (
        "Criteo" in listing.text
        and "overdue" in listing.text
        and "Write the reminder" in listing.text
    )


def test_the_bundled_artifact_is_used_and_reads_back(directory):
    assert len(directory.companies) > 3000 and len(directory.authorities) > 50
    assert set(datenanfragen.LANGUAGES) <= set(directory.templates)
    doc = tl.read_artifact(tl.bundled_path())
    assert TrackerIndex(doc).lookup("rlcdn.com").company_id == "liveramp"


def test_every_property_an_adapter_reports_has_a_name_in_each_annex_language():
    """A letter names what the company received in the letter's language (TrackHAR's English
    and German names, gazeback's French), never a raw key or the dashboard's words."""
    import yaml

    import gazeback

    props = set()
    for path in (Path(gazeback.__file__).parent / "knowledge" / "adapters").glob("*.yaml"):
        for adapter in yaml.safe_load(path.read_text())["adapters"]:
            props |= set(adapter.get("properties") or {})
    assert len(props) > 40
    for lang in ("en", "de", "fr"):
        names = {p: letters.property_name(p, lang) for p in props}
        assert not [p for p, n in names.items() if n == p], lang
    assert letters.property_name("deviceId", "de") == "Eindeutige ID für das Gerät"
    assert letters.property_name("deviceId", "es") == "Unique device ID"  # English annex
