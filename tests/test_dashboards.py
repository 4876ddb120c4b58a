"""The real dashboards/metadata.yml, served by Datasette over demo and edge-case databases."""

import json
import re
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlite_utils
import yaml
from click.testing import CliRunner
from datasette_dashboards import replace_opts_in_query
from signin import signed_in

from gazeback.cli.demo import demo as demo_command
from gazeback.dashboard import demo, serve
from gazeback.db import migrations, summaries

END = datetime(2026, 11, 27, tzinfo=UTC)
FILTERS = {
    "date_start": "2026-11-22",
    "date_end": "2026-11-26",
    "device": "Alex's phone",
    "category": "Advertising",
    "company": "Meta Platforms, Inc.",
    "host": "graph.facebook.com",
    "app": "com.example.weather (inferred)",
}
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def demo_db(tmp_path_factory):
    path = tmp_path_factory.mktemp("demo") / "trail.db"
    demo.generate(path, scale=1500, seed=3, end=END)
    return path


@pytest.fixture
def empty_db(tmp_path):
    path = tmp_path / "trail.db"
    db = sqlite_utils.Database(path)
    migrations.apply(db)
    db.close()
    return path


def boards(meta):
    return meta["plugins"]["datasette-dashboards"]


def test_metadata_is_the_worktree_file():
    assert serve.dashboards_dir() == ROOT / "dashboards"
    meta = yaml.safe_load((ROOT / "dashboards" / "metadata.yml").read_text())
    assert set(boards(meta)) == {
        "trail",
        "company",
        "device",
        "host",
        "connect",
        "workshop",
        "experiment",
        "apps",
    }
    for slug, board in boards(meta).items():
        cells = {c for row in board["layout"] for c in row} - {"."}
        assert cells == set(board["charts"]), slug
        assert len({len(row) for row in board["layout"]}) == 1, slug


def test_nothing_is_loaded_from_the_internet():
    folder = ROOT / "dashboards"
    texts = [(folder / "metadata.yml").read_text()]
    texts += [p.read_text() for p in (folder / "templates").iterdir()]
    texts += [p.read_text() for p in (folder / "static").glob("*.js")]
    texts += [p.read_text() for p in (folder / "static").glob("*.css")]
    for text in texts:
        # the only absolute URLs are Vega's $schema identifiers, which are never fetched
        urls = set(re.findall(r"https?://[^\s'\"`)]+", text)) - {
            "https://vega.github.io/schema/vega-lite/v5.json",
        }
        assert not {u for u in urls if "mitm.it" not in u}, urls


async def test_every_dashboard_page(demo_db):
    ds = await signed_in(serve.make_datasette(demo_db))
    expected = {
        "trail": [
            "Your digital trail",
            "Who received the most",
            "Words used here",
            "No traffic yet",
        ],
        "company": ["What a company knows about you", "explained", "Meta Platforms"],
        "device": ["One of your devices", "Alex&#39;s phone"],
        "host": ["One internet address", "The latest requests"],
    }
    for slug, fragments in expected.items():
        r = await ds.client.get(f"/-/dashboards/{slug}")
        assert r.status_code == 200, slug
        for fragment in fragments:
            assert fragment in r.text, (slug, fragment)
        assert "gazeback-static/gazeback.js" in r.text
    r = await ds.client.get("/-/dashboards/company", params={"company": "Google"})
    assert r.status_code == 200 and 'value="Google" selected' in r.text


async def test_every_chart_page(demo_db):
    ds = await signed_in(serve.make_datasette(demo_db))
    for slug, board in boards(serve.dashboard_metadata("trail")).items():
        for chart in board["charts"]:
            r = await ds.client.get(f"/-/dashboards/{slug}/{chart}")
            assert r.status_code == 200, (slug, chart)


async def chart_rows(ds, db_name, chart, opts):
    sql = replace_opts_in_query(chart["query"], opts)
    r = await ds.client.get(f"/{db_name}.json", params={"sql": sql, "_shape": "objects", **opts})
    assert r.status_code == 200, r.text
    return r.json()["rows"]


