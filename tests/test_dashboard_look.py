"""Every dashboard page as a person sees it, in Debian's headless Chromium: the numbers on a
page agree with the database and with each other, axe-core finds no serious or critical
accessibility problem, axes and times read right, and a screenshot of each page is written
(to $GAZEBACK_SCREENSHOTS, e.g. docs/screenshots, or the test's tmp folder).

scripts/screenshots.py does the visiting; this file checks what it saw.
"""

import importlib.util
import os
import re
import sqlite3
import sys
from datetime import date
from pathlib import Path

import pytest
from conftest import ROOT

spec = importlib.util.spec_from_file_location("screenshots", ROOT / "scripts" / "screenshots.py")
screenshots = importlib.util.module_from_spec(spec)
sys.modules["screenshots"] = screenshots  # its dataclass looks itself up there
spec.loader.exec_module(screenshots)

pytestmark = pytest.mark.skipif(screenshots.chromium() is None, reason="chromium is not installed")


@pytest.fixture(scope="module")
def trails(tmp_path_factory):
    return screenshots.build(tmp_path_factory.mktemp("trails"))


@pytest.fixture(scope="module")
def pages(trails, tmp_path_factory):
    pytest.importorskip("playwright.sync_api")
    pytest.importorskip("axe_playwright_python")
    asked = os.environ.get("GAZEBACK_SCREENSHOTS")  # e.g. docs/screenshots: small PNGs
    out = Path(asked or tmp_path_factory.mktemp("shots"))
    return {p.name: p for p in screenshots.run(out, trails, small=bool(asked))}


@pytest.fixture(scope="module")
def forms(trails, tmp_path_factory):
    """The plugin's own pages (templates, not dashboards), with one request marked sent."""
    pytest.importorskip("playwright.sync_api")
    pytest.importorskip("axe_playwright_python")
    import sqlite_utils

    from gazeback.db import asks
    from gazeback.knowledge.classify import load_index

    db = sqlite_utils.Database(trails["demo"])
    company, _ = asks.resolve(db, load_index(), "Meta Platforms, Inc.")
    asks.mark_sent(db, company, None, "gdpr", "en", "email", date(2026, 9, 1))
    db.close()
    out = tmp_path_factory.mktemp("forms")
    return {p.name: p for p in screenshots.run(out, trails, screenshots.FORMS, small=False)}


def number(text):
    return int(text.strip().replace(",", "").rstrip(" %"))


def test_every_page_is_drawn_offline_without_errors(pages):
    assert set(pages) == {name for name, _, _ in screenshots.PAGES}
    for page in pages.values():
        assert page.errors == [], page.name
        assert page.outside == [], page.name


def test_no_serious_or_critical_accessibility_problem(pages):
    """axe-core (Deque's rules, WCAG 2 A/AA and best practices) on every dashboard page."""
    found = {
        p.name: [(v["id"], v["nodes"][:2]) for v in p.serious] for p in pages.values() if p.serious
    }
    assert found == {}


def test_the_plugins_own_pages_have_no_serious_accessibility_problem(forms):
    """axe-core on "Ask them", the requests sent and the experiment form (Jinja templates)."""
    assert set(forms) == {name for name, _, _ in screenshots.FORMS}
    for page in forms.values():
        assert page.errors == [] and page.outside == [], page.name
        assert page.png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", page.name
    found = {p.name: [(v["id"], v["nodes"][:2]) for v in p.serious] for p in forms.values()}
    assert found == {"ask": [], "requests": [], "experiment": []}
    assert any("/-/gazeback/ask?followup=admonition" in u for u in forms["requests"].links)


def test_screenshots_are_drawn_and_the_checked_in_ones_small(pages):
    for page in pages.values():
        assert page.png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", page.png
    for png in (ROOT / "docs" / "screenshots").glob("*.png"):
        assert png.stat().st_size <= 200 * 1024, png
    assert {p.stem for p in (ROOT / "docs" / "screenshots").glob("*.png")} == set(pages)


