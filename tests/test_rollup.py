"""The rollup tier (#19): old detail goes, the hourly totals of its hours stay, the dashboards
show the same numbers and say plainly from when on they have detail."""

import re
import shutil
import time
from datetime import UTC, datetime

import pytest
import sqlite_utils
from click.testing import CliRunner
from datasette_dashboards import replace_opts_in_query
from signin import signed_in

from gazeback.capture.writer import Writer
from gazeback.cli import cli
from gazeback.dashboard import demo, serve
from gazeback.db import store, summaries

END = datetime(2026, 11, 27, tzinfo=UTC)
KEY = b"k" * 32
# a chart reads detail when it selects from a table or view of single requests
DETAIL = re.compile(
    r"\b(from|join)\s+(requests|leaks|learned\w*|leak_report|trail|app_companies|"
    r"leaf_fingerprints|dash_app\w*)\b",
    re.I,
)

# charts that read detail for the hours after the horizon and learned_hourly before it
ROLLED_UP_TOO = {("trail", "learned")}


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    path = tmp_path_factory.mktemp("rollup") / "trail.db"
    demo.generate(path, scale=900, seed=3, days=20, end=END)
    return path


@pytest.fixture
def trail(made, tmp_path):
    path = tmp_path / "trail.db"
    shutil.copy(made, path)
    for suffix in (".key", ".identities"):
        if made.with_name(made.name + suffix).exists():
            shutil.copy(made.with_name(made.name + suffix), path.with_name(path.name + suffix))
    return path


def totals(db):
    return (
        db.execute("select * from summary_hourly order by 1, 2, 3, 4, 5, 6").fetchall(),
        db.execute("select * from summary_leaks order by 1, 2, 3, 4, 5, 6, 7").fetchall(),
    )


def test_rollup_keeps_the_hourly_totals_and_deletes_the_detail(trail):
    db = sqlite_utils.Database(trail)
    before = totals(db)
    n = db.table("requests").count
    learned = db.execute(
        "select count(*) from learned_items l join requests r on r.id = l.request_id "
        "where r.started_at < '2026-11-17T00'"
    ).fetchone()[0]
    only_old = db.table("header_sets").insert({"headers": '[["x-only", "old"]]'}).last_pk
    db.execute(
        "update requests set header_set_id = ? where id = (select min(id) from requests)",
        [only_old],
    )
    dry = store.rollup(db, 10, now=END, dry_run=True)
    assert dry is not None and dry.requests > 0 and db.table("requests").count == n
    done = store.rollup(db, 10, now=END)
    assert done == dry and done.horizon == "2026-11-17T00"
    assert totals(db) == before  # every hour's totals, unchanged
    assert db.table("requests").count == n - done.requests
    assert db.execute("select min(started_at) from requests").fetchone()[0] >= "2026-11-17T00"
    for table in ("leaks", "leaf_fingerprints", "learned_items", "persistent_id_sightings"):
        orphans = f"select count(*) from {table} where request_id not in (select id from requests)"
        assert db.execute(orphans).fetchone()[0] == 0, table
    # the headers only rolled-up requests sent went with them
    assert not db["header_sets"].count_where("id = ?", [only_old])
    assert db["header_sets"].count > 0
    # what each company learned in those hours, as counts only
    assert db.execute("select sum(items) from learned_hourly").fetchone()[0] == learned > 0
    assert db.execute("select max(hour) from learned_hourly").fetchone()[0] < "2026-11-17T00"
    # the delete triggers are back: deleting a request that is kept still subtracts it
    assert store.rollup_horizon(db) == "2026-11-17T00"
    names = {r[0] for r in db.execute("select name from sqlite_master where type = 'trigger'")}
    assert {"summary_requests_delete", "summary_leaks_delete"} <= names
    # a second run at the same clock finds nothing more
    assert store.rollup(db, 10, now=END).requests == 0


def test_rebuild_recounts_only_the_hours_after_the_horizon(trail):
    db = sqlite_utils.Database(trail)
    before = totals(db)
    store.rollup(db, 10, now=END)
    db.execute("update summary_hourly set requests = requests + 5 where hour >= '2026-11-20'")
    summaries.rebuild(db)
    assert totals(db) == before  # rolled-up hours kept, later hours recounted from detail
    assert store.rollup(db, 0, now=END) is None  # 0 keeps all detail


def test_imports_keep_their_detail_unless_asked(trail):
    db = sqlite_utils.Database(trail)
    capture = db.table("captures").insert({"source": "har", "started_at": "2026-11-27"}).last_pk
    db.execute(
        "update requests set capture_id = ? where id in "
        "(select id from requests order by started_at limit 50)",
        [capture],
    )
    done = store.rollup(db, 10, now=END)
    assert done.kept_imported == 50
    assert (
        db.execute("select count(*) from requests where capture_id = ?", [capture]).fetchone()[0]
        == 50
    )
    again = store.rollup(db, 10, now=END, include_imports=True)
    assert again.requests == 50 and again.kept_imported == 0


