from mitmproxy.test import tflow

from gazeback.capture.snapshot import snapshot_http
from gazeback.models import MAX_TEXT, TRUNCATION_MARKER
from gazeback.pipeline import observe

KEY = b"k" * 32


def make(url="http://tracker.example/p?a=1", headers=(), content=b""):
    f = tflow.tflow(resp=True)
    f.request.url = url
    for name, value in headers:
        f.request.headers.add(name, value)
    f.request.content = content
    return f


def test_snapshot_and_observe_basic():
    f = make(headers=[("User-Agent", "curl/8"), ("Referer", "https://news.example/?token=x")])
    obs = observe(snapshot_http(f), KEY)
    assert (obs.method, obs.scheme, obs.host, obs.path) == (
        "GET",
        "http",
        "tracker.example",
        "/p?a=1",
    )
    assert obs.query == (("a", "1"),)
    assert obs.user_agent == "curl/8"
    assert obs.referer.startswith("https://news.example/?token=[secret:")
    assert obs.status_code == 200 and obs.device.key == "ip:127.0.0.1"
    assert obs.started_at.endswith("Z")


def test_oversized_url_is_truncated_with_marker():
    obs = observe(snapshot_http(make(url="http://t.example/?q=" + "x" * 65536)), KEY)
    assert len(obs.path) == MAX_TEXT and obs.path.endswith(TRUNCATION_MARKER)


def test_thousand_headers_are_bounded():
    obs = observe(snapshot_http(make(headers=[(f"x-{i}", "v") for i in range(1000)])), KEY)
    assert len(obs.request_headers) == 201
    assert obs.request_headers[-1][0] == "x-gazeback-truncated"


def test_non_utf8_bytes_are_kept_visible():
    f = make()
    f.request.headers.fields = ((b"X-Bin", b"\xff\xfeok"),)
    f.request.path = "/caf\udce9"  # mitmproxy surrogate-escapes undecodable bytes
    obs = observe(snapshot_http(f), KEY)
    assert obs.request_headers == (("X-Bin", "\\xff\\xfeok"),)
    assert isinstance(obs.path, str)


def test_idn_and_ipv6_hosts():
    obs = observe(snapshot_http(make(url="http://[::1]:8080/x")), KEY)
    assert obs.host == "::1" and obs.port == 8080
    obs = observe(snapshot_http(make(url="http://xn--bcher-kva.example/")), KEY)
    assert obs.host == "xn--bcher-kva.example"


def test_proxy_auth_user_names_the_device():
    f = make()
    f.metadata["proxyauth"] = ("phone", "pw")
    assert snapshot_http(f).device.key == "user:phone"


def test_host_header_port_is_not_part_of_the_host():
    f = make(url="http://127.0.0.1:18999/x")
    f.request.headers["Host"] = "127.0.0.1:18999"
    obs = observe(snapshot_http(f), KEY)
    assert (obs.host, obs.port) == ("127.0.0.1", 18999)


def test_a_failed_connect_keeps_the_proxys_reason():
    from mitmproxy import http

    f = make(url="https://gone.example/")
    f.request.method = "CONNECT"
    f.response = http.Response.make(
        502, "Cannot connect to gone.example:443: refused If you plan to redirect requests ..."
    )
    obs = observe(snapshot_http(f, "error"), KEY)
    assert obs.error == "Cannot connect to gone.example:443: refused"
