"""The real dashboards/metadata.yml, served by Datasette over a migrated database."""

import re

import pytest
import sqlite_utils
from datasette.app import Datasette

from gazeback import migrations
from gazeback.serve import dashboard_metadata


@pytest.fixture
def trail_db(tmp_path):
    path = tmp_path / "trail.db"
    db = sqlite_utils.Database(path)
    migrations.apply(db)
    db["devices"].insert({"id": 1, "key": "ip:127.0.0.1", "label": "this computer"})
    db["requests"].insert_all(
        {"flow_id": f"f{i}", "device_id": 1, "kind": "http" if i % 4 else "tls_failed",
         "host": f"h{i % 3}.example", "started_at": f"2026-11-27T1{i % 10}:00:00.000Z",
         "is_decrypted": int(bool(i % 4)), "method": "GET", "status_code": 200}
        for i in range(40)
    )  # fmt: skip
    db.close()
    return path


def charts(meta):
    return meta["plugins"]["datasette-dashboards"]["trail"]["charts"]


async def test_dashboard_and_every_chart_query(trail_db):
    meta = dashboard_metadata("trail")
    ds = Datasette([str(trail_db)], metadata=meta)
    r = await ds.client.get("/-/dashboards/trail")
    assert r.status_code == 200
    assert "Your digital trail" in r.text and "Requests recorded" in r.text
    for slug, chart in charts(meta).items():
        sql = re.sub(r"\[\[.*?\]\]", "", chart["query"], flags=re.S)  # filters left empty
        r = await ds.client.get("/trail.json", params={"sql": sql, "_shape": "objects"})
        assert r.status_code == 200, (slug, r.text)
        assert r.json()["rows"] is not None, slug


async def test_filters_apply(trail_db):
    meta = dashboard_metadata("trail")
    ds = Datasette([str(trail_db)], metadata=meta)
    sql = charts(meta)["requests"]["query"].replace("[[", "").replace("]]", "")
    r = await ds.client.get(
        "/trail.json",
        params={"sql": sql, "date_start": "2026-11-27", "date_end": "2026-11-27",
                "device": "this computer", "_shape": "objects"},
    )  # fmt: skip
    assert r.json()["rows"] == [{"n": 40}]


async def test_other_database_names_get_the_same_dashboard(tmp_path, trail_db):
    other = tmp_path / "phone.db"
    trail_db.rename(other)
    meta = dashboard_metadata("phone")
    ds = Datasette([str(other)], metadata=meta)
    assert (await ds.client.get("/-/dashboards/trail")).status_code == 200
    assert {c["db"] for c in charts(meta).values()} == {"phone"}
