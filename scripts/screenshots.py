"""Screenshots of every dashboard, and an accessibility check of each, in a real browser.

Builds four made-up trails (an empty database, the demo, one hour of traffic, a workshop
with two seats), serves each with ``datasette`` exactly as ``gazeback dashboard`` does,
opens every dashboard page in headless Chromium (Debian's, driven by the ``playwright``
package: never ``playwright install``), waits until every chart has drawn, runs axe-core
(the ``axe.min.js`` bundled in the ``axe-playwright-python`` package; MPL-2.0, Deque
Systems) on the page, and saves a PNG per page. The pages the plugin draws from its own
templates (``FORMS``: "Ask them", requests sent, experiment) get the same axe-core check.
tests/test_dashboard_look.py runs it on every test run; docs/screenshots/ holds the last
checked-in set (dashboards only).

Example:

    python scripts/screenshots.py docs/screenshots
"""

from __future__ import annotations

import importlib.resources
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import sqlite_utils

from gazeback.chromium import find, flags, which
from gazeback.dashboard import access, demo, serve
from gazeback.db import migrations, summaries
from gazeback.devices import workshop

LOOPBACK = {"127.0.0.1", "localhost", "::1", "[::1]"}
CHROMIUM_ARGS = [*flags(headless=True), "--lang=en-GB"]
END = datetime(2026, 11, 27, 15, tzinfo=UTC)  # same trails, same pictures, on every run
# (name of the PNG, trail, dashboard address)
PAGES = [
    ("empty", "empty", "/-/dashboards/trail"),
    ("trail", "demo", "/-/dashboards/trail"),
    ("company", "demo", "/-/dashboards/company?company=Meta+Platforms%2C+Inc."),
    ("device", "demo", "/-/dashboards/device?device=Alex%27s+phone"),
    ("host", "demo", "/-/dashboards/host?host=graph.facebook.com"),
    ("connect", "demo", "/-/dashboards/connect"),
    ("one-hour", "hour", "/-/dashboards/trail"),
    ("room", "workshop", "/-/dashboards/workshop"),
]
# The pages gazeback's plugin draws from its own templates (not dashboards): axe-core only,
# their pictures are not in docs/ (name, trail, address)
FORMS = [
    ("ask", "demo", "/-/gazeback/ask?company=Meta+Platforms%2C+Inc."),
    ("requests", "demo", "/-/gazeback/requests"),
    ("experiment", "demo", "/-/gazeback/experiment"),
]
SERIOUS = ("serious", "critical")


@dataclass
class Page:
    name: str
    url: str
    png: Path
    violations: list[dict[str, Any]]  # axe-core's, every impact
    errors: list[str]  # the browser console's
    outside: list[str]  # addresses beyond loopback it asked for (must stay empty)
    texts: dict[str, str] = field(default_factory=dict)  # chart slug -> what it shows
    axes: dict[str, list[list[str]]] = field(default_factory=dict)  # chart -> axes' labels
    header: str = ""  # the title and description as shown
    links: list[str] = field(default_factory=list)  # every link on the page
    titles: list[str] = field(default_factory=list)  # the cards' titles
    tables: dict[str, list[list[str]]] = field(default_factory=dict)  # chart -> its table
    tab_stops: list[str] = field(default_factory=list)  # "chart-slug:tag" the Tab key visits

    @property
    def serious(self) -> list[dict[str, Any]]:
        return [v for v in self.violations if v["impact"] in SERIOUS]


def chromium() -> str | None:
    return which()


def axe_script() -> Path:
    """axe-core's browser build, as shipped inside the axe-playwright-python wheel."""
    return Path(str(importlib.resources.files("axe_playwright_python") / "axe.min.js"))


