"""The summary as one self-contained HTML page, and as PDF or PNG through headless Chromium.

The page loads nothing: styles inline, charts as inline SVG with a text alternative
(``role="img"``, ``<title>`` and ``<desc>``), system fonts only. Colours are the Okabe–Ito
palette (safe for colour-blind readers). It prints on one A4 or Letter page and reflows to
one column on a phone.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from html import escape
from pathlib import Path

from gazeback.chromium import NoChromium, find, flags
from gazeback.share.summary import Summary

OKABE_ITO = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442",
             "#000000")  # fmt: skip
PAPERS = {"a4": "A4", "letter": "letter"}
NEXT_STEPS = (
    "<b>Ask them:</b> the GDPR (Art. 15) and similar laws let you ask each company for all the "
    "data it holds about you and whom it shared it with; it must answer within a month.",
    "<b>Reset your advertising ID</b> (Android: Settings → Privacy → Ads; iPhone: Settings → "
    "Privacy → Tracking: off).",
    "<b>Remove the apps</b> that talk to the most companies, or take away their permissions.",
    "<b>Block trackers at home</b> with a tracker-blocking DNS (Pi-hole, AdGuard Home) or a "
    "browser with tracking protection.",
)


LEARNED_SHOWN = 6  # kinds of data listed on the one page; the rest are counted


def _first(words: list[str], n: int) -> str:
    """The first ``n`` words, then how many more: a table cell that stays one line or two."""
    more = len(words) - n
    return ", ".join(words[:n]) + (f" and {more} more" if more > 0 else "")


def _bars(title: str, items: list[tuple[str, int]], unit: str, color: str) -> str:
    """A horizontal bar chart as inline SVG, with its numbers as the text alternative."""
    if not items:
        return ""
    top = max(n for _, n in items) or 1
    h, label_w, bar_w = 18, 170, 230
    rows = []
    for i, (name, n) in enumerate(items):
        y = i * h
        w = max(2, round(bar_w * n / top))
        short = name if len(name) <= 28 else name[:27] + "…"
        rows.append(
            f'<text x="{label_w - 6}" y="{y + 13}" text-anchor="end">{escape(short)}</text>'
            f'<rect x="{label_w}" y="{y + 3}" width="{w}" height="{h - 6}" fill="{color}"/>'
            f'<text x="{label_w + w + 4}" y="{y + 13}">{n:,}</text>'
        )
    alt = "; ".join(f"{name}: {n:,} {unit}" for name, n in items)
    cid = "c" + str(abs(hash(title)) % 10**8)
    return (
        f'<svg class="chart" viewBox="0 0 {label_w + bar_w + 60} {h * len(items)}" role="img" '
        f'aria-labelledby="{cid}t {cid}d"><title id="{cid}t">{escape(title)}</title>'
        f'<desc id="{cid}d">{escape(alt)}</desc>{"".join(rows)}</svg>'
    )


def _list(items: list[str]) -> str:
    return "<ul>" + "".join(f"<li>{i}</li>" for i in items) + "</ul>" if items else ""


def render_html(s: Summary, *, paper: str = "a4", form: str = "") -> str:
    """The page; ``form`` (dashboard only) is a no-print block of choices above it."""
    when = f"the last {s.days:g} days" if s.days else "everything recorded"
    if s.days and s.days < 1:
        when = f"the last {round(s.days * 24 * 60)} minutes"
        if s.days * 24 == round(s.days * 24):
            when = f"the last {round(s.days * 24)} hours"
    scope = [when]
    if s.device:  # its label is the person's own wording ("Ada's phone"): not on the page
        scope.append("one device")
    if s.app:
        scope.append(f"app “{escape(s.app)}”")
    if s.room:
        scope.append(f"a room of {s.room} devices; only what at least 2 share")
    companies = "".join(
        f"<tr><td>{escape(c['name'])}</td><td>{escape(c['owner'])}</td>"
        f"<td>{escape(c['country_name'])}</td><td class=n>{c['requests']:,}</td>"
        f"<td>{escape(_first(c['learned'], 3)) or '—'}</td></tr>"
        for c in s.companies
    )
    company_chart = _bars(
        "Requests to the top tracking companies",
        [(c["name"], c["requests"]) for c in s.companies], "requests", OKABE_ITO[0],
    )  # fmt: skip
    country_chart = _bars(
        "Countries of the tracking companies", s.countries, "companies", OKABE_ITO[1]
    )
    learned = _list([f"{escape(w)} — {n} {'company' if n == 1 else 'companies'}"
                     for w, n in s.learned[:LEARNED_SHOWN]]
                    + ([f"and {len(s.learned) - LEARNED_SHOWN} more kinds"]
                       if len(s.learned) > LEARNED_SHOWN else []))  # fmt: skip
    linking = _list([f"{escape(what)} (value hidden) — sent to {len(cs)} companies: "
                     f"{escape('; '.join(cs[:3]))}{' and others' if len(cs) > 3 else ''}"
                     for what, cs in s.linking])  # fmt: skip
    apps = _list([f"{escape(a)} — {n} {'company' if n == 1 else 'companies'}"
                  f"{' (guessed from its requests)' if src == 'inferred' else ''}"
                  for a, n, src in s.apps]
                 + ([f"and {s.app_count - len(s.apps)} more"]
                    if s.app_count > len(s.apps) else []))  # fmt: skip
    sites = _list([escape(x) for x in s.sites or []])
    parts = [
        f"<h1>Who knows what about {'this room' if s.room else 'me'}</h1>",
        f"<p class=scope>gazeback summary · {' · '.join(scope)}</p>",
        f"<p class=headline>{escape(s.headline)}</p>",
    ]
    if s.companies:
        parts.append(
            "<section class=wide><h2>The top companies and who owns them</h2>"
            "<table><thead><tr><th>Company</th><th>Owned by</th><th>Country</th>"
            f"<th class=n>Requests</th><th>What it learned</th></tr></thead><tbody>{companies}"
            "</tbody></table>"
            + (
                f"<p class=more>and {s.company_count - len(s.companies)} more tracking "
                f"{'company' if s.company_count - len(s.companies) == 1 else 'companies'}</p>"
                if s.company_count > len(s.companies)
                else ""
            )
            + "</section>"
        )
    grid: list[str] = []
    if company_chart:
        grid.append(f"<section><h2>Requests per company</h2>{company_chart}</section>")
    if country_chart:
        grid.append(f"<section><h2>Where these companies are</h2>{country_chart}</section>")
    if learned:
        grid.append(
            f"<section><h2>What they learned (kinds of data, not values)</h2>{learned}</section>"
        )
    if linking:
        grid.append(
            "<section><h2>Identifiers that link you across companies</h2>"
            f"<p class=small>Each one reached several companies, so they can match what they "
            f"know about you.</p>{linking}</section>"
        )
    if apps:
        grid.append(f"<section><h2>Apps that talked to tracking companies</h2>{apps}</section>")
    if sites:
        grid.append(f"<section><h2>Sites I chose to show</h2>{sites}</section>")
    parts.append(f"<div class=grid>{''.join(grid)}</div>")
    parts.append(
        f"<section class=wide><h2>What to do next</h2>{_list(list(NEXT_STEPS))}</section>"
        "<p class=foot>Made with gazeback on this computer. This page holds no personal "
        "values: no addresses, IDs or page contents, only who received what kind of data.</p>"
    )
    return PAGE.format(size=PAPERS.get(paper, "A4"), form=form, body="".join(parts))


PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Who knows what about me — gazeback summary</title>
<style>
@page {{ size: {size}; margin: 9mm 10mm; }}
* {{ box-sizing: border-box; }}
body {{ font: 9pt/1.28 system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif;
  color: #111; margin: 0 auto; max-width: 190mm; padding: 10px; background: #fff; }}
h1 {{ font-size: 17pt; margin: 0 0 2px; color: #0072B2; }}
h2 {{ font-size: 10.5pt; margin: 8px 0 3px; border-bottom: 2px solid #E69F00; }}
.scope {{ color: #444; margin: 0; font-size: 9pt; }}
.headline {{ font-size: 12.5pt; font-weight: 600; margin: 6px 0; }}
table {{ border-collapse: collapse; width: 100%; font-size: 8.5pt; }}
th, td {{ text-align: left; padding: 1px 4px; border-bottom: 1px solid #ddd; vertical-align: top; }}
td, li, p, h1, h2 {{ overflow-wrap: anywhere; }}
.n {{ text-align: right; }}
.grid {{ display: grid; grid-template-columns: 1fr 1fr; gap: 0 16px; }}
ul {{ margin: 2px 0; padding-left: 18px; }}
li {{ margin: 1px 0; }}
.chart {{ width: 100%; max-width: 420px; height: auto; font-size: 11px; margin-top: 4px; }}
.small, .foot {{ font-size: 8.5pt; color: #444; }}
.more {{ font-size: 8.5pt; color: #444; margin: 1px 0 0; }}
.noprint {{ background: #f3f3f3; padding: 8px; margin-bottom: 8px; }}
@media (max-width: 640px) {{ .grid {{ grid-template-columns: 1fr; }} body {{ font-size: 11pt; }}
  table, thead, tbody, tr, td, th {{ display: block; }} thead {{ display: none; }}
  tr {{ border-bottom: 1px solid #ccc; padding: 4px 0; }} td {{ border: 0; padding: 0; }} }}
@media print {{ .noprint {{ display: none; }} body {{ padding: 0; }} }}
</style></head>
<body>{form}{body}</body></html>
"""


