"""Experiments (#16): windows, imports as conditions, comparisons with noise between runs."""

import json

from click.testing import CliRunner

from gazeback.cli import cli
from gazeback.db import experiments as ex

COMPANIES = {"ads": "AdCo", "stats": "StatsCo", "social": "SocialCo", "cdn": "CdnCo"}


def seed(db):
    for cid, name in COMPANIES.items():
        db.table("companies").insert({"id": cid, "name": name})
        db.table("trackers").insert(
            {"id": cid, "name": name, "company_id": cid, "category": "advertising",
             "is_tracker": int(cid != "cdn")}
        )  # fmt: skip
    db.table("devices").insert({"id": 1, "key": "ip:1", "label": "laptop"})
    db.table("devices").insert({"id": 2, "key": "ip:2", "label": "phone"})
    db.table("identities").insert({"id": 1, "kind": "email", "label": "email", "masked": "j***"})


N = iter(range(1, 10_000))


def req(db, at, tracker, device=1, leak=None, pid=False, identity=None):
    rid = next(N)
    db.table("requests").insert(
        {"id": rid, "flow_id": f"f{rid}", "kind": "http", "host": f"{tracker}.example",
         "registrable_domain": f"{tracker}.example", "device_id": device, "started_at": at,
         "tracker_id": tracker, "is_decrypted": 1, "is_third_party": 1}
    )  # fmt: skip
    if leak:
        db.table("leaks").insert(
            {"request_id": rid, "pii_type": leak, "identity_id": identity,
             "transform_chain": "plain", "location": "url.query:x", "tier": "strong"}
        )  # fmt: skip
    if pid:
        db.table("persistent_ids").insert({"id": rid, "fingerprint": rid, "shape": "uuid"})
        db.table("persistent_id_sightings").insert(
            {"persistent_id": rid, "request_id": rid, "location": "cookie:uid"}
        )
    return rid


def t(minute):
    return f"2026-11-27T10:{minute:02d}:00.000Z"


def build(db):
    """accept all: AdCo (ID, email), StatsCo, SocialCo in both runs. reject all: AdCo (with
    an ID) in both runs, StatsCo in run 1 only (noise); the phone's requests don't count."""
    seed(db)
    for a, b in ((0, 5), (10, 15)):
        ex.start(db, "banner", "accept all", device_id=1, now=t(a))
        req(db, t(a + 1), "ads", pid=True, leak="email", identity=1)
        req(db, t(a + 1), "stats")
        social = req(db, t(a + 2), "social", leak="ad_id")
        db.table("learned_items").insert(  # what an adapter decoded: a kind, in words
            {"request_id": social, "adapter": "socialco-events", "company": "SocialCo",
             "property": "browserId", "location": "query:bid", "kind_group": "identifier",
             "preview": "ab…"}
        )  # fmt: skip
        req(db, t(a + 2), "cdn")
        req(db, t(a + 2), "social", device=2)
        ex.stop(db, now=t(b))
    for run in range(2):
        a = 20 + 10 * run
        ex.start(db, "banner", "reject all", device_id=1, now=t(a))
        req(db, t(a + 1), "ads", pid=True)
        if run == 0:
            req(db, t(a + 1), "stats")
        req(db, t(a + 2), "social", device=2)
        ex.stop(db, now=t(a + 5))


def test_compare_finds_the_known_difference_and_the_noise(db):
    build(db)
    c = ex.compare(db, "banner")
    assert (c.a.condition, c.b.condition) == ("accept all", "reject all")
    assert [r["run"] for r in c.b.runs] == [1, 2]
    assert c.only_a("company") == {"SocialCo"}
    assert c.only_b("company") == set()
    assert c.both("company") == {"AdCo", "StatsCo"}
    assert c.unsteady("company") == {"StatsCo"}  # one reject run of two: noise
    assert c.both("id") == {"AdCo"}
    assert c.only_a("identifier") == {"email → AdCo"}
    browser = db.execute(
        "select words from glossary_words where kind = 'learned' and key = 'browserId'"
    ).fetchone()[0]
    assert browser != "browserId"  # the person reads words, not the property's key
    assert c.only_a("data") == {
        "AdCo: " + _words(db, "email"),
        "SocialCo: " + _words(db, "ad_id"),
        "SocialCo: " + browser,
    }
    assert [r["tracker_requests"] for r in c.a.runs] == [3, 3]  # the CDN is no tracker
    assert [r["tracker_requests"] for r in c.b.runs] == [2, 1]
    assert c.headline() == (
        "After you rejected cookies, 1 company still received data in every run; 1 of them "
        "received an ID that follows you. 1 more did in some runs only (2 runs)."
    )
    # the other way round
    assert (
        ex.compare(db, "banner", "reject all", "accept all")
        .headline()
        .startswith("After you accepted cookies, 3 companies received data in every run; 1 of them")
    )