def test_keep_days_deletes_everything_older_totals_too(trail):
    db = sqlite_utils.Database(trail)
    store.rollup(db, 10, now=END)
    store.prune(db, 15, now=END)
    for table in ("summary_hourly", "summary_leaks", "learned_hourly"):
        assert db.execute(f"select min(hour) from {table}").fetchone()[0] >= "2026-11-12T00"


def test_the_writer_rolls_up_at_start(trail):
    # the writer runs on the real clock: a window that ends about 4 days before the demo's end
    keep = (datetime.now(UTC) - END).days + 4
    cutoff = store.hour_boundary(None, keep)
    db = sqlite_utils.Database(trail)
    n = db.table("requests").count
    newer = db.execute("select count(*) from requests where started_at >= ?", [cutoff])
    expected = newer.fetchone()[0]
    db.close()
    w = Writer(trail, KEY, keep_detail_days=keep, interval=0.05)
    w.start()
    try:
        db = sqlite_utils.Database(trail)
        deadline = time.monotonic() + 10
        while db.table("requests").count != expected and time.monotonic() < deadline:
            time.sleep(0.05)
        assert db.table("requests").count == expected < n
        assert db.execute("select sum(requests) from summary_hourly").fetchone()[0] == n
        # an hour later (the writer's next run): what became old since is rolled up too
        db.execute(
            "update requests set started_at = '2026-01-01T00:00:00.000Z' where id = "
            "(select min(id) from requests)"
        )
        db.conn.commit()
        w._next_prune = 0.0
        deadline = time.monotonic() + 10
        while db.table("requests").count != expected - 1 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert db.table("requests").count == expected - 1
        assert db.execute("select sum(requests) from summary_hourly").fetchone()[0] == n
    finally:
        w.stop()


def test_the_rollup_command(trail):
    run = CliRunner().invoke
    r = run(cli, ["rollup", "--db", str(trail), "--keep-detail", "10d", "--dry-run"])
    assert r.exit_code == 0, r.output
    assert re.search(
        r"would roll up [\d,]+ requests from before \d{4}-\d\d-\d\d \d\d:00 UTC", r.output
    )
    assert "Nothing was changed" in r.output
    r = run(cli, ["rollup", "--db", str(trail), "--keep-detail", "ten days"])
    assert r.exit_code == 2 and "'ten days' is not a number of days, e.g. 90d" in r.output
    r = run(cli, ["rollup", "--db", str(trail), "--keep-detail", "0"])
    assert r.exit_code == 0 and "keeps all detail" in r.output
    r = run(cli, ["rollup", "--db", str(trail), "--keep-detail", "10"])
    assert r.exit_code == 0 and re.search(r"^rolled up [\d,]+ requests", r.output), r.output
    older = "select count(*) from requests where started_at < ?"
    db = sqlite_utils.Database(trail)  # the command runs on the real clock
    assert db.execute(older, [store.hour_boundary(None, 10)]).fetchone()[0] == 0


async def chart_results(path):
    ds = await signed_in(serve.make_datasette(path))
    out = {}
    for slug, board in serve.dashboard_metadata("trail")["plugins"]["datasette-dashboards"].items():
        for name, chart in board["charts"].items():
            if "query" not in chart:
                continue
            # the query as it runs with no box filled (an app filter's clause reads requests)
            plain = replace_opts_in_query(chart["query"], {})
            if DETAIL.search(plain) and (slug, name) not in ROLLED_UP_TOO:
                continue
            opts = {"date_start": "2026-11-10", "date_end": "2026-11-24"}
            for given in ({}, {k: v for k, v in opts.items() if k in board.get("filters", {})}):
                sql = replace_opts_in_query(chart["query"], given)
                r = await ds.client.get(
                    "/trail.json", params={"sql": sql, "_shape": "array", **given}
                )
                assert r.status_code == 200, (slug, name, r.text)
                out[slug, name, tuple(given)] = r.json()
    return ds, out


async def test_dashboards_show_the_same_totals_and_say_where_detail_starts(trail):
    ds, before = await chart_results(trail)
    r = await ds.client.get("/trail/leak_report")
    assert r.status_code == 200 and "was rolled up" not in r.text
    assert len(before) > 30 and ("trail", "learned", ()) in before
    assert before["trail", "learned", ()]  # what each company learned, before any rollup
    db = sqlite_utils.Database(trail)
    store.rollup(db, 10, now=END)
    db.close()
    ds, after = await chart_results(trail)
    assert after == before
    for page in ("/trail/leak_report", "/trail/requests", "/-/dashboards/trail"):
        r = await ds.client.get(page)
        assert r.status_code == 200
        assert "Detail before 17 November 2026 was rolled up into hourly totals" in r.text, page


def test_a_long_rollup_goes_in_chunks_each_with_its_horizon(trail, monkeypatch):
    monkeypatch.setattr(store, "CHUNK", 100)
    db = sqlite_utils.Database(trail)
    before = totals(db)
    done = store.rollup(db, 10, now=END)
    runs = db.execute("select horizon, requests from rollups order by id").fetchall()
    assert len(runs) >= 3 and [h for h, _ in runs] == sorted(h for h, _ in runs)
    assert sum(n for _, n in runs) == done.requests and runs[-1][0] <= "2026-11-17T00"
    assert totals(db) == before
