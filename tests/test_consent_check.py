"""The consent check end to end (#16): pages on loopback imitating two CMPs that
autoconsent's rules know (Cookie-Script, CookieYes) and a TCF stub; their trackers reach
the test upstream through gazeback's proxy; headless Chromium (Debian's) clicks."""

import base64
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import sqlite_utils
from click.testing import CliRunner
from conftest import HELPERS

from gazeback import chromium
from gazeback.cli import cli
from gazeback.db import experiments as ex
from gazeback.knowledge.consent import consent_mode, decode_tcf

CHROMIUM = chromium.which()
pytest.importorskip("playwright")


def tc_string(purposes, vendors):
    """A TCF v2 core string (the fields decode_tcf reads, in the specification's order)."""
    bits = []

    def add(value, n):
        bits.append(format(value, f"0{n}b"))

    add(2, 6), add(0, 36), add(0, 36), add(300, 12), add(1, 12), add(1, 6)
    add((4 << 6) | 13, 12), add(100, 12), add(2, 6), add(0, 1), add(0, 1), add(0, 12)
    bits.append("".join("1" if i + 1 in purposes else "0" for i in range(24)))
    add(0, 24), add(0, 1), add(0, 12)
    top = max(vendors, default=0)
    add(top, 16), add(0, 1)
    bits.append("".join("1" if i + 1 in vendors else "0" for i in range(top)))
    s = "".join(bits)
    s += "0" * (-len(s) % 8)
    raw = int(s, 2).to_bytes(len(s) // 8, "big")
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


ALL = tc_string(set(range(1, 11)), {1, 2, 755})
NONE = tc_string(set(), set())

PAGE = """<!doctype html><html><head><title>A shop</title><script>
window.__tc = null;
window.__tcfapi = function (cmd, v, cb) {
  if (cmd === 'getTCData') cb({tcString: window.__tc, gdprApplies: true}, !!window.__tc);
  else if (cmd === 'ping') cb({gdprApplies: true, cmpLoaded: true}, true);
};
function beacon(u) { fetch(u, {mode: 'no-cors'}); }
beacon('https://www.google-analytics.com/g/collect?v=2&tid=G-TEST1&en=page_view');
function choose(ok) {
  document.getElementById('%(box)s').style.display = 'none';
  window.__tc = ok ? '%(all)s' : '%(reject_tc)s';
  document.cookie = 'euconsent-v2=' + window.__tc + '; path=/';
  beacon('https://www.google-analytics.com/g/collect?v=2&tid=G-TEST1&en=consent&gcs='
         + (ok ? 'G111' : '%(reject_gcs)s'));
  if (ok) beacon('https://connect.facebook.net/tr?id=1&ev=PageView');
}
</script></head><body><h1>A shop</h1>%(banner)s</body></html>"""

COOKIE_SCRIPT = """<div id="cookiescript_injected" style="position:fixed;bottom:0;padding:20px">
We use cookies. <button id="cookiescript_accept" onclick="choose(true)">Accept all</button>
<button id="cookiescript_reject" onclick="choose(false)">Reject all</button></div>"""

COOKIEYES = """<div class="cky-consent-container" id="cky" style="position:fixed;bottom:0;padding:20px">
We use cookies.
<button data-cky-tag="accept-button" onclick="choose(true)">Accept All</button>
<button data-cky-tag="reject-button" onclick="choose(false)">Reject All</button></div>"""

PAGES = {
    # honest: a reject is passed on as a refusal
    "/cookiescript": PAGE
    % dict(
        box="cookiescript_injected",
        banner=COOKIE_SCRIPT,
        all=ALL,
        reject_tc=NONE,
        reject_gcs="G100",
    ),  # fmt: skip
    # dishonest: after a reject it tells vendors consent was given
    "/cookieyes": PAGE
    % dict(box="cky", banner=COOKIEYES, all=ALL, reject_tc=ALL, reject_gcs="G111"),  # fmt: skip
    "/nobanner": PAGE % dict(box="x", banner="", all=ALL, reject_tc=NONE, reject_gcs="G100"),
}


class Site(BaseHTTPRequestHandler):
    def do_GET(self):
        body = PAGES.get(self.path, "").encode()
        self.send_response(200 if body else 404)
        self.send_header("content-type", "text/html")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def site():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Site)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


