"""A real mitmdump with gazeback on loopback, driven by real clients (httpx, curl)."""

import shutil
import ssl
import subprocess
import sys
import time

import httpx
import pytest
from conftest import ROOT, start_proxy


def wait_rows(proxy, sql, count, timeout=5.0):
    deadline = time.monotonic() + timeout
    while True:
        try:
            rows = proxy.rows(sql)
        except Exception:  # the db may not exist for the first few ms
            rows = []
        if len(rows) >= count or time.monotonic() > deadline:
            return rows
        time.sleep(0.1)


def test_http_https_and_refused_tls_land_in_trail(proxy, upstream):
    with httpx.Client(proxy=proxy.url, verify=str(proxy.ca), timeout=10) as client:
        r1 = client.get("http://tracker.example/pixel.gif?uid=42&password=hunter2")
        r2 = client.post(
            "https://www.google-analytics.com/g/collect?v=2&tid=G-TEST",
            content=b"en=page_view",
            headers={"Authorization": "Bearer sekrit", "Cookie": "_ga=GA1.1.123"},
        )
    assert (r1.status_code, r2.status_code) == (200, 200)
    assert r2.json()["host"] == "www.google-analytics.com"  # the upstream saw the real name
    # A client that does not trust our CA (like a pinning app): its connection still shows.
    with httpx.Client(proxy=proxy.url, timeout=10) as refusing:
        with pytest.raises(httpx.ConnectError):
            refusing.get("https://pinned.example/config")

    rows = wait_rows(proxy, "select * from trail order by request_id", 3)
    assert proxy.stop() == 0
    rows = proxy.rows(
        "select host, method, kind, is_decrypted, status_code, device, registrable_domain, "
        "started_at, leak_count from trail order by request_id"
    )
    by_host = {r["host"]: r for r in rows}
    assert set(by_host) == {"tracker.example", "www.google-analytics.com", "pinned.example"}
    ga = by_host["www.google-analytics.com"]
    assert (ga["method"], ga["kind"], ga["is_decrypted"], ga["status_code"]) == (
        "POST", "http", 1, 200,
    )  # fmt: skip
    assert ga["registrable_domain"] == "google-analytics.com"
    assert ga["device"] == "this computer"
    assert ga["started_at"].endswith("Z") and ga["started_at"][10] == "T"
    pinned = by_host["pinned.example"]
    assert (pinned["kind"], pinned["is_decrypted"], pinned["method"]) == ("tls_failed", 0, None)
    sni, error = proxy.rows("select tls_sni, error from requests where kind = 'tls_failed'")[
        0
    ].values()
    assert sni == "pinned.example" and "certificate" in error

    # Secrets never reach the database in clear.
    dump = "\n".join(
        proxy.db_path.parent.joinpath(n).read_bytes().decode("latin-1")
        for n in ("trail.db", "trail.db-wal")
        if proxy.db_path.parent.joinpath(n).exists()
    )
    for secret in ("hunter2", "sekrit", "GA1.1.123", "en=page_view"):
        assert secret not in dump
    path = proxy.rows("select path from requests where host = 'tracker.example'")[0]["path"]
    assert path.startswith("/pixel.gif?uid=42&password=[secret:")
    # Database, key and folder are private.
    assert proxy.db_path.stat().st_mode & 0o777 == 0o600
    assert proxy.db_path.with_name("trail.db.key").stat().st_mode & 0o777 == 0o600
    assert proxy.db_path.parent.stat().st_mode & 0o777 == 0o700


def test_pinned_host_is_passed_through_and_counted(proxy, upstream):
    # An app that only trusts its own server's certificate (pinning): the first connection
    # fails against our certificate, later ones pass through undecrypted and are counted.
    ctx = ssl.create_default_context(cafile=str(upstream.ca_path))
    with httpx.Client(proxy=proxy.url, verify=ctx, timeout=10) as app:
        with pytest.raises(httpx.ConnectError):
            app.get("https://pinned.example/first")
    wait_rows(proxy, "select 1 from _pinned_hosts", 1)
    with httpx.Client(proxy=proxy.url, verify=ctx, timeout=10) as app:
        r = app.post("https://pinned.example/second", content=b"x" * 5000)
    assert r.status_code == 200 and r.json()["got"] == 5000
    assert proxy.stop() == 0
    rows = proxy.rows(
        "select kind, host, tls_sni, is_decrypted, request_bytes, response_bytes, error "
        "from requests order by id"
    )
    assert [r["kind"] for r in rows] == ["tls_failed", "tunnel"]
    tunnel = rows[1]
    assert (tunnel["host"], tunnel["tls_sni"], tunnel["is_decrypted"]) == (
        "pinned.example", "pinned.example", 0,
    )  # fmt: skip
    assert tunnel["request_bytes"] > 5000 and tunnel["response_bytes"] > 100
    assert "refused our certificate" in tunnel["error"]


