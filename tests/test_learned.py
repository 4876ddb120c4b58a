"""What adapters learned, stored safely (#14): identifiers as keyed fingerprints, coordinates
rounded, values short and scrubbed, linking across companies, nothing in exports."""

from __future__ import annotations

import json

from mitmproxy.test import tflow
from sqlite_utils import Database

from gazeback.capture.snapshot import snapshot_http
from gazeback.capture.spill import decode, encode
from gazeback.db import migrations
from gazeback.db.store import save_records
from gazeback.knowledge import learn
from gazeback.leaks.detect import fingerprint
from gazeback.leaks.needles import build_profile
from gazeback.models import IdentityValue
from gazeback.pipeline import Context, process

KEY = b"k" * 32
EMAIL = "jane.doe@example.org"
IFA = "6d92078a-8246-4ba4-ae5b-76104861e7dc"

TEST_ADAPTERS = learn.AdapterIndex(
    learn.parse_file(
        "test.yaml",
        """
company: Example Ads
adapters:
  - id: example-sdk
    name: Example SDK
    endpoints:
      - hosts: ["*.ads.example"]
        path: "^/v1/event$"
    properties:
      advertisingId:
        - path: body.device.ifa
          not_if: ["00000000-0000-0000-0000-000000000000"]
          reason: https://ads.example/docs/event
      model:
        - path: body.device.model
          reason: https://ads.example/docs/event
      latitude:
        - path: body.geo.lat
          reason: https://ads.example/docs/event
      longitude:
        - path: body.geo.lon
          reason: https://ads.example/docs/event
      viewedPage:
        - path: body.page
          reason: https://ads.example/docs/event
      userAgent:
        - path: header.user-agent
          reason: https://ads.example/docs/event
""",
    )
)


def run(url, body=b"", headers=(), profile=None, adapters=TEST_ADAPTERS, method="POST"):
    f = tflow.tflow(resp=True)
    f.request.url = url
    f.request.method = method
    f.request.headers["User-Agent"] = "ExampleApp/2.1 (Android 14)"
    for name, value in headers:
        f.request.headers[name] = value
    f.request.content = body
    context = Context(KEY, None, profile if profile is not None else build_profile([]), adapters)
    return process(snapshot_http(f), context)


def event(**fields):
    doc = {
        "device": {"ifa": IFA, "model": "Pixel 7"},
        "geo": {"lat": 52.520008, "lon": 13.404954},
        "page": "https://shop.example/cart?token=" + "Zq8xK2mW9pL4vN7rT3yB6cD1" + "&item=shoes",
    }
    doc.update(fields)
    return json.dumps(doc).encode()


def test_identifiers_are_fingerprinted_coordinates_rounded_values_scrubbed():
    record = run("https://x.ads.example/v1/event", event(), [("Content-Type", "application/json")])
    by = {x.property: x for x in record.learned}
    assert set(by) == {"advertisingId", "model", "latitude", "longitude", "viewedPage", "userAgent"}
    ifa = by["advertisingId"]
    assert ifa.value is None and ifa.fingerprint == fingerprint(KEY, IFA)
    assert ifa.group == "identifier" and ifa.location == "body:device.ifa"
    assert IFA not in ifa.preview and IFA[:2] in ifa.preview
    assert by["model"].value == "Pixel 7" and by["model"].group == "device"
    assert (by["latitude"].value, by["longitude"].value) == ("52.52", "13.40")
    page = by["viewedPage"].value
    assert page is not None and "Zq8xK2mW9pL4vN7rT3yB6cD1" not in page and "item=shoes" in page
    stored = json.dumps(encode(record))
    assert (
        IFA not in stored and "52.520008" not in stored and "Zq8xK2mW9pL4vN7rT3yB6cD1" not in stored
    )


def test_registered_identities_never_stored_in_clear():
    profile = build_profile([IdentityValue(1, "email", EMAIL)])
    record = run(
        "https://x.ads.example/v1/event",
        event(page=f"https://shop.example/welcome?u={EMAIL}", device={"model": EMAIL}),
        [("Content-Type", "application/json")],
        profile=profile,
    )
    by = {x.property: x for x in record.learned}
    assert by["model"].value == "[your email]"
    assert EMAIL not in json.dumps(encode(record))
    assert by["viewedPage"].value is not None and "[your email]" in by["viewedPage"].value


