"""Which app sent it: the per-app importers (reported) and live inference (inferred) (#17)."""

import httpx
import pytest
from importgolden import DATA, fresh_db, import_path

from gazeback.imports.importers import detect_format
from gazeback.knowledge.apps import app_name, infer_app

INFER = [
    ("Instagram/312.0 CFNetwork/1494.0.7 Darwin/23.4.0", (), (), None, "Instagram"),
    ("Weather%20Pro/2 CFNetwork/1494.0.7 Darwin/23.4.0", (), (), None, "Weather Pro"),
    ("com.apple.WebKit.Networking/19618 CFNetwork/1494.0.7 Darwin/23.4.0", (), (), None, None),
    ("Mozilla/5.0 (iPhone) [FBAN/FBIOS;FBAV/450.0]", (), (), None, "com.facebook.Facebook"),
    ("Mozilla/5.0 (Linux; Android 14) [FB_IAB/FB4A;FBAV/450.0;FBPN/com.facebook.katana;]",
     (), (), None, "com.facebook.katana"),
    ("Instagram 302.0.0.23.114 Android (34/14; 420dpi; 1080x2400; Google; Pixel 7)", (), (),
     None, "Instagram"),
    ("okhttp/4.12.0", (("X-Android-Package", "com.example.weather"),), (), None,
     "com.example.weather"),
    ("Dalvik/2.1.0 (Linux; U; Android 14)", (("x-requested-with", "com.example.news"),), (),
     None, "com.example.news"),
    ("okhttp/4.12.0", (), (("application_package_name", "com.example.game"),), None,
     "com.example.game"),
    ("okhttp/4.12.0", (), (), b'{"application_package_name":"com.example.shop","x":1}',
     "com.example.shop"),
    ("okhttp/4.12.0", (), (), b"bundle=com.example.ads&w=320", "com.example.ads"),
    ("okhttp/4.12.0", (("X-Android-Package", "alice@example.org"),), (), None, None),
    ("Roku/DVP-12.5 (12.5.0.4174-AE)", (), (), None, "Roku"),
    ("Mozilla/5.0 (SMART-TV; LINUX; Tizen 7.0) AppleWebKit/537.36", (), (), None,
     "Samsung Smart TV (Tizen)"),
    ("Mozilla/5.0 (PlayStation; PlayStation 5/8.20) AppleWebKit/605.1.15", (), (), None,
     "PlayStation"),
    ("Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0", (), (), None,
     None),
    (None, (), (), None, None),
]  # fmt: skip


@pytest.mark.parametrize("ua,headers,query,body,app", INFER)
def test_infer_app(ua, headers, query, body, app):
    assert infer_app(ua, headers, query, body) == app


def test_app_names_show_known_ids_and_keep_unknown_ones():
    assert app_name("com.burbn.instagram") == "Instagram"
    assert app_name("com.example.weather") == "com.example.weather"
    assert app_name(None) is None


@pytest.mark.parametrize(
    "name,fmt",
    [("pcapdroid-trailer.pcap", "pcap"), ("pcapdroid.pcapng", "pcapng"),
     ("pcapdroid-connections.csv", "pcapdroid-csv"),
     ("trackercontrol_log_20261127.csv", "trackercontrol-csv"),
     ("com.example.weather_20261127.csv", "trackercontrol-csv"),
     ("httptoolkit.har", "httptoolkit-har")],
)  # fmt: skip
def test_detect_app_formats(name, fmt):
    assert detect_format((DATA / name).read_bytes()[:4096]) == fmt