@pytest.mark.parametrize("with_filters", [False, True])
async def test_every_chart_query(demo_db, with_filters):
    ds = await signed_in(serve.make_datasette(demo_db))
    for slug, board in boards(serve.dashboard_metadata("trail")).items():
        opts = {k: v for k, v in FILTERS.items() if with_filters and k in board["filters"]}
        for name, chart in board["charts"].items():
            if "query" in chart:
                rows = await chart_rows(ds, "trail", chart, opts)
                assert rows is not None, (slug, name)


async def test_charts_say_what_they_should(demo_db):
    ds = await signed_in(serve.make_datasette(demo_db))
    meta = serve.dashboard_metadata("trail")
    trail, company = boards(meta)["trail"]["charts"], boards(meta)["company"]["charts"]
    text = json.dumps(await chart_rows(ds, "trail", trail["headline"], {}))
    assert "1,500 requests left your 3 devices" in text and "tracking companies" in text
    table = json.dumps(await chart_rows(ds, "trail", trail["companies-table"], {}))
    assert "Alphabet Inc." in table and "United States" in table
    assert "/-/dashboards/company?company=Meta+Platforms,+Inc." in table
    learned = json.dumps(await chart_rows(ds, "trail", trail["learned"], {}))
    assert "your email address" in learned and "your advertising ID" in learned
    countries = await chart_rows(ds, "trail", trail["countries"], {})
    assert {"US", "KR", "FR"} <= {r["country"] for r in countries}
    unseen = json.dumps(await chart_rows(ds, "trail", trail["not-seen"], {}))
    # the phone's other traffic was looked into: this app refuses gazeback's certificate
    assert "i.instagram.com" in unseen and "accepts only its own certificate" in unseen
    assert "not installed" not in unseen
    opts = {"company": "Meta Platforms, Inc."}
    explained = json.dumps(await chart_rows(ds, "trail", company["c-explained"], opts))
    assert "Your email address, lower-cased, then hashed with SHA-256" in explained
    assert "<code>ud[em]</code>" in explained
    head = json.dumps(await chart_rows(ds, "trail", company["c-headline"], opts))
    assert "What Meta Platforms, Inc. knows about you" in head
    requests = await chart_rows(ds, "trail", trail["requests"], {"device": "Alex's phone"})
    assert "device=Alex%27s+phone" in requests[0]["n"]


async def test_every_link_leads_somewhere(demo_db):
    """Numbers link to Datasette tables and other dashboards; all of them answer 200."""
    ds = await signed_in(serve.make_datasette(demo_db))
    links = set()
    for board in boards(serve.dashboard_metadata("trail")).values():
        for skip in ("app", ""):  # every filter but the app, then every filter
            opts = {k: v for k, v in FILTERS.items() if k in board["filters"] and k != skip}
            for chart in board["charts"].values():
                if "query" in chart:
                    text = json.dumps(await chart_rows(ds, "trail", chart, opts))
                    links |= set(re.findall(r'href=\\"([^"\\]+)', text))
                    links |= set(re.findall(r'"url": "([^"]+)"', text))
    # reasons link to public documentation outside (not fetched offline); every local link must answer
    links = {link for link in links if not link.startswith(("http://", "https://"))}
    assert len(links) > 20
    for link in sorted(links)[:80]:
        r = await ds.client.get(link.replace("&amp;", "&"))
        assert r.status_code == 200, link


async def test_canned_queries(demo_db):
    ds = await signed_in(serve.make_datasette(demo_db))
    r = await ds.client.get("/trail/company_requests.json", params={"company_id": "google"})
    assert r.status_code == 200 and r.json()["rows"]
    r = await ds.client.get("/trail/host_requests.json", params={"host": "graph.facebook.com"})
    assert r.status_code == 200 and r.json()["rows"]
    r = await ds.client.get("/trail/what_companies_learned.json")
    assert r.status_code == 200 and "hashed with SHA-256" in r.text