def test_values_are_bounded_and_absent_values_skipped():
    long_model = "M" * 500
    record = run(
        "https://x.ads.example/v1/event",
        event(device={"ifa": "00000000-0000-0000-0000-000000000000", "model": long_model}),
    )
    by = {x.property: x for x in record.learned}
    assert "advertisingId" not in by
    assert by["model"].value is not None and len(by["model"].value) == 120
    assert by["model"].value.endswith("…")


def test_no_adapter_no_learning():
    assert run("https://elsewhere.example/v1/event", event()).learned == ()
    assert run("https://x.ads.example/other", event()).learned == ()
    assert run("https://x.ads.example/v1/event", event(), adapters=None).learned == ()


def test_store_writes_learned_rows_with_the_request_and_views_read_them(tmp_path):
    db = Database(tmp_path / "g.db")
    migrations.apply(db)
    items = []
    for n, host in enumerate(["x.ads.example", "y.ads.example"]):
        rec = run(f"https://{host}/v1/event?n={n}", event(), [("Content-Type", "application/json")])
        items.append(rec)
    # the same identifier, as a plain leaf of a request to another company (no adapter for it)
    other = run(
        "https://collector.other.example/p",
        json.dumps({"aid": IFA}).encode(),
        [("Content-Type", "application/json")],
    )
    items.append(other)
    assert save_records(db, 1, items) == 3
    rows = list(db.query("select * from learned order by request_id, property"))
    assert {r["property"] for r in rows} >= {"advertisingId", "model", "latitude"}
    ifa = [r for r in rows if r["property"] == "advertisingId"]
    assert len(ifa) == 2 and all(r["value"] != IFA and r["company"] == "Example Ads" for r in ifa)
    assert ifa[0]["kind_group_words"] == "identifiers that follow you"
    assert ifa[0]["property_words"] == "your device's advertising ID"
    assert ifa[0]["location"] == "body:device.ifa" and ifa[0]["host"] == "x.ads.example"
    raw = json.dumps([dict(r) for r in db.query("select * from learned_items")])
    assert IFA not in raw
    links = list(db.query("select * from learned_links"))
    assert len(links) == 1, links
    link = links[0]
    assert link["company_count"] == 2 and "Example Ads" in link["companies"]
    assert link["requests"] == 3 and link["preview"] == ifa[0]["value"]
    # a spilled record comes back with what it learned (the spill file is the one serialised form)
    assert decode(json.loads(json.dumps(encode(items[0])))).learned == items[0].learned
    # saving the same items again writes nothing twice
    assert save_records(db, 1, items) == 0
    assert db["learned_items"].count == len(rows)