@pytest.mark.parametrize(
    "name,apps",
    [
        ("pcapdroid-trailer.pcap", {("Instagram", "reported"), ("Weather Today", "reported")}),
        ("pcapdroid.pcapng", {("com.instagram.android", "reported"),
                              ("com.example.weather", "reported")}),
        ("pcapdroid-connections.csv", {("com.instagram.android", "reported"),
                                       ("com.example.weather", "reported"),
                                       ("android", "reported")}),
        ("trackercontrol_log_20261127.csv", {("com.instagram.android", "reported"),
                                             ("com.example.weather", "reported")}),
        ("com.example.weather_20261127.csv", {("com.example.weather", "reported")}),
        # HTTP Toolkit's source (its guess from the user agent) and gazeback's own reading
        # of the request are both inferences; the failed TLS connection has no app
        ("httptoolkit.har", {("com.instagram.android", "inferred"),
                             ("Chrome 131.0.0.0 (Android 14)", "inferred"), (None, None)}),
    ],
)  # fmt: skip
def test_imported_apps_say_who_said_so(name, apps):
    db = fresh_db()
    import_path(db, DATA / name)
    got = {(r["app"], r["app_source"]) for r in db.query("select app, app_source from requests")}
    assert got == apps


def test_app_companies_view_says_what_each_app_let_each_company_learn():
    db = fresh_db()
    import_path(db, DATA / "pcapdroid.pcapng")
    rows = list(db.query("select app_name, company, learned, app_source from app_companies"))
    weather = [r for r in rows if r["app_name"] == "com.example.weather"]
    assert weather and weather[0]["learned"] == "your email address"
    assert weather[0]["app_source"] == "reported"
    assert {r["app_name"] for r in rows} == {"Instagram", "com.example.weather"}


def test_live_request_app_is_inferred_through_the_real_proxy(proxy, upstream):
    """An iOS app's request through mitmproxy: stored with its app, marked inferred."""
    with httpx.Client(proxy=proxy.url, verify=str(proxy.ca), timeout=10) as client:
        client.get(
            "https://graph.facebook.com/v19.0/x?application_package_name=com.example.game",
            headers={"User-Agent": "okhttp/4.12.0"},
        )
        client.get(
            "https://tracker.example/collect",
            headers={"User-Agent": "Instagram/312.0 CFNetwork/1494.0.7 Darwin/23.4.0"},
        )
        client.get("https://tracker.example/plain", headers={"User-Agent": "curl/8.5"})
    assert proxy.stop() == 0
    rows = proxy.rows("select path, app, app_source from trail order by request_id")
    assert [(r["path"].split("?")[0], r["app"], r["app_source"]) for r in rows] == [
        ("/v19.0/x", "com.example.game", "inferred"),
        ("/collect", "Instagram", "inferred"),
        ("/plain", None, None),
    ]


@pytest.fixture(scope="module")
def app_trail(tmp_path_factory):
    """The demo trail plus a PCAPdroid capture and a TrackerControl export (reported apps)."""
    from click.testing import CliRunner

    from gazeback.cli.imports import import_
    from gazeback.dashboard import demo

    path = tmp_path_factory.mktemp("apps") / "trail.db"
    demo.generate(path, scale=400, seed=5)
    files = [str(DATA / n) for n in ("pcapdroid.pcapng", "trackercontrol_log_20261127.csv")]
    result = CliRunner().invoke(import_, ["--db", str(path), *files, "-s"])
    assert result.exit_code == 0, result.output
    return path