def test_the_numbers_on_the_trail_page_agree_with_the_database(pages, trails):
    """Each number card and the one-sentence summary, computed here straight from the
    requests, trackers and leaks tables, is what the page shows; the sentence's top
    companies are the first bars of the chart below it."""
    for name, trail in (("trail", "demo"), ("one-hour", "hour")):
        shown = pages[name].texts
        db = sqlite3.connect(trails[trail])
        one = lambda sql, db=db: db.execute(sql).fetchone()[0]  # noqa: E731
        n = one("select count(*) from requests")
        trackers = one(
            "select count(*) from requests r join trackers t on t.id = r.tracker_id "
            "where t.is_tracker"
        )
        companies = one(
            "select count(distinct t.company_id) from requests r "
            "join trackers t on t.id = r.tracker_id where t.is_tracker"
        )
        leaks = one("select count(*) from leaks")
        devices = one("select count(distinct device_id) from requests")
        closed = one("select count(*) from requests where not is_decrypted")
        reached = one(
            "select count(distinct t.company_id) from leaks l join requests r on r.id = "
            "l.request_id join trackers t on t.id = r.tracker_id"
        )
        top = db.execute(
            "select c.name, count(*) as k from requests r join trackers t on t.id = r.tracker_id "
            "join companies c on c.id = t.company_id group by c.id order by k desc, c.name "
            "limit 3"
        ).fetchall()
        # what the company told the most learned (#14): straight from learned_items
        learned = db.execute(
            "select coalesce(c.name, l.company), count(distinct l.request_id) as k "
            "from learned_items l join requests r on r.id = l.request_id "
            "left join trackers t on t.id = r.tracker_id left join companies c on c.id = t.company_id "
            "group by 1 order by k desc limit 1"
        ).fetchone()
        db.close()
        assert number(shown["requests"].splitlines()[0]) == n
        assert number(shown["tracker-share"].splitlines()[0]) == round(100 * trackers / n)
        assert number(shown["companies"].splitlines()[0]) == companies
        assert number(shown["leaks"].splitlines()[0]) == leaks
        assert number(shown["devices"].splitlines()[0]) == devices
        assert number(shown["not-decrypted"].splitlines()[0]) == round(100 * closed / n)
        most = ", ".join(f"{c} ({round(100 * k / n)} %)" for c, k in top)
        sentence = (
            f"{n:,} requests left your {devices} devices. {companies} tracking companies "
            f"received some of them. Most went to {most} of all requests. Your own personal "
            f"data reached {reached} companies."
        )
        if learned:
            times = "time" if learned[1] == 1 else "times"
            assert shown["headline"].strip().startswith(f"{sentence} {learned[0]} received ")
            assert shown["headline"].strip().endswith(f" — {learned[1]:,} {times}.")
        else:
            assert shown["headline"].strip() == sentence
        # the chart right below: its first three bars are the sentence's three companies
        bars = pages[name].tables["top-companies"]
        assert [row[0] for row in bars[1:4]] == [c for c, _ in top], bars[:4]


def test_axes_show_whole_numbers_and_no_time_twice(pages):
    checked = 0
    for page in pages.values():
        for chart, axes in page.axes.items():
            for labels in axes:
                assert len(labels) == len(set(labels)), (page.name, chart, labels)
                assert not [x for x in labels if re.fullmatch(r"[\d,]*\.\d+", x)], (
                    page.name,
                    chart,
                    labels,
                )
                checked += 1
    assert checked > 20
    # one hour of data: the time axis names hours of this computer's zone, each once
    (time_axis,) = [a for a in pages["one-hour"].axes["timeline"] if a and ":" in a[0]]
    assert all(re.fullmatch(r"\d\d:00", x) for x in time_axis), time_axis
    # the room's bars count phones (two): 0, 1, 2
    assert ["0", "1", "2"] in pages["room"].axes["w-companies-list"]


def test_times_are_in_this_computers_zone_and_say_which(pages):
    """The browser runs in Europe/Berlin: the host page's latest requests show CET times."""
    recent = pages["host"].texts["h-recent"]
    assert "CET" in recent and not re.search(r"\d\d:\d\d:\d\d(\.\d+)?Z", recent)
    assert "Time (Europe/Berlin)" in pages["trail"].texts["timeline"]


def test_words_a_person_reads(pages):
    for page in pages.values():
        text = page.header + "\n".join(page.texts.values())
        assert "`" not in text, page.name  # code is shown as code, not backticks
        for jargon in ("pinning", "decimal4", "leak_count", "is_decrypted", "G1", "Verdict"):
            assert jargon not in text, (page.name, jargon)
    connect = pages["connect"]
    assert "gazeback device add phone" in connect.header
    steps = re.findall(r"Step (\d) — ", "\n".join(connect.titles + list(connect.texts.values())))
    assert sorted(set(steps)) == ["1", "2", "3"]


def test_connect_page_without_a_device_says_what_to_do(pages):
    # the demo trail has no device added with `gazeback device add`: step 1 says how
    assert "No device yet" in pages["connect"].texts["qr"]
    assert "gazeback device add phone" in pages["connect"].texts["qr"]


def test_the_room_view_shows_no_ones_rows(pages):
    """The big screen links to nothing that lists one participant's requests."""
    room = pages["room"]
    assert not [u for u in room.links if re.search(r"/trail(/|\?|$)|/-/dashboards/(?!workshop)", u)]
    assert number(room.texts["w-joined"]) == 2
    assert "Google" in room.texts["w-companies-list"]


def test_the_keyboard_reaches_every_number_and_every_chart_table(pages):
    """Tab alone reaches each number card's link and each chart's table (whose first
    column links where the chart's bars do)."""
    stops = set(pages["trail"].tab_stops)
    for card in ("requests", "tracker-share", "companies", "leaks", "devices", "not-decrypted"):
        assert f"chart-{card}:a" in stops, (card, sorted(stops))
    for chart in ("timeline", "top-companies", "learned", "devices-companies", "countries"):
        assert f"chart-{chart}:summary" in stops, (chart, sorted(stops))