def build(folder: Path) -> dict[str, Path]:
    """The four trails: empty, demo (a week), one hour, a workshop with two seats."""
    folder.mkdir(parents=True, exist_ok=True)
    empty = folder / "empty" / "trail.db"
    empty.parent.mkdir()
    db = sqlite_utils.Database(empty)
    migrations.apply(db)
    db.close()

    week = folder / "demo" / "trail.db"
    week.parent.mkdir()
    demo.generate(week, scale=1000, seed=3, end=END)

    hour = folder / "hour" / "trail.db"
    hour.parent.mkdir()
    demo.generate(hour, days=1, scale=300, seed=5, end=END)
    db = sqlite_utils.Database(hour)
    first, last = db.execute("select min(started_at), max(started_at) from requests").fetchone()
    start = (END - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%S")
    with db.conn:  # squeeze the day into the hour before END
        db.execute(
            "update requests set started_at = strftime('%Y-%m-%dT%H:%M:%fZ', julianday(:start)"
            " + (julianday(started_at) - julianday(:first)) / (julianday(:last)"
            " - julianday(:first) + 1e-9) * (59.0 / 1440))",
            {"start": start, "first": first, "last": last},
        )
    summaries.rebuild(db)
    db.close()

    room = folder / "workshop" / "trail.db"
    room.parent.mkdir(mode=0o700)
    demo.generate(room, scale=600, seed=7, end=END)
    db = sqlite_utils.Database(room)
    seats = workshop.add_seats(db, room, 2, "192.0.2.10")
    ids = dict(db.execute("select label, id from devices").fetchall())
    with db.conn:  # the made-up phone and laptop become the two seats' phones
        for seat, label in zip(seats, ("Alex's phone", "Alex's laptop"), strict=True):
            db.execute(
                "update requests set device_id = ? where device_id = ?",
                [seat.device_id, ids[label]],
            )
        db.execute("delete from requests where device_id = ?", [ids["Living-room TV"]])
        db.execute("delete from leaks where request_id not in (select id from requests)")
    summaries.rebuild(db)
    migrations.apply(db)
    db.close()
    return {"empty": empty, "demo": week, "hour": hour, "workshop": room}


@contextmanager
def served(db_path: Path) -> Iterator[tuple[str, str]]:
    """``datasette serve`` as `gazeback dashboard` starts it: (base address, token)."""
    sock = __import__("socket").socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    token = access.new_token()
    proc, _ = serve.start_dashboard(
        db_path, "127.0.0.1", port, token, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(f"{base}/-/versions.json", timeout=1).read()
            except urllib.error.HTTPError:
                break  # 401: up, and asking for its token
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"datasette did not start for {db_path}") from None
                time.sleep(0.2)
        yield base, token
    finally:
        proc.terminate()
        proc.wait(10)


def shrink(png: Path, colours: int = 64) -> None:
    """A screenshot in a few dozen colours: a fraction of the size, the text as sharp."""
    from PIL import Image

    with Image.open(png) as img:
        small = img.convert("RGB").quantize(colours, method=Image.Quantize.FASTOCTREE)
    small.save(png, optimize=True)


AXE_RUN = """async () => {
  // the charts' SVGs are aria-hidden: their role="img" box and table speak for them
  const r = await axe.run({ exclude: [['svg']] }, { resultTypes: ['violations'] })
  return r.violations.map(v => ({ id: v.id, impact: v.impact, help: v.help,
    nodes: v.nodes.slice(0, 5).map(n => n.target.join(' ') + ': ' + n.failureSummary) }))
}"""
SETTLED = """() => {
  if (document.body.getAttribute('data-gazeback-empty') === 'true') { return true }
  const charts = document.querySelectorAll('.dashboard-card-chart')
  const waiting = [...charts].filter(c => !c.querySelector('.markdown, p, h3, ul')
    && c.getAttribute('data-rendered') !== 'true')
  return charts.length > 0 && waiting.length === 0
}"""


def visit(context: Any, base: str, token: str, path: str, png: Path, small: bool) -> Page:
    page = context.new_page()
    errors: list[str] = []
    outside: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))

    def guard(route: Any) -> None:
        host = urlsplit(route.request.url).hostname or ""
        if route.request.url.startswith(("data:", "blob:")) or host in LOOPBACK:
            route.continue_()
        else:
            outside.append(route.request.url)
            route.abort()

    page.route("**/*", guard)
    url = base + path
    page.goto(url + ("&" if "?" in url else "?") + f"token={token}", wait_until="networkidle")
    dashboard = path.startswith("/-/dashboards/")
    if dashboard:  # charts draw after the page has loaded
        page.wait_for_function(SETTLED, timeout=90_000)  # a busy CI machine is slow
        page.wait_for_timeout(300)
    texts = page.evaluate(
        "() => Object.fromEntries([...document.querySelectorAll('.dashboard-card-chart')]"
        ".map(c => [c.id.replace(/^chart-/, ''), c.innerText]))"
    )
    axes = page.evaluate(
        "() => Object.fromEntries([...document.querySelectorAll('.dashboard-card-chart')]"
        ".map(c => [c.id.replace(/^chart-/, ''), [...c.querySelectorAll('g.role-axis')]"
        ".map(a => [...a.querySelectorAll('.role-axis-label text')].map(t => t.textContent))]))"
    )
    header = page.locator(".dashboard-header").inner_text() if dashboard else ""
    links = page.evaluate("() => [...document.querySelectorAll('a[href]')].map(a => a.href)")
    titles = page.evaluate(
        "() => [...document.querySelectorAll('.dashboard-card-title')].map(t => t.innerText)"
    )
    tables = page.evaluate(
        "() => Object.fromEntries([...document.querySelectorAll('.dashboard-card-chart')]"
        ".filter(c => c.querySelector('table')).map(c => [c.id.replace(/^chart-/, ''),"
        " [...c.querySelector('table').querySelectorAll('tr')]"
        ".map(r => [...r.cells].map(x => x.textContent.trim()))]))"
    )
    # the picture first: the keyboard walk below scrolls tables and leaves a focus ring
    page.screenshot(path=str(png), full_page=True)
    if small:
        shrink(png)
    tab_stops = []
    if png.stem == "trail":  # the keyboard: Tab through the page as a person would
        for _ in range(400):  # until the focus reaches the glossary at the bottom
            page.keyboard.press("Tab")
            tab_stops.append(
                page.evaluate(
                    "() => { const e = document.activeElement; const c = e && e.closest"
                    "('.dashboard-card-chart'); return (c ? c.id : '') + ':' + "
                    "(e ? e.tagName.toLowerCase() : '') }"
                )
            )
            if tab_stops[-1].startswith("chart-glossary:") or tab_stops[-1] == ":body":
                break
    page.add_script_tag(path=str(axe_script()))
    violations = page.evaluate(AXE_RUN)
    result = Page(
        png.stem, url, png, violations, errors, outside, texts, axes, header, links, titles, tables,
        tab_stops,
    )  # fmt: skip
    page.close()
    return result