async def test_static_files_are_served_locally(demo_db):
    ds = await signed_in(serve.make_datasette(demo_db))
    world = await ds.client.get("/gazeback-static/world-110m.json")
    assert world.status_code == 200
    iso2 = {g["properties"]["iso2"] for g in world.json()["objects"]["countries"]["geometries"]}
    assert {"US", "DE", "KR", "FR"} <= iso2
    assert (await ds.client.get("/gazeback-static/gazeback.js")).status_code == 200


async def test_empty_database_gets_the_friendly_page(empty_db):
    ds = await signed_in(serve.make_datasette(empty_db))
    r = await ds.client.get("/-/dashboards/trail")
    assert r.status_code == 200
    assert "No traffic yet" in r.text and "gazeback run" in r.text and "gazeback demo" in r.text
    for board in boards(serve.dashboard_metadata("trail")).values():
        for chart in board["charts"].values():
            if "query" in chart:
                await chart_rows(ds, "trail", chart, {})


async def test_other_database_names_get_the_same_dashboard(tmp_path, demo_db):
    other = tmp_path / "phone.db"
    other.write_bytes(demo_db.read_bytes())
    meta = serve.dashboard_metadata("phone")
    ds = await signed_in(serve.make_datasette(other))
    assert (await ds.client.get("/-/dashboards/trail")).status_code == 200
    charts = boards(meta)["trail"]["charts"]
    assert {c["db"] for c in charts.values() if "db" in c} == {"phone"}
    rows = await chart_rows(ds, "phone", charts["requests"], {})
    assert 'href="/phone/trail?' in rows[0]["n"]


def test_summaries_follow_inserts_updates_and_deletes(tmp_path):
    path = tmp_path / "trail.db"
    demo.generate(path, scale=400, seed=5, end=END)
    db = sqlite_utils.Database(path)

    def snapshot():
        return (
            list(db.query("select * from summary_hourly where requests != 0 order by 1,2,3,4,5,6")),
            list(db.query("select * from summary_leaks where leaks != 0 order by 1,2,3,4,5,6,7")),
        )

    db.execute("update requests set tracker_id = null where host = 'graph.facebook.com'")
    db.execute("update requests set started_at = '2026-11-01T01:00:00.000Z' where id % 7 = 0")
    db.execute("delete from leaks where pii_type = 'email' and id % 2 = 0")
    ids = [r["id"] for r in db.query("select id from requests where id % 5 = 0")]
    db.execute(f"delete from leaks where request_id in ({','.join(map(str, ids))})")
    db.execute(f"delete from requests where id in ({','.join(map(str, ids))})")
    db.conn.commit()
    live = snapshot()
    summaries.rebuild(db)
    assert snapshot() == live
    assert sum(r["requests"] for r in live[0]) == db["requests"].count
    assert sum(r["leaks"] for r in live[1]) == db["leaks"].count


def summary_rows(db):
    return (
        list(db.query("select * from summary_hourly order by 1, 2, 3, 4, 5, 6, 7")),
        list(db.query("select * from summary_leaks order by 1, 2, 3, 4, 5, 6, 7, 8")),
    )


