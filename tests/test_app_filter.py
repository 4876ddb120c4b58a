"""The app filter on every dashboard (#17): one device, two iOS apps through the real proxy;
the summaries carry the app and agree with a recount of `requests` after every kind of write."""

import functools
import json
import re
import shutil
import sqlite3
from collections import Counter
from datetime import UTC, datetime, timedelta

import httpx
import pytest
import sqlite_utils
from click.testing import CliRunner
from conftest import start_proxy
from datasette_dashboards import replace_opts_in_query
from signin import signed_in

from gazeback.cli.summary import summary as summary_command
from gazeback.dashboard import serve
from gazeback.db import migrations, store, summaries
from gazeback.db.identities import add_identity, load_key

EMAIL = "alex.gaze@example.org"
INSTAGRAM = "Instagram/312.0 CFNetwork/1494.0.7 Darwin/23.4.0"
WEATHER = "Weather/5.2 CFNetwork/1494.0.7 Darwin/23.4.0"
SENT = [  # (user agent, URL, times)
    (INSTAGRAM, f"https://graph.facebook.com/v19.0/act/events?em={EMAIL}", 3),
    (INSTAGRAM, "https://www.google-analytics.com/collect?v=1&t=pageview", 2),
    (WEATHER, "https://app-measurement.com/a?app=weather", 2),
    (WEATHER, f"https://t.appsflyer.com/api/v6.3/iosevent?email={EMAIL}", 1),
    ("curl/8.5", "https://www.google-analytics.com/collect?v=1&t=event", 1),
]
BOARDS = ("trail", "company", "device", "host", "apps")


@pytest.fixture(scope="module")
def trail(tmp_path_factory, upstream):
    """The trail of one phone running Instagram and a weather app, captured by mitmdump."""
    tmp = tmp_path_factory.mktemp("appfilter")
    path = tmp / "data" / "trail.db"
    path.parent.mkdir()
    db = sqlite_utils.Database(path)
    migrations.apply(db)
    add_identity(db, load_key(path, create=True), "email", EMAIL)
    db.close()
    proxy = start_proxy(tmp, upstream)
    try:
        with httpx.Client(proxy=proxy.url, verify=str(proxy.ca), timeout=10) as client:
            for agent, url, times in SENT:
                for _ in range(times):
                    client.get(url, headers={"User-Agent": agent})
    finally:
        assert proxy.stop() == 0
    return path


def copy_of(path, tmp_path):
    out = tmp_path / "trail.db"
    shutil.copy(path, out)
    shutil.copy(path.with_name(path.name + ".key"), out.with_name(out.name + ".key"))
    return out


def recount(conn, app=None):
    """Requests, personal data found and tracking companies of one app, from the rows."""
    where = "" if app is None else "where coalesce(r.app, '') = ?"
    args = [] if app is None else [app]
    n = conn.execute(f"select count(*) from requests r {where}", args).fetchone()[0]
    leaks = conn.execute(
        f"select count(*) from leaks l join requests r on r.id = l.request_id {where}", args
    ).fetchone()[0]
    companies = {
        row[0]
        for row in conn.execute(
            "select distinct c.name from requests r join trackers t on t.id = r.tracker_id "
            f"join companies c on c.id = t.company_id {where or 'where 1'} and t.is_tracker = 1",
            args,
        )
    }
    return n, leaks, companies


COUNTS = ("requests", "leaks", "request_bytes", "response_bytes")


