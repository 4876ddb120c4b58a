"""A person who registered nothing sees what trackers learned (#14): a real proxy on loopback, a
real client sending Google Analytics and Meta Pixel hits to tracker hosts mapped to loopback,
then the real Datasette dashboard over the trail it recorded."""

import json
import time

import httpx
from datasette_dashboards import replace_opts_in_query
from signin import signed_in

from gazeback.dashboard import serve

CID = "1234567890.1700000000"
FBP = "fb.1.1700000000000.555444333"


def wait_learned(proxy, count, timeout=10.0):
    deadline = time.monotonic() + timeout
    while True:
        try:
            rows = proxy.rows("select * from learned")
        except Exception:  # the db or the view may not exist for the first few ms
            rows = []
        if len(rows) >= count or time.monotonic() > deadline:
            return rows
        time.sleep(0.1)


async def test_dashboard_shows_what_each_company_learned_without_any_identity(proxy):
    with httpx.Client(proxy=proxy.url, verify=str(proxy.ca), timeout=10) as client:
        ga = client.get(
            "https://www.google-analytics.com/collect",
            params={"v": "1", "t": "pageview", "tid": "UA-55-1", "cid": CID,
                    "dl": "https://shop.example/shoes", "sr": "1170x2532", "ul": "de-de"},
        )  # fmt: skip
        meta = client.get(
            "https://www.facebook.com/tr/",
            params={"id": "98765", "ev": "Purchase", "dl": "https://shop.example/thanks"},
            headers={"Cookie": f"_fbp={FBP}; other=1"},
        )
        script = client.get("https://www.google-analytics.com/analytics.js")
    assert (ga.status_code, meta.status_code, script.status_code) == (200, 200, 200)
    rows = wait_learned(proxy, 9)
    assert proxy.stop() == 0
    rows = proxy.rows("select * from learned")
    got = {(r["company"], r["property"], r["value"]) for r in rows}
    assert ("Google", "propertyId", "UA-55-1") in got
    assert ("Google", "viewedPage", "https://shop.example/shoes") in got
    assert ("Google", "screenWidth", "1170") in got and ("Google", "language", "de-de") in got
    assert ("Meta Platforms, Inc.", "userAction", "Purchase") in got
    assert not [
        r for r in rows if r["host"] == "www.google-analytics.com" and "analytics.js" in str(r)
    ]
    ids = [r for r in rows if r["kind_group"] == "identifier"]
    assert {r["property"] for r in ids} == {"browserId"}
    assert all(r["value"] not in (CID, FBP) and r["fingerprint"] for r in ids)
    assert proxy.rows("select count(*) as n from identities")[0]["n"] == 0
    dump = proxy.db_path.read_bytes() + (
        proxy.db_path.with_name("trail.db-wal").read_bytes()
        if proxy.db_path.with_name("trail.db-wal").exists()
        else b""
    )
    assert FBP.encode() not in dump  # sent in a cookie: nowhere in the database
    # (the cid sat in the URL, which gazeback keeps as sent unless it looks like a secret)
    assert CID not in json.dumps(proxy.rows("select * from learned_items"))

    ds = await signed_in(serve.make_datasette(proxy.db_path))
    page = await ds.client.get("/trail/learned", params={"company": "Google"})
    assert page.status_code == 200
    assert "an ID of your browser" in page.text and "the page or screen you were on" in page.text
    assert CID not in page.text
    board = await ds.client.get("/-/dashboards/trail")
    assert "What each company learned, in plain words" in board.text

    charts = serve.dashboard_metadata("trail")["plugins"]["datasette-dashboards"]

    async def chart(board, name, opts):
        sql = replace_opts_in_query(charts[board]["charts"][name]["query"], opts)
        r = await ds.client.get("/trail.json", params={"sql": sql, "_shape": "objects", **opts})
        assert r.status_code == 200, r.text
        return r.json()["rows"]

    head = json.dumps(await chart("trail", "headline", {}), ensure_ascii=False)
    # one request each: either company leads the sentence, which says what it learned
    assert "Google received an ID of your browser" in head or (
        "Meta Platforms, Inc. received an ID of your browser" in head
    )
    assert " — 1 time." in head
    table = await chart("trail", "what-learned", {})
    google = next(r for r in table if ">Google<" in r["Company"])
    assert "an ID of your browser (1×)" in google["Identifiers that follow you"]
    assert "your screen's size (1×)" in google["Your device"]
    assert "the page or screen you were on (1×)" in google["What you were doing"]
    assert "/trail/learned?" in google["Requests"]
    company = json.dumps(
        await chart("company", "c-headline", {"company": "Meta Platforms, Inc."}),
        ensure_ascii=False,
    )
    assert "It learned " in company and "what you did" in company
    learned = await chart("company", "c-learned", {"company": "Google"})
    assert {r["About"] for r in learned} >= {"identifiers that follow you", "your device"}
    assert any("why we say so" in r["Why"] for r in learned)