def _words(db, pii):
    row = list(db.query("select words from glossary_words where kind='pii' and key=?", [pii]))
    return row[0]["words"] if row else pii.replace("_", " ")


def test_one_window_at_a_time_and_clear_errors(db):
    seed(db)
    ex.start(db, "e", "before", now=t(0))
    try:
        ex.start(db, "e", "after", now=t(1))
        raise AssertionError("a second window started")
    except ex.ExperimentError as e:
        assert "still running" in str(e) and "'before'" in str(e)
    ex.stop(db, now=t(2))
    for call in (lambda: ex.stop(db), lambda: ex.compare(db, "e"), lambda: ex.compare(db, "x")):
        try:
            call()
            raise AssertionError("no error")
        except ex.ExperimentError as e:
            assert str(e)


def har(entries):
    return json.dumps(
        {"log": {"version": "1.2", "creator": {"name": "t", "version": "1"}, "entries": [
            {"startedDateTime": "2026-11-27T10:00:00.000Z", "time": 1,
             "request": {"method": "GET", "url": url, "httpVersion": "HTTP/1.1", "headers": [],
                         "queryString": [], "cookies": [], "headersSize": -1, "bodySize": 0},
             "response": {"status": 200, "statusText": "OK", "httpVersion": "HTTP/1.1",
                          "headers": [], "cookies": [], "content": {"size": 0, "mimeType": "text/plain"},
                          "redirectURL": "", "headersSize": -1, "bodySize": 0},
             "cache": {}, "timings": {"send": 0, "wait": 1, "receive": 0}}
            for url in entries]}}
    )  # fmt: skip


def test_two_hars_make_one_experiment(tmp_path):
    before = tmp_path / "before.har"
    after = tmp_path / "after.har"
    before.write_text(
        har(["https://www.google-analytics.com/g/collect?v=2", "https://connect.facebook.net/x.js"])
    )
    after.write_text(har(["https://www.google-analytics.com/g/collect?v=2&x=1"]))
    db_path = tmp_path / "t.db"
    r = CliRunner()
    assert r.invoke(cli, ["migrate", "--db", str(db_path)]).exit_code == 0
    args = ["--db", str(db_path), "--experiment", "update", "-s"]
    res = r.invoke(cli, ["import", str(before), *args, "--condition", "before"])
    assert res.exit_code == 0, res.output
    assert "condition 'before', run 1" in res.output
    res = r.invoke(cli, ["import", str(after), *args, "--condition", "after"])
    assert res.exit_code == 0, res.output
    res = r.invoke(cli, ["import", str(after), *args, "--condition", "after"])  # again: no new run
    assert "run 1" in res.output
    res = r.invoke(cli, ["experiment", "compare", "update", "--db", str(db_path)])
    assert res.exit_code == 0, res.output
    assert (
        "only in 'before' (1): Meta" in res.output or "only in 'before' (1): Facebook" in res.output
    )
    assert "in both (1): Google" in res.output
    res = r.invoke(cli, ["experiment", "list", "--db", str(db_path)])
    assert res.output.strip() == "update: 2 runs of before, after"
    res = r.invoke(cli, ["import", str(after), "--db", str(db_path), "--experiment", "x"])
    assert res.exit_code != 0 and "go together" in res.output


def test_cli_start_stop(tmp_path):
    db_path = tmp_path / "t.db"
    r = CliRunner()
    assert r.invoke(cli, ["migrate", "--db", str(db_path)]).exit_code == 0
    res = r.invoke(cli, ["experiment", "start", "e", "--condition", "a", "--db", str(db_path)])
    assert res.exit_code == 0 and "run 1 started" in res.output, res.output
    res = r.invoke(
        cli,
        ["experiment", "start", "e", "--condition", "a", "--device", "tv", "--db", str(db_path)],
    )
    assert res.exit_code == 1 and "no device is called 'tv'" in res.output
    res = r.invoke(cli, ["experiment", "stop", "--db", str(db_path)])
    assert res.exit_code == 0 and "0 requests" in res.output, res.output
    res = r.invoke(cli, ["experiment", "stop", "--db", str(db_path)])
    assert res.exit_code == 1 and "no experiment is running" in res.output