def find_chromium(out: Path) -> str:
    """The Chromium to draw ``out`` (.pdf or .png) with, or :class:`NoChromium`."""
    return find(f"gazeback summary --out {out.name}")


def render_file(html: str, out: Path, *, chromium: str | None = None, timeout: float = 90) -> None:
    """Write ``out`` (.pdf or .png) from ``html`` with headless Chromium (``chromium``, or the
    one found), fully offline."""
    chromium = chromium or find_chromium(out)
    kind = out.suffix.lower()
    with tempfile.TemporaryDirectory(prefix="gazeback-summary-") as tmp:
        page = Path(tmp) / "summary.html"
        page.write_text(html, encoding="utf-8")
        target = Path(tmp) / f"out{kind}"
        args = [
            chromium, *flags(headless=True), f"--user-data-dir={tmp}/profile",
            "--host-resolver-rules=MAP * ~NOTFOUND", "--proxy-server=127.0.0.1:9",
        ]  # fmt: skip
        if kind == ".pdf":
            args += ["--no-pdf-header-footer", f"--print-to-pdf={target}"]
        else:
            args += ["--hide-scrollbars", "--window-size=800,1130", f"--screenshot={target}"]
        try:
            done = subprocess.run(
                [*args, page.as_uri()], capture_output=True, timeout=timeout,
                stdin=subprocess.DEVNULL,
            )  # fmt: skip
        except subprocess.TimeoutExpired as e:
            raise NoChromium(f"{chromium} did not finish the {kind} within {timeout:.0f} s") from e
        if done.returncode != 0 or not target.exists() or not target.stat().st_size:
            tail = done.stderr.decode("utf-8", "replace").strip().splitlines()[-1:]
            raise NoChromium(
                f"{chromium} could not write the {kind} (exit {done.returncode}"
                f"{': ' + tail[0] if tail else ''})"
            )
        shutil.move(str(target), out)