def check(tmp_path, upstream, site, paths, name, *extra):
    """One `gazeback consent-check` of every page in ``paths`` (one proxy, one browser);
    the report and comparison per page."""
    urls = ["http://shop.example" + p for p in paths]
    db_path = tmp_path / "trail.db"
    assert CliRunner().invoke(cli, ["migrate", "--db", str(db_path)]).exit_code == 0
    more = [a for u in urls[1:] for a in ("--and", u)]
    res = CliRunner().invoke(
        cli,
        ["consent-check", urls[0], *more, "--db", str(db_path), "--runs", "1", "--wait", "0.5",
         "--experiment", name, *extra, "--",
         "--set", f"confdir={tmp_path / 'conf'}",
         "--set", f"ssl_verify_upstream_trusted_ca={upstream.ca_path}",
         "-s", str(HELPERS / "hostmap.py"),
         "--set", f"hostmap_port={upstream.https_port}",
         "--set", f"hostmap_http_port={upstream.http_port}",
         "-s", str(HELPERS / "localsite.py"), "--set", f"localsite_port={site}"],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    db = sqlite_utils.Database(db_path)
    try:
        return res.output, {
            p: (
                ex.consent_report(db, f"{name} shop.example{p}"),
                ex.compare(db, f"{name} shop.example{p}", "accept all", "reject all"),
            )
            for p in paths
        }
    finally:
        db.close()


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed")
def test_consent_check_clicks_records_and_compares(tmp_path, upstream, site):
    # autoconsent finds these banners within a second or two; on a page without one it keeps
    # watching for late banners, so the test stops looking after 4 s (default 10)
    pages = ["/cookiescript", "/cookieyes", "/nobanner"]
    out, found = check(tmp_path, upstream, site, pages, "t", "--detect-timeout", "4")
    assert "run 1, reject all: done (banner: cookie-script)" in out, out
    assert "run 1, accept all: done (banner: cookie-script)" in out, out
    # honest: what the site told vendors matches the clicks
    rep, c = found["/cookiescript"]
    runs = {r["condition"]: r for r in rep["runs"]}
    assert runs["no choice"]["click_result"] == "none"
    assert runs["reject all"]["clicked_at"] > runs["reject all"]["started_at"]
    assert json.loads(runs["reject all"]["tcf_summary"])["purposes_consented"] == []
    assert json.loads(runs["accept all"]["tcf_summary"])["purposes_consented"] == list(range(1, 11))
    google = rep["fired_before_choice"]
    assert len(google) == 1 and "Google" in google[0], rep
    assert rep["still_after_reject"] == google  # the consent beacon after "reject all"
    assert rep["consent_mode"] == {"reject all": {"denied": 1}, "accept all": {"granted": 1}}
    assert rep["mismatches"] == []
    only_accept = c.only_a("company")
    assert len(only_accept) == 1 and ("Facebook" in str(only_accept) or "Meta" in str(only_accept))
    assert c.both("company") == set(google)
    assert c.only_b("company") == set()
    # dishonest: after "reject all" it tells vendors (TCF, Consent Mode) that consent was given
    assert "run 1, reject all: done (banner: cookieyes)" in out, out
    rep, _ = found["/cookieyes"]
    assert len(rep["mismatches"]) == 2, rep["mismatches"]
    assert "told Google that consent was granted" in rep["mismatches"][0]
    assert "Does not match the click" in out
    # no banner a rule knows
    rep, _ = found["/nobanner"]
    assert rep["not_handled"] == ["accept all", "reject all"], out
    assert "Banner not handled" in out
    assert "Still sent after reject: 1 tracking companies" in out


def test_consent_signals_decode():
    assert decode_tcf(ALL)["purposes_consented"] == list(range(1, 11))
    assert decode_tcf(ALL)["vendors_consented"] == 3
    assert decode_tcf(NONE)["says"] == "denied"
    with pytest.raises(ValueError):
        decode_tcf("AAAA")
    assert consent_mode("/g/collect?gcs=G100") == {
        "ad_storage": "denied",
        "analytics_storage": "denied",
    }
    assert consent_mode("/g/collect?gcd=13t3t3p2p5l1")["ad_storage"] == "granted"
    assert consent_mode("/g/collect?gcd=13t3t3p2p5l1")["ad_user_data"] == "denied"
    assert consent_mode("/x?v=2") is None


def test_bad_url_and_no_chromium(tmp_path):
    res = CliRunner().invoke(cli, ["consent-check", "example.com", "--db", str(tmp_path / "t.db")])
    assert res.exit_code == 1 and "is not a web address" in res.output
    res = CliRunner().invoke(
        cli, ["consent-check", "https://example.com/", "--chromium", str(tmp_path / "none")]
    )
    assert res.exit_code == 1 and "is not a program that can be run" in res.output
    assert "--chromium " in res.output
