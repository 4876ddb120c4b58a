"""Security of the dashboard itself: headers, Host check (DNS rebinding), password beyond
loopback, read-only, no download of the database."""

import base64

import pytest
import sqlite_utils
from signin import signed_in

from gazeback.dashboard.access import check_password, hash_password, local_location
from gazeback.dashboard.plugin import host_allowed
from gazeback.dashboard.serve import make_datasette
from gazeback.db import migrations


@pytest.fixture
def trail(tmp_path):
    path = tmp_path / "trail.db"
    migrations.apply(sqlite_utils.Database(path))
    return path


@pytest.mark.parametrize(
    "host,ok",
    [("127.0.0.1:8001", True), ("localhost", True), ("[::1]:8001", True),
     ("evil.example", False), ("evil.example:8001", False), ("127.0.0.1.evil.example", False),
     (None, False)],
)  # fmt: skip
def test_host_allowed(host, ok):
    assert host_allowed(host, ["127.0.0.1", "localhost", "[::1]"]) is ok


def test_password_hash_round_trip():
    stored = hash_password("correct horse")
    assert "correct horse" not in stored
    assert stored.startswith("$2b$")  # bcrypt
    assert check_password("correct horse", stored) and not check_password("wrong", stored)
    assert not check_password("x", "pbkdf2_sha256$1$00$00") and not check_password("a\0b", stored)


@pytest.mark.parametrize(
    "path,query,expected",
    [("/-/dashboards/trail", "", "/-/dashboards/trail"), ("/trail", "a=1", "/trail?a=1"),
     ("//evil.example/x", "", "/evil.example/x"), ("/\\evil.example", "", "/evil.example")],
)  # fmt: skip
def test_the_redirect_after_the_token_stays_on_this_server(path, query, expected):
    assert local_location(path, query) == expected


async def test_every_page_has_security_headers(trail):
    ds = await signed_in(make_datasette(trail))
    for path in ("/", "/-/dashboards/trail", "/trail/requests", "/trail.json?sql=select+1"):
        r = await ds.client.get(path)
        assert r.status_code == 200, path
        csp = r.headers["content-security-policy"]
        assert "default-src 'self'" in csp and "frame-ancestors 'none'" in csp
        assert r.headers["x-frame-options"] == "DENY"


async def test_a_rebinding_web_page_cannot_read_the_trail(trail):
    ds = make_datasette(trail)
    r = await ds.client.get(
        "/trail.json?sql=select+*+from+requests", headers={"host": "evil.example"}
    )
    assert r.status_code == 403


async def test_database_is_read_only_and_not_downloadable(trail):
    ds = await signed_in(make_datasette(trail))
    assert (await ds.client.get("/trail.db")).status_code == 403
    r = await ds.client.get("/trail.json", params={"sql": "delete from requests"})
    assert r.status_code == 400 or "error" in r.text.lower()
    r = await ds.client.get("/trail.json", params={"sql": "select * from pragma_database_list"})
    assert "mitmproxy-ca" not in r.text


async def test_beyond_loopback_every_request_needs_the_password(trail):
    from datasette.app import Datasette

    from gazeback.dashboard.serve import dashboard_metadata

    meta = dashboard_metadata("trail")  # what `gazeback dashboard --host 0.0.0.0` writes
    meta["plugins"]["gazeback"] = {"allowed_hosts": ["*"], "password_hash": hash_password("s3cret")}
    ds = Datasette([str(trail)], metadata=meta)
    assert (await ds.client.get("/-/dashboards/trail")).status_code == 401
    bad = base64.b64encode(b"me:wrong").decode()
    good = base64.b64encode(b"me:s3cret").decode()
    r = await ds.client.get("/-/dashboards/trail", headers={"authorization": f"Basic {bad}"})
    assert r.status_code == 401
    r = await ds.client.get("/-/dashboards/trail", headers={"authorization": f"Basic {good}"})
    assert r.status_code == 200


def test_canned_queries_are_parameterized():
    from gazeback.dashboard.serve import dashboard_metadata

    meta = dashboard_metadata("trail")
    queries = meta["databases"]["trail"].get("queries", {})
    for name, query in queries.items():
        sql = query["sql"] if isinstance(query, dict) else query
        assert "{" not in sql and "%s" not in sql, name  # values arrive as :named parameters
        assert not (isinstance(query, dict) and query.get("write")), name


async def test_posts_without_the_csrf_token_are_refused(trail):
    # A malicious page can make your browser POST to localhost, with your cookies.
    ds = await signed_in(make_datasette(trail))
    for path in ("/-/logout", "/trail"):
        r = await ds.client.post(path, data={"sql": "delete from requests"})
        assert r.status_code == 403 and "did not match" in r.text