def assert_summaries_agree(conn):
    """Every key of both summary tables against a count made here from requests and leaks."""
    hourly, by_leak = Counter(), Counter()
    keys = {}
    for r in conn.execute(
        "select id, substr(started_at, 1, 13), coalesce(device_id, 0), coalesce(app, ''), host, "
        "coalesce(tracker_id, ''), kind, coalesce(is_decrypted, 0), "
        "coalesce(request_bytes, 0), coalesce(response_bytes, 0) from requests"
    ):
        key = r[1:8]
        keys[r[0]] = key
        hourly[(*key, "requests")] += 1
        hourly[(*key, "request_bytes")] += r[8]
        hourly[(*key, "response_bytes")] += r[9]
    for rid, pii, chain, where in conn.execute(
        "select request_id, pii_type, coalesce(transform_chain, ''), coalesce(location, '') "
        "from leaks"
    ):
        hourly[(*keys[rid], "leaks")] += 1
        h, device, app, host, tracker = keys[rid][:5]
        by_leak[(h, device, app, host, tracker, pii, chain, where)] += 1
    got = Counter()
    for r in conn.execute(
        "select hour, device_id, app, host, tracker_id, kind, is_decrypted, requests, leaks, "
        "request_bytes, response_bytes from summary_hourly"
    ):
        for name, value in zip(COUNTS, r[7:], strict=True):
            got[(*r[:7], name)] += value
    # a negative count (a trigger subtracting twice) would show here: only zeros are dropped
    assert {k: v for k, v in got.items() if v} == {k: v for k, v in hourly.items() if v}
    got_leaks = Counter(
        {tuple(r[:8]): r[8] for r in conn.execute("select * from summary_leaks where leaks != 0")}
    )
    assert got_leaks == by_leak


@functools.cache
def boards():
    return serve.dashboard_metadata("trail")["plugins"]["datasette-dashboards"]


async def chart(ds, board, name, opts):
    c = boards()[board]["charts"][name]
    sql = replace_opts_in_query(c["query"], opts)
    r = await ds.client.get("/trail.json", params={"sql": sql, "_shape": "objects", **opts})
    assert r.status_code == 200, r.text
    return r.json()["rows"]


def number(html: str) -> int:
    return int(re.search(r">([\d,]+)</a>", html).group(1).replace(",", ""))


def test_the_proxy_wrote_each_apps_requests_and_the_summaries_carry_them(trail):
    conn = sqlite3.connect(trail)
    apps = dict(conn.execute("select coalesce(app, ''), count(*) from requests group by 1"))
    assert apps == {"Instagram": 5, "Weather": 3, "": 1}
    assert recount(conn, "Instagram")[1] == 3 and recount(conn, "Weather")[1] == 1
    assert_summaries_agree(conn)
    labels = [r[0] for r in conn.execute("select label from dash_apps order by 1")]
    # both were read from the user agent; com.apple.weather is Apple's "Weather", not this one
    assert labels == ["Instagram (inferred)", "Weather (inferred)"]


async def test_every_dashboard_with_a_device_filter_has_the_app_filter(trail):
    meta = boards()
    with_device = {slug for slug, b in meta.items() if "device" in (b.get("filters") or {})}
    assert with_device == set(BOARDS)
    ds = await signed_in(serve.make_datasette(trail))
    for slug in with_device:
        flt = meta[slug]["filters"]["app"]
        r = await ds.client.get("/trail.json", params={"sql": flt["query"], "_shape": "array"})
        assert [x["label"] for x in r.json()] == ["Instagram (inferred)", "Weather (inferred)"]
        for name, c in meta[slug]["charts"].items():
            if ":device" in c.get("query", ""):
                assert ":app" in c["query"], f"{slug}: {name} ignores the app filter"
    # the summary page ("Make my summary") offers the apps the same way, and filters by one
    page = await ds.client.get("/-/gazeback/summary", params={"app": "Weather", "days": "all"})
    assert '<option value="Weather" selected>Weather (inferred)</option>' in page.text
    assert "AppsFlyer" in page.text and "Meta Platforms" not in page.text.split("</form>")[1]