async def test_experiment_dashboard(tmp_path):
    import sqlite_utils
    from datasette_dashboards import replace_opts_in_query
    from signin import signed_in

    from gazeback.dashboard import serve
    from gazeback.db import alerts, migrations

    path = tmp_path / "trail.db"
    db = sqlite_utils.Database(path)
    migrations.apply(db)
    build(db)
    db.table("companies").insert({"id": "fresh", "name": "FreshCo"})
    db.table("trackers").insert(
        {"id": "fresh", "name": "F", "company_id": "fresh", "is_tracker": 1}
    )
    req(db, "2026-11-29T10:00:00.000Z", "fresh")  # after the laptop's first day: news
    alerts.refresh(db)
    db.close()
    ds = await signed_in(serve.make_datasette(path))
    boards = serve.dashboard_metadata("trail")["plugins"]["datasette-dashboards"]

    async def rows(board, chart, opts):
        sql = replace_opts_in_query(boards[board]["charts"][chart]["query"], opts)
        r = await ds.client.get("/trail.json", params={"sql": sql, "_shape": "objects", **opts})
        assert r.status_code == 200, r.text
        return r.json()["rows"]

    opts = {"experiment": "banner", "a": "accept all", "b": "reject all"}
    head = (await rows("experiment", "x-headline", opts))[0]["sentence"]
    assert head == ex.compare(db=sqlite_utils.Database(path), name="banner").headline().replace(
        " (2 runs)", ""
    )
    assert (await rows("experiment", "x-headline", {}))[0]["sentence"] == head  # defaults
    table = await rows("experiment", "x-compare", {**opts, "kind": "Companies"})
    got = {(r["Item"], r["Where"], r["Between runs"]) for r in table}
    assert got == {
        ("AdCo", "in both", "steady"),
        ("SocialCo", "only in A", "steady"),
        ("StatsCo", "in both", "varies between runs"),
    }
    assert {r["In B"] for r in table if r["Item"] == "StatsCo"} == {"1 of 2 runs, 1 requests"}
    runs = await rows("experiment", "x-runs", opts)
    assert [r["To trackers"] for r in runs] == [3, 3, 2, 1]
    for r in runs:  # each count links to its requests
        link = r["Requests"].split('"')[1]
        assert (await ds.client.get(link)).status_code == 200
    news = await rows("trail", "news", {})
    assert news and "FreshCo" in news[0]["What is new"]
    assert (await ds.client.get(news[0]["Behind it"].split('"')[1])).status_code == 200


async def test_start_and_stop_from_the_dashboard(tmp_path):
    import re

    import sqlite_utils
    from signin import signed_in

    from gazeback.dashboard import serve
    from gazeback.db import migrations

    path = tmp_path / "trail.db"
    db = sqlite_utils.Database(path)
    migrations.apply(db)
    db.close()
    ds = await signed_in(serve.make_datasette(path))
    page = await ds.client.get("/-/gazeback/experiment")
    assert page.status_code == 200 and "No run is going on" in page.text
    csrf = re.search(r'name="csrftoken" value="([^"]+)"', page.text).group(1)
    cookie = ds.client._cookie + "; ds_csrftoken=" + page.cookies["ds_csrftoken"]

    async def post(**form):
        return await ds.client.post(
            "/-/gazeback/experiment", data={"csrftoken": csrf, **form}, headers={"cookie": cookie}
        )

    r = await post(action="start", name="tv", condition="old <firmware>")
    assert r.status_code == 200, r.text
    assert "Run 1 of “old &lt;firmware&gt;” started" in r.text and "Running now" in r.text
    r = await post(action="start", name="tv", condition="new")
    assert r.status_code == 400 and "still running" in r.text
    r = await post(action="stop")
    assert r.status_code == 200 and "stopped" in r.text
    r = await post(action="stop")
    assert r.status_code == 400 and "no experiment is running" in r.text
    r = await ds.client.post(
        "/-/gazeback/experiment", data={"action": "stop"}, headers={"cookie": cookie}
    )
    assert r.status_code == 403  # no CSRF token: refused
    db = sqlite_utils.Database(path)
    assert [(r["condition"], r["run"]) for r in db["experiment_runs"].rows] == [
        ("old <firmware>", 1)
    ]