@pytest.mark.parametrize("batch", [16, 5000])
def test_a_writer_batch_is_summarised_as_the_triggers_would(tmp_path, batch):
    # The writer adds each batch to the summaries in one grouped statement per table (m047);
    # a recount from the detail must give the same rows, and inserts made outside a writer's
    # batch still go through the triggers.
    path = tmp_path / "trail.db"
    demo.generate(path, scale=700, seed=4, end=END, batch=batch)
    db = sqlite_utils.Database(path)
    assert db.execute("select count(*) from _summary_deferred").fetchone()[0] == 0
    live = summary_rows(db)
    assert sum(r["requests"] for r in live[0]) == 700
    assert sum(r["leaks"] for r in live[1]) == db["leaks"].count > 100
    summaries.rebuild(db)
    assert summary_rows(db) == live
    request = db["requests"].get(1)
    del request["id"]
    request.update(flow_id="by-hand", started_at="2026-11-20T05:06:07.000Z")
    db["requests"].insert(request)
    leak = next(db.query("select * from leaks limit 1"))
    del leak["id"]
    db["leaks"].insert({**leak, "request_id": db["requests"].last_pk})
    by_hand = summary_rows(db)
    assert sum(r["requests"] for r in by_hand[0]) == 701
    assert [r for r in by_hand[0] if r["hour"] == "2026-11-20T05" and r["leaks"]]
    summaries.rebuild(db)
    assert summary_rows(db) == by_hand


def test_a_batch_that_fails_leaves_summaries_and_triggers_as_they_were(tmp_path):
    import sqlite3

    path = tmp_path / "trail.db"
    db = sqlite_utils.Database(path)
    migrations.apply(db)
    db.execute(
        "create trigger fail_midway before insert on learned_items "
        "when (select count(*) from learned_items) >= 40 "
        "begin select raise(abort, 'disk on fire'); end"
    )
    db.close()
    with pytest.raises(sqlite3.DatabaseError, match="disk on fire"):
        demo.generate(path, scale=300, seed=4, end=END, batch=16)
    db = sqlite_utils.Database(path)
    assert db.execute("select count(*) from _summary_deferred").fetchone()[0] == 0
    stored = db["requests"].count
    assert 0 < stored < 300  # the batches before the failing one are in, that one is not
    live = summary_rows(db)
    assert sum(r["requests"] for r in live[0]) == stored
    summaries.rebuild(db)
    assert summary_rows(db) == live


def test_an_older_database_is_migrated_and_summarised(tmp_path):
    path = tmp_path / "old.db"
    demo.generate(path, scale=300, seed=2, end=END)
    db = sqlite_utils.Database(path)
    for name in ("summary_hourly", "summary_leaks", "glossary_words"):
        db[name].drop()
    for trigger in db.triggers:
        db.execute(f"drop trigger {trigger.name}")
    db.execute("delete from _sqlite_migrations where name >= 'm016'")
    db.conn.commit()
    migrations.apply(db)
    assert db.execute("select sum(requests) from summary_hourly").fetchone()[0] == 300
    assert db["glossary_words"].count > 250


def test_demo_trail_is_realistic(demo_db):
    db = sqlite_utils.Database(demo_db)
    assert db["requests"].count == 1500
    assert {r["label"] for r in db.query("select label from devices")} == {
        "Alex's phone",
        "Alex's laptop",
        "Living-room TV",
    }
    chains = {r["transform_chain"] for r in db.query("select distinct transform_chain from leaks")}
    assert {"plain", "lower>sha256:hex", "lower>md5:hex", "plain>b64"} <= chains
    places = {r["location"].split(":")[0] for r in db.query("select location from leaks")}
    assert {"url.query", "body.json", "body.form", "header"} <= places
    assert db.execute("select count(*) from requests where is_decrypted = 0").fetchone()[0] > 50
    assert db["_pinned_hosts"].count >= 1
    known = db.execute("select count(*) from requests where tracker_id is not null").fetchone()[0]
    assert known > 1200
    assert db.execute("select count(distinct capture_id) from requests").fetchone()[0] == 1
    assert db["captures"].get(1)["source"] == "demo"


def test_demo_is_deterministic_and_idempotent(tmp_path):
    a, b = tmp_path / "a.db", tmp_path / "b.db"
    for p in (a, b):
        demo.generate(p, scale=200, seed=9, end=END)
    q = "select flow_id, started_at, host, tracker_id from requests order by flow_id"
    assert list(sqlite_utils.Database(a).query(q)) == list(sqlite_utils.Database(b).query(q))
    demo.generate(a, scale=200, seed=9, end=END)  # same seed again: nothing doubled
    assert sqlite_utils.Database(a)["requests"].count == 200


