"""A real headless Chromium (Debian's) loads the dashboards served by `datasette serve`.

Asserts the charts rendered, no console errors, and not one request to a non-loopback
host. Screenshots go to $GAZEBACK_SCREENSHOTS (default: the test's tmp dir). Skipped only
when chromium is not installed; CI installs it (`apt-get install -y chromium`).
"""

import os
import shutil
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import sqlite_utils
from conftest import free_port

from gazeback import chromium
from gazeback.dashboard import access, demo, serve
from gazeback.db import migrations
from gazeback.devices import registry

CHROMIUM = chromium.which()
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed")
LOOPBACK = {"127.0.0.1", "localhost", "::1", "[::1]"}
ARGS = chromium.flags(headless=True)


@pytest.fixture(scope="module")
def shots(tmp_path_factory):
    folder = Path(os.environ.get("GAZEBACK_SCREENSHOTS") or tmp_path_factory.mktemp("shots"))
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def start_server(db_path):
    """Start the dashboard as `gazeback dashboard` does; return it and the printed address's
    base and token (the browser opens ``base + path + ?token=`` the first time)."""
    port = free_port()
    token = access.new_token()
    proc, url = serve.start_dashboard(
        db_path, "127.0.0.1", port, token, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    assert url.endswith(f"?token={token}")
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"{base}/-/versions.json", timeout=1).read()
            raise AssertionError("the dashboard answered without its token")
        except urllib.error.HTTPError as e:
            assert e.code == 401
            return proc, base, token
        except OSError:
            if proc.poll() is not None:
                raise RuntimeError(proc.stderr.read().decode()) from None
            time.sleep(0.2)
    proc.kill()
    raise RuntimeError("datasette did not start")


def with_token(url, token):
    return url + ("&" if "?" in url else "?") + f"token={token}"


@pytest.fixture(scope="module")
def browser():
    playwright = pytest.importorskip("playwright.sync_api")
    profile = tempfile.mkdtemp(prefix="gazeback-chromium-")
    with playwright.sync_playwright() as p:
        context = p.chromium.launch_persistent_context(
            profile,
            executable_path=CHROMIUM,
            headless=True,
            args=ARGS,
            viewport={"width": 1400, "height": 1000},
        )
        yield context
        context.close()
    shutil.rmtree(profile, ignore_errors=True)


def visit(context, url, shot):
    """Open ``url``; return (console errors, outside hosts asked for, page)."""
    page = context.new_page()
    errors, outside = [], []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))

    def guard(route):
        host = urlsplit(route.request.url).hostname or ""
        if route.request.url.startswith(("data:", "blob:")) or host in LOOPBACK:
            route.continue_()
        else:
            outside.append(route.request.url)
            route.abort()

    page.route("**/*", guard)
    page.goto(url, wait_until="networkidle")
    page.wait_for_timeout(500)
    page.screenshot(path=str(shot), full_page=True)
    return errors, outside, page


def settled(page, slugs):
    """Every chart drew something or said it has nothing to show."""
    missing = []
    for slug in slugs:
        el = page.locator(f"#chart-{slug}")
        if el.locator("canvas, svg, table, .gazeback-metric, .gazeback-nothing").count() == 0:
            missing.append(slug)
    return missing


@pytest.fixture(scope="module")
def served_demo(tmp_path_factory):
    path = tmp_path_factory.mktemp("browser") / "trail.db"
    demo.generate(path, scale=2000, seed=4, end=datetime(2026, 11, 27, tzinfo=UTC))
    proc, base, token = start_server(path)
    yield base, token
    proc.terminate()
    proc.wait(10)


def test_trail_dashboard_renders_offline(browser, served_demo, shots):
    base, token = served_demo
    url = with_token(f"{base}/-/dashboards/trail", token)
    errors, outside, page = visit(browser, url, shots / "trail.png")
    assert page.url == f"{base}/-/dashboards/trail"  # the token does not stay in the address
    meta = serve.dashboard_metadata("trail")["plugins"]["datasette-dashboards"]["trail"]
    charts = [s for s, c in meta["charts"].items() if c["library"] != "markdown"]
    page.wait_for_function(
        "n => document.querySelectorAll('[data-rendered=true]').length >= n", arg=len(charts)
    )
    assert not settled(page, charts)
    for slug in ("timeline", "top-companies", "learned", "devices-companies", "countries"):
        assert page.locator(f"#chart-{slug} canvas, #chart-{slug} svg").count() > 0, slug
    assert "tracking companies received" in page.locator("#chart-headline").inner_text()
    page.screenshot(path=str(shots / "trail.png"), full_page=True)
    assert errors == []
    assert outside == []