def test_device_from_proxy_credentials(tmp_path, upstream):
    proxy = start_proxy(tmp_path, upstream, "--set", "proxyauth=phone:pw1")
    try:
        url = f"http://phone:pw1@127.0.0.1:{proxy.port}"
        with httpx.Client(proxy=url, verify=str(proxy.ca), timeout=10) as client:
            assert client.get("https://connect.facebook.net/en_US/fbevents.js").status_code == 200
            assert client.get("http://tracker.example/a").status_code == 200
        with httpx.Client(proxy=proxy.url, timeout=10) as anonymous:
            assert anonymous.get("http://tracker.example/b").status_code == 407
    finally:
        assert proxy.stop() == 0
    devices = proxy.rows("select key, label from devices")
    assert devices == [{"key": "user:phone", "label": "phone"}]
    hosts = [r["host"] for r in proxy.rows("select host from trail where device = 'phone'")]
    assert sorted(hosts) == ["connect.facebook.net", "tracker.example"]


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl not installed")
def test_curl_through_proxy_and_odd_input(proxy, upstream):
    long_query = "a=" + "x" * 65536
    for args in (
        [f"http://tracker.example/{long_query}"],
        ["http://api.example.org/h", *sum((["-H", f"X-H{i}: v"] for i in range(1000)), [])],
        ["http://[::1]:9/ipv6"],  # upstream down: recorded as an error, not a crash
        ["https://xn--bcher-kva.example/idn", "--cacert", str(proxy.ca)],
    ):
        subprocess.run(
            ["curl", "-s", "-o", "/dev/null", "-x", proxy.url, "--max-time", "10", *args],
            check=False,
        )
    assert proxy.stop() == 0
    rows = proxy.rows("select host, kind, length(path) as n, path from requests order by id")
    hosts = [r["host"] for r in rows]
    assert "tracker.example" in hosts and "api.example.org" in hosts
    long = next(r for r in rows if r["host"] == "tracker.example")
    assert long["n"] <= 4096 and long["path"].endswith("…[truncated]")
    headers = proxy.rows(
        "select h.headers as request_headers from requests r "
        "join header_sets h on h.id = r.header_set_id where r.host = 'api.example.org'"
    )
    assert "more" in headers[0]["request_headers"]  # 1,000 headers: kept up to a bound
    assert "Traceback" not in proxy.log.read_text()


def test_exception_in_gazeback_leaves_traffic_alone(tmp_path, upstream):
    proxy = start_proxy(tmp_path, upstream, scripts=("broken_gazeback.py",))
    try:
        with httpx.Client(proxy=proxy.url, verify=str(proxy.ca), timeout=10) as client:
            r = client.get("https://www.google-analytics.com/collect?v=1")
        assert r.status_code == 200 and r.json()["path"] == "/collect?v=1"
    finally:
        assert proxy.stop() == 0
    log = proxy.log.read_text()
    assert "gazeback: error while recording a flow (traffic unaffected)" in log
    assert "gazeback errors: 1" in log


def test_ignored_host_is_recorded_as_an_undecrypted_tunnel(tmp_path, upstream):
    proxy = start_proxy(
        tmp_path, upstream, "--ignore-hosts", r"^api\.example\.org:", "--set",
        "show_ignored_hosts=true",
    )  # fmt: skip
    try:
        ctx = ssl.create_default_context(cafile=str(upstream.ca_path))
        with httpx.Client(proxy=proxy.url, verify=ctx, timeout=10) as client:
            assert client.get("https://api.example.org/v1/config").status_code == 200
    finally:
        assert proxy.stop() == 0
    rows = proxy.rows(
        "select kind, host, is_decrypted, request_bytes, response_bytes, error from requests"
    )
    assert len(rows) == 1
    row = rows[0]
    assert (row["kind"], row["host"], row["is_decrypted"]) == ("tunnel", "api.example.org", 0)
    assert row["request_bytes"] > 100 and row["response_bytes"] > 100
    assert "without decryption" in row["error"]


def test_unusable_database_stops_mitmdump_at_start(tmp_path):
    (tmp_path / "afile").write_text("")
    out = subprocess.run(
        [sys.executable, "-c", "from mitmproxy.tools.main import mitmdump; mitmdump()",
         "--listen-host", "127.0.0.1", "--listen-port", "0", "--set", f"confdir={tmp_path}",
         "-s", str(ROOT / "addons" / "gazeback_addon.py"),
         "--set", f"gazeback_db={tmp_path / 'afile' / 'trail.db'}"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert out.returncode != 0
    assert "cannot record to" in out.stdout + out.stderr
    assert "is a file, not a folder" in out.stdout + out.stderr


def test_the_proxys_own_pages_are_not_part_of_the_trail(proxy, upstream):
    # mitm.it (certificate onboarding) is answered by the proxy itself, also on a connection
    # that has just talked to a real server.
    with httpx.Client(proxy=proxy.url, timeout=10) as client:
        assert client.get("http://tracker.example/before").status_code == 200
        assert client.get("http://mitm.it/").status_code == 200
        assert client.get("http://tracker.example/after").status_code == 200
    assert proxy.stop() == 0
    assert [r["host"] for r in proxy.rows("select host from requests order by id")] == [
        "tracker.example", "tracker.example",
    ]  # fmt: skip