def test_every_demo_host_is_known_or_first_party():
    from gazeback.knowledge.classify import load_index

    index = load_index()
    http_hosts = {c.host for app in demo.APPS for c in app.calls}
    unknown = {h for h in http_hosts if index.lookup(h) is None}
    assert not unknown


def test_demo_command(tmp_path):
    path = tmp_path / "w.db"
    result = CliRunner().invoke(
        demo_command, ["--db", str(path), "--scale", "300", "--days", "2", "--no-serve"]
    )
    assert result.exit_code == 0, result.output
    assert "300 requests" in result.output and "gazeback dashboard" in result.output
    assert "Example" in demo_command.help


async def test_a_refused_certificate_says_which_of_the_two_it_probably_is(empty_db):
    """Never looked inside anything from this device: the certificate is not installed.
    Looked inside before, refused now: the app accepts only its own certificate."""
    db = sqlite_utils.Database(empty_db)
    new = db.table("devices").insert({"key": "user:new", "label": "new phone"}).last_pk
    old = db.table("devices").insert({"key": "user:old", "label": "old phone"}).last_pk
    now = datetime.now(UTC)
    rows = [
        (new, "tls_failed", 0, "a.example"),
        (old, "http", 1, "b.example"),
        (old, "tls_failed", 0, "c.example"),
    ]
    for i, (dev, kind, dec, host) in enumerate(rows):
        at = now.strftime("%Y-%m-%dT%H:%M:%S.000Z")
        db.table("requests").insert(
            {"flow_id": str(i), "device_id": dev, "started_at": at, "kind": kind,
             "is_decrypted": dec, "host": host, "method": "GET"}
        )  # fmt: skip
    summaries.rebuild(db)
    db.close()
    ds = await signed_in(serve.make_datasette(empty_db))
    meta = boards(serve.dashboard_metadata("trail"))
    unseen = await chart_rows(ds, "trail", meta["trail"]["charts"]["not-seen"], {})
    why = {label: r["Why"] for r in unseen for label in ("new", "old") if label in r["Device"]}
    assert "not installed on this device yet" in why["new"], unseen
    assert "accepts only its own certificate" in why["old"]
    check = {
        r["Device"]: r["What it means"]
        for r in await chart_rows(ds, "trail", meta["connect"]["charts"]["check"], {})
    }
    assert "not installed on this device yet" in check["new phone"]
    assert "accept only their own certificate" in check["old phone"]


def test_every_step_of_a_transform_chain_has_plain_words():
    """No internal label ("decimal4", "b64phase", "e7") reaches a person: every step the
    detector and decoder can write has words in the glossary."""
    from gazeback.db import glossary
    from gazeback.share.schema import CHAIN_STEPS

    steps = {s.split(":", 1)[0] for s in CHAIN_STEPS} | {
        s.split(":", 1)[1] for s in CHAIN_STEPS if ":" in s
    }
    assert sorted(steps - set(glossary.STEPS)) == []


async def test_a_request_page_shows_its_headers(demo_db):
    # headers are stored once per set (#19): the request's page shows them as the link's label
    db = sqlite_utils.Database(demo_db)
    rid, headers = db.execute(
        "select r.id, h.headers from requests r join header_sets h on h.id = r.header_set_id "
        "where h.headers like '%user-agent%' limit 1"
    ).fetchone()
    db.close()
    ds = await signed_in(serve.make_datasette(demo_db))
    r = await ds.client.get(
        "/trail/requests.json", params={"id": rid, "_labels": "on", "_shape": "objects"}
    )
    assert r.status_code == 200
    assert r.json()["rows"][0]["header_set_id"]["label"] == headers
    r = await ds.client.get(f"/trail/requests/{rid}")  # the request's own page
    assert r.status_code == 200 and "<br>user-agent: " in r.text