def test_company_page_renders_offline(browser, served_demo, shots):
    base, token = served_demo
    url = f"{base}/-/dashboards/company?company=Meta+Platforms%2C+Inc."
    errors, outside, page = visit(browser, with_token(url, token), shots / "company.png")
    assert page.url == url
    meta = serve.dashboard_metadata("trail")["plugins"]["datasette-dashboards"]["company"]
    page.wait_for_function(
        "n => document.querySelectorAll('[data-rendered=true]').length >= n",
        arg=len(meta["charts"]),
    )
    assert (
        "What Meta Platforms, Inc. knows about you"
        in page.locator("#chart-c-headline").inner_text()
    )
    assert "hashed with SHA-256" in page.locator("#chart-c-explained").inner_text()
    page.screenshot(path=str(shots / "company.png"), full_page=True)
    assert errors == []
    assert outside == []


def test_empty_database_shows_how_to_start(browser, tmp_path, shots):
    path = tmp_path / "trail.db"
    db = sqlite_utils.Database(path)
    migrations.apply(db)
    db.close()
    proc, base, token = start_server(path)
    try:
        url = with_token(f"{base}/-/dashboards/trail", token)
        errors, outside, page = visit(browser, url, shots / "empty.png")
        page.wait_for_selector("#gazeback-empty", state="visible")
        assert page.locator(".dashboard-grid").is_hidden()
        assert errors == [] and outside == []
    finally:
        proc.terminate()
        proc.wait(10)


def test_the_token_becomes_a_private_cookie_and_leaves_the_address(browser, served_demo, shots):
    base, token = served_demo
    errors, outside, page = visit(browser, with_token(f"{base}/trail", token), shots / "db.png")
    assert page.url == f"{base}/trail" and "requests" in page.content()
    port = base.rsplit(":", 1)[1]
    (cookie,) = [c for c in browser.cookies() if c["name"] == f"gazeback_{port}"]
    assert cookie["value"] == token and cookie["httpOnly"] and cookie["sameSite"] == "Strict"
    assert cookie["path"] == "/"
    history = page.evaluate("() => history.length")
    page.goto(f"{base}/-/dashboards/trail", wait_until="networkidle")  # cookie: in, no token
    assert "tracking companies" in page.content()
    assert history >= 1 and token not in page.evaluate("() => document.cookie + location.href")
    browser.clear_cookies()  # a browser that never had the address
    page = browser.new_page()
    response = page.goto(f"{base}/-/dashboards/trail")
    assert response.status == 401 and "needs its key" in page.content()
    page.screenshot(path=str(shots / "no-token.png"))
    assert errors == [] and outside == []


def test_connect_page_draws_the_devices_qr_code(browser, tmp_path, shots):
    """The Connect a device page shows each added device's WireGuard QR code as an image a
    browser really draws (an SVG without its namespace is a broken image)."""
    path = tmp_path / "trail.db"
    db = sqlite_utils.Database(path)
    migrations.apply(db)
    registry.add(db, path, "phone", endpoint_host="192.0.2.10")
    db.close()
    proc, base, token = start_server(path)
    try:
        url = with_token(f"{base}/-/dashboards/connect", token)
        errors, outside, page = visit(browser, url, shots / "connect.png")
        images = page.locator("img[src*='/-/gazeback/qr/']")
        assert images.count() >= 1, page.content()[:2000]
        drawn = images.first.evaluate("img => img.complete && img.naturalWidth")
        assert drawn and drawn > 50, "the QR code is a broken image"
        assert errors == [] and outside == []
    finally:
        proc.terminate()
        proc.wait(10)


def test_the_experiment_box_names_the_experiment_shown(browser, tmp_path, shots):
    """With nothing chosen the experiment board shows the newest experiment; its box says so
    (it was blank while the charts showed the newest)."""
    from gazeback.db import experiments as ex

    path = tmp_path / "trail.db"
    demo.generate(path, scale=200, seed=5, end=datetime(2026, 11, 27, tzinfo=UTC))
    db = sqlite_utils.Database(path)
    for name, minute in (("older test", 0), ("newer test", 10)):
        ex.start(db, name, "accept all", now=f"2026-11-26T10:{minute:02d}:00.000Z")
        ex.stop(db, now=f"2026-11-26T10:{minute + 5:02d}:00.000Z")
    db.close()
    proc, base, token = start_server(path)
    try:
        url = with_token(f"{base}/-/dashboards/experiment", token)
        errors, outside, page = visit(browser, url, shots / "experiment.png")
        assert page.locator("select#experiment").input_value() == "newer test"
        url = with_token(f"{base}/-/dashboards/experiment?experiment=older+test", token)
        errors2, _, page = visit(browser, url, shots / "experiment-older.png")
        assert page.locator("select#experiment").input_value() == "older test"
        assert errors == errors2 == [] and outside == []
    finally:
        proc.terminate()
        proc.wait(10)