def run(
    out: Path,
    trails: dict[str, Path] | None = None,
    pages: list[tuple[str, str, str]] | None = None,
    small: bool = True,
) -> list[Page]:
    """Build the trails (unless given), visit every page, write ``out/<name>.png`` (in a
    few colours if ``small``: for docs/); return what was seen on each."""
    from playwright.sync_api import sync_playwright

    browser = find("scripts/screenshots.py")
    out.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix="gazeback-shots-"))
    results: list[Page] = []
    try:
        trails = trails or build(scratch / "trails")
        wanted = pages or PAGES
        with sync_playwright() as p:
            context = p.chromium.launch_persistent_context(
                str(scratch / "profile"),
                executable_path=browser,
                headless=True,
                args=CHROMIUM_ARGS,
                viewport={"width": 1280, "height": 900},
                locale="en-GB",
                timezone_id="Europe/Berlin",
            )
            try:
                for trail in dict.fromkeys(t for _, t, _ in wanted):
                    with served(trails[trail]) as (base, token):
                        for name, t, path in wanted:
                            if t == trail:
                                results.append(
                                    visit(context, base, token, path, out / f"{name}.png", small)
                                )
            finally:
                context.close()
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return results


def main(argv: list[str]) -> int:
    out = Path(argv[0] if argv else "docs/screenshots")
    bad = 0
    scratch = Path(tempfile.mkdtemp(prefix="gazeback-shots-"))
    try:
        trails = build(scratch / "trails")
        for page in [*run(out, trails), *run(scratch / "forms", trails, FORMS, small=False)]:
            size = page.png.stat().st_size // 1024
            print(f"{page.png} ({size} KB): {len(page.serious)} serious or critical problems")
            for v in page.serious:
                print(f"    {v['impact']}: {v['id']}: {v['help']} at {', '.join(v['nodes'])}")
            bad += len(page.serious) + len(page.errors) + len(page.outside)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