def test_exports_carry_no_learned_values(tmp_path):
    from click.testing import CliRunner

    from gazeback.cli.export import export

    src = tmp_path / "t.db"
    db = Database(src)
    migrations.apply(db)
    model = "Canary-Model-5b7e19"
    items = [
        (
            run(
                f"https://x.ads.example/v1/event?n={i}",
                event(device={"ifa": IFA, "model": model}),
                [("Content-Type", "application/json")],
            )
        )
        for i in range(5)
    ]
    save_records(db, 1, items)
    assert db["learned_items"].count == 5 * 6
    db.close()
    out = tmp_path / "share.db"
    result = CliRunner().invoke(export, [str(src), str(out)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    data = out.read_bytes()
    assert model.encode() not in data and IFA.encode() not in data and b"52.52" not in data
    assert "learned_items" not in Database(out).table_names()


def test_reclassify_applies_adapters_to_traffic_recorded_before(tmp_path):
    from click.testing import CliRunner

    from gazeback.cli.trackers import reclassify
    from gazeback.db.localfiles import load_or_create_key

    path = tmp_path / "t.db"
    db = Database(path)
    migrations.apply(db)
    key = load_or_create_key(path)
    fbp = "fb.1.1700000000000.987654321"

    def old(url, body=b"", headers=()):  # recorded before any adapter existed
        f = tflow.tflow(resp=True)
        f.request.url = url
        f.request.method = "POST" if body else "GET"
        for name, value in headers:
            f.request.headers[name] = value
        f.request.content = body
        return process(snapshot_http(f), Context(key, None, build_profile([]), None))

    items = [
        old("https://www.google-analytics.com/collect?v=1&tid=UA-9-9&cid=555.666&dl=https%3A%2F%2Fexample.org%2Fa&sr=1920x1080"),
        old("https://www.facebook.com/tr/", b"id=42&ev=Purchase&fbp=" + fbp.encode(),
            [("Content-Type", "application/x-www-form-urlencoded")]),
    ]  # fmt: skip
    save_records(db, 1, items)
    assert db["learned_items"].count == 0
    result = CliRunner().invoke(reclassify, ["--db", str(path)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "2 requests to endpoints adapters know, " in result.output
    got = {(r["property"], r["value"]) for r in db.query("select * from learned")}
    assert ("propertyId", "UA-9-9") in got and ("viewedPage", "https://example.org/a") in got
    assert ("screenWidth", "1920") in got
    fb = {
        r["property"]: r
        for r in db.query("select * from learned_items where adapter = 'meta-pixel'")
    }
    # the body is gone: its identifier comes back from the leaf fingerprint, its other values do not
    assert (
        fb["browserId"]["fingerprint"] == fingerprint(key, fbp) and fb["browserId"]["value"] is None
    )
    assert "userAction" not in fb
    again = CliRunner().invoke(reclassify, ["--db", str(path)], catch_exceptions=False)
    assert "0 new findings" in again.output


def test_an_imported_har_is_learned_from_like_live_traffic(tmp_path):
    from click.testing import CliRunner

    from gazeback.cli.imports import import_

    def entry(method, url, text=None, mime=""):
        request = {"method": method, "url": url, "httpVersion": "HTTP/1.1", "cookies": [],
                   "headers": [{"name": "User-Agent", "value": "Mozilla/5.0"}],
                   "queryString": [], "headersSize": -1, "bodySize": len(text or "")}  # fmt: skip
        if text is not None:
            request["postData"] = {"mimeType": mime, "text": text}
        return {
            "startedDateTime": "2026-11-20T10:00:00.000Z", "time": 5, "request": request,
            "response": {"status": 200, "statusText": "OK", "httpVersion": "HTTP/1.1",
                         "cookies": [], "headers": [], "content": {"size": 0, "mimeType": ""},
                         "redirectURL": "", "headersSize": -1, "bodySize": 0},
            "cache": {}, "timings": {"send": 0, "wait": 5, "receive": 0},
        }  # fmt: skip

    har = tmp_path / "s.har"
    har.write_text(json.dumps({"log": {"version": "1.2", "creator": {"name": "t", "version": "1"},
        "entries": [
            entry("GET", "https://www.google-analytics.com/collect?v=1&tid=UA-3-3&cid=9.8&sr=800x600"),
            entry("POST", "https://www.facebook.com/tr/", "id=5&ev=Lead&fbp=fb.1.2.3",
                  "application/x-www-form-urlencoded"),
            entry("GET", "https://www.google-analytics.com/analytics.js"),
        ]}}))  # fmt: skip
    db_path = tmp_path / "t.db"
    migrations.apply(Database(db_path))
    result = CliRunner().invoke(
        import_, ["--db", str(db_path), str(har), "-s"], catch_exceptions=False
    )
    assert result.exit_code == 0, result.output
    rows = list(Database(db_path).query("select host, property, value from learned"))
    got = {(r["property"], r["value"]) for r in rows}
    assert {("propertyId", "UA-3-3"), ("screenWidth", "800"), ("propertyId", "5")} <= got
    assert {r["host"] for r in rows} == {"www.google-analytics.com", "www.facebook.com"}
    assert "fb.1.2.3" not in json.dumps(rows)