async def test_by_app_dashboard_and_summary_page(app_trail):
    import re

    from datasette_dashboards import replace_opts_in_query
    from signin import signed_in

    from gazeback.dashboard import serve

    ds = await signed_in(serve.make_datasette(app_trail))
    r = await ds.client.get("/-/dashboards/apps")
    assert r.status_code == 200 and "By app" in r.text
    charts = serve.dashboard_metadata("trail")["plugins"]["datasette-dashboards"]["apps"]["charts"]
    sql = replace_opts_in_query(charts["a-table"]["query"], {})
    rows = (await ds.client.get("/trail.json", params={"sql": sql, "_shape": "objects"})).json()
    rows = rows["rows"]
    said = {(x["App"], x["Company"]): (x["Who said so"], x["What it learned"]) for x in rows}
    # the demo's weather app names itself in its requests (guessed); the PCAPdroid capture
    # reports it too, on its own device: both, for Google
    assert said[("com.example.weather", "AppsFlyer")] == (
        "guessed",
        "your advertising ID, your phone's device ID",
    )
    assert said[("com.example.weather", "Google")][0] == "reported and guessed"
    assert said[("Instagram", "Meta Platforms, Inc.")] == ("reported", "—")
    assert said[("Samsung Smart TV (Tizen)", "Samsung")][0] == "guessed"
    # the trail table filters and facets by app, as it does by device
    r = await ds.client.get(
        "/trail/trail.json",
        params={"app": "com.example.weather", "_shape": "objects", "_facet": "app_source"},
    )
    assert r.status_code == 200 and {x["app"] for x in r.json()["rows"]} == {"com.example.weather"}
    # the button on the trail dashboard and the page it opens
    page = await ds.client.get("/-/dashboards/trail")
    assert "/-/gazeback/summary" in page.text
    r = await ds.client.get(
        "/-/gazeback/summary", params={"app": "com.example.weather", "days": "all"}
    )
    assert r.status_code == 200 and "Who knows what about me" in r.text
    assert "app “com.example.weather”" in r.text and "<form class=noprint" in r.text
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", r.text)
    r = await ds.client.get("/-/gazeback/summary", params={"device": "<script>", "sites": "1"})
    assert r.status_code == 200 and "<script>" not in r.text
    # the workshop's room handout: the room's summary, nobody's details
    workshop = await ds.client.get("/-/dashboards/workshop")
    assert "/-/gazeback/summary?room=1" in workshop.text
    r = await ds.client.get("/-/gazeback/summary", params={"room": "1", "days": "all"})
    assert r.status_code == 200 and "Who knows what about this room" in r.text
    assert "only what at least 2 share" in r.text and "Alex" not in r.text
    assert "Identifiers that link" not in r.text and "<form" not in r.text


@pytest.mark.parametrize(
    "fmt,why",
    [("pcapdroid-csv", "not a PCAPdroid connections CSV: the first line is not its header"),
     ("trackercontrol-csv", "not a TrackerControl CSV export: its header is neither")],
)  # fmt: skip
def test_a_csv_of_another_kind_is_rejected_whole(tmp_path, fmt, why):
    import sqlite_utils
    from click.testing import CliRunner

    from gazeback.cli.imports import import_
    from gazeback.db import migrations

    db_path = tmp_path / "t.db"
    migrations.apply(sqlite_utils.Database(db_path))
    other = DATA / "tracker_accuracy.csv"
    result = CliRunner().invoke(import_, ["--db", str(db_path), str(other), "--format", fmt, "-s"])
    assert result.exit_code == 1
    assert f"{other}: rejected, nothing imported: {why}" in result.stderr
    assert sqlite_utils.Database(db_path)["captures"].count == 0


def test_pcapdroid_csv_info_with_commas_and_the_malicious_column():
    """Fields are not quoted: an Info with commas is read from both ends of the row."""
    import io

    from gazeback.imports.android import PCAPDROID_HEADER, read_pcapdroid_csv
    from gazeback.imports.base import Entry, Source

    row = ("6,10.0.0.2,5000,192.0.2.1,80,10456,Weather,com.example.weather,HTTP,Closed,"
           "odd,name.example,10,20,1,1,2026-11-27T06:40:42.000+01:00,"
           "2026-11-27T06:40:43.000+01:00,yes")  # fmt: skip
    data = f"{PCAPDROID_HEADER},Malicious\n{row}\n".encode()
    got = list(read_pcapdroid_csv(io.BytesIO(data), Source("c.csv", "0" * 64)))
    assert len(got) == 1 and isinstance(got[0], Entry)
    snap = got[0].snap
    assert (snap.host, snap.request_bytes, snap.response_bytes, snap.duration_ms) == (
        "odd,name.example",
        10,
        20,
        1000.0,
    )
    assert got[0].app == "com.example.weather" and got[0].app_source == "reported"