@pytest.mark.parametrize("app", ["Instagram", "Weather"])
async def test_each_dashboard_shows_only_the_chosen_apps_companies_and_counts(trail, app):
    conn = sqlite3.connect(trail)
    n, leaks, companies = recount(conn, app)
    other = recount(conn, "Weather" if app == "Instagram" else "Instagram")[2] - companies
    assert other  # each app talked to a company the other did not
    device = conn.execute("select label from devices").fetchone()[0]
    host = conn.execute("select host from requests where app = ? limit 1", [app]).fetchone()[0]
    ds = await signed_in(serve.make_datasette(trail))
    opts = {"app": f"{app} (inferred)"}
    # trail
    assert number((await chart(ds, "trail", "requests", opts))[0]["n"]) == n
    assert number((await chart(ds, "trail", "leaks", opts))[0]["n"]) == leaks
    assert number((await chart(ds, "trail", "companies", opts))[0]["n"]) == len(companies)
    table = await chart(ds, "trail", "companies-table", opts)
    assert {re.sub("<[^>]+>", "", r["Company"]) for r in table} == companies
    assert f"app={app}" in (await chart(ds, "trail", "requests", opts))[0]["n"]
    # every chart of every dashboard: no company of the other app anywhere
    for board in BOARDS:
        for name, c in boards()[board]["charts"].items():
            if "query" in c:
                chosen = {**opts, "device": device, "host": host}
                chosen = {k: v for k, v in chosen.items() if f":{k}" in c["query"]}
                text = json.dumps(await chart(ds, board, name, chosen))
                for company in other:
                    assert company not in text, (board, name, company)
    # device, host, company and app pages count the same requests
    d = await chart(ds, "device", "d-requests", {**opts, "device": device})
    assert number(d[0]["n"]) == n
    h = await chart(ds, "host", "h-requests", {**opts, "host": host})
    assert (
        number(h[0]["n"])
        == conn.execute(
            "select count(*) from requests where app = ? and host = ?", [app, host]
        ).fetchone()[0]
    )
    company = sorted(companies)[0]
    c = await chart(ds, "company", "c-requests", {**opts, "company": company})
    assert (
        number(c[0]["n"])
        == conn.execute(
            "select count(*) from requests r join trackers t on t.id = r.tracker_id "
            "join companies c on c.id = t.company_id where r.app = ? and c.name = ?",
            [app, company],
        ).fetchone()[0]
    )
    a = await chart(ds, "apps", "a-table", opts)
    assert {r["Company"] for r in a} == companies
    assert (
        sum(r["Requests"] for r in a)
        == conn.execute(
            "select count(*) from requests r join trackers t on t.id = r.tracker_id "
            "where r.app = ? and t.is_tracker = 1",
            [app],
        ).fetchone()[0]
    )


def test_summaries_follow_rebuild_delete_prune_and_a_new_app(trail, tmp_path):
    path = copy_of(trail, tmp_path)
    db = sqlite_utils.Database(path)
    conn = db.conn
    before = conn.execute("select sum(requests), sum(leaks) from summary_hourly").fetchone()
    summaries.rebuild(db)
    assert conn.execute("select sum(requests), sum(leaks) from summary_hourly").fetchone() == before
    assert_summaries_agree(conn)
    # the app of a request changes (a capture reports it): its row and its leaks move
    rid = conn.execute(
        "select request_id from leaks l join requests r on r.id = l.request_id "
        "where r.app = 'Instagram' limit 1"
    ).fetchone()[0]
    with db.atomic():
        conn.execute(
            "update requests set app = 'com.burbn.instagram', app_source = 'reported' where id = ?",
            [rid],
        )
    assert_summaries_agree(conn)
    labels = {r[0] for r in conn.execute("select label from dash_apps")}
    assert "Instagram" in labels and "Instagram (inferred)" in labels  # reported: no mark
    # one request deleted, with what belongs to it
    with db.atomic():
        conn.execute("delete from requests where id = ?", [rid])
        for table in store.DEPENDENT_TABLES:
            conn.execute(f"delete from [{table}] where request_id = ?", [rid])
    assert_summaries_agree(conn)
    # an old request pruned (its time moved back first: the update trigger moves its hour)
    old = conn.execute("select id from requests where app = 'Weather' limit 1").fetchone()[0]
    with db.atomic():
        conn.execute(
            "update requests set started_at = '2026-01-01T00:00:00.000Z' where id = ?", [old]
        )
    assert_summaries_agree(conn)
    assert store.prune(db, 30, now=datetime.now(UTC) + timedelta(days=1)) == 1
    assert_summaries_agree(conn)
    n, leaks, _ = recount(conn, "Weather")
    assert (n, leaks) == (2, 1)


# The summaries as migration m016 made them, before m040 put the app in their keys.
M016_TABLES = """
create table summary_hourly (hour text not null, device_id integer not null,
  host text not null, tracker_id text not null, kind text not null,
  is_decrypted integer not null, requests integer not null default 0,
  leaks integer not null default 0, request_bytes integer not null default 0,
  response_bytes integer not null default 0,
  primary key (hour, device_id, host, tracker_id, kind, is_decrypted)) without rowid;
create table summary_leaks (hour text not null, device_id integer not null,
  host text not null, tracker_id text not null, pii_type text not null,
  transform_chain text not null, location text not null, leaks integer not null default 0,
  primary key (hour, device_id, host, tracker_id, pii_type, transform_chain, location))
  without rowid;
insert into summary_hourly select substr(r.started_at, 1, 13), coalesce(r.device_id, 0),
  r.host, coalesce(r.tracker_id, ''), r.kind, coalesce(r.is_decrypted, 0), count(*),
  coalesce(sum((select count(*) from leaks where request_id = r.id)), 0),
  coalesce(sum(r.request_bytes), 0), coalesce(sum(r.response_bytes), 0)
  from requests r group by 1, 2, 3, 4, 5, 6;
insert into summary_leaks select substr(r.started_at, 1, 13), coalesce(r.device_id, 0),
  r.host, coalesce(r.tracker_id, ''), l.pii_type, coalesce(l.transform_chain, ''),
  coalesce(l.location, ''), count(*) from leaks l join requests r on r.id = l.request_id
  group by 1, 2, 3, 4, 5, 6, 7;
insert into summary_hourly values ('2025-01-01T00', 1, 'old.example', '', 'http', 1, 7, 2, 70, 700);
insert into summary_leaks values ('2025-01-01T00', 1, 'old.example', '', 'email', '', 'url', 2);
"""


def test_m040_upgrades_a_file_with_rows(trail, tmp_path):
    path = copy_of(trail, tmp_path)
    conn = sqlite3.connect(path)
    for trigger in migrations.SUMMARY_TRIGGERS:
        conn.execute(f"drop trigger {trigger}")
    conn.execute("drop table summary_hourly")
    conn.execute("drop table summary_leaks")
    conn.execute("drop index idx_requests_reported_app")
    conn.executescript(M016_TABLES)
    conn.execute("delete from _sqlite_migrations where name = 'm040_summaries_by_app'")
    conn.commit()
    totals = "select sum(requests), sum(leaks), sum(request_bytes), sum(response_bytes) from summary_hourly"
    before = conn.execute(totals).fetchone()
    leaks_before = conn.execute("select sum(leaks) from summary_leaks").fetchone()
    conn.close()
    db = sqlite_utils.Database(path)
    migrations.apply(db)
    conn = db.conn
    assert conn.execute(totals).fetchone() == before
    assert conn.execute("select sum(leaks) from summary_leaks").fetchone() == leaks_before
    # the hour before the first request (detail no longer kept) came along, app unknown
    assert conn.execute(
        "select app, requests from summary_hourly where host = 'old.example'"
    ).fetchall() == [("", 7)]
    conn.execute("delete from summary_hourly where host = 'old.example'")
    conn.execute("delete from summary_leaks where host = 'old.example'")
    assert_summaries_agree(conn)
    # the triggers m040 made keep them right on the next write
    with db.atomic():
        conn.execute("update requests set app = 'Weather' where app = 'Instagram'")
    assert_summaries_agree(conn)
    assert (
        conn.execute(
            "select count(distinct app) from summary_hourly where requests > 0"
        ).fetchone()[0]
        == 2
    )


def test_summary_command_takes_an_app_and_refuses_an_unknown_one(trail, tmp_path):
    path = copy_of(trail, tmp_path)
    out = tmp_path / "me.html"
    ok = CliRunner().invoke(summary_command, ["--db", str(path), "--app", "Weather", "--out", str(out), "--since", "all"])  # fmt: skip
    assert ok.exit_code == 0, ok.output
    page = out.read_text()
    assert "AppsFlyer" in page and "Meta Platforms" not in page
    bad = CliRunner().invoke(summary_command, ["--db", str(path), "--app", "Tiktok", "--out", str(tmp_path / "x.html")])  # fmt: skip
    assert bad.exit_code == 2 and "no request was sent by an app called 'Tiktok'" in bad.output
    assert "Instagram, Weather" in bad.output and not (tmp_path / "x.html").exists()
