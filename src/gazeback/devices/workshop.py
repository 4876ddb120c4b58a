"""Workshop mode: seats that participants join by QR code, each participant's own page and
printable handout, an opt-in to share with the room, and a page server that shows a
participant only their own rows.

The room's aggregate (big screen) is the ``workshop`` dashboard in dashboards/metadata.yml,
read from the ``room_*`` views, which hide anything fewer than two participants share.
"""

from __future__ import annotations

import html
import secrets
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import sqlite_utils
from sqlite_utils import Database

from gazeback.devices import registry as devices
from gazeback.devices import wireguard


@dataclass(frozen=True)
class Participant:
    device_id: int
    label: str
    token: str
    is_shared: bool


def add_seats(db: Database, db_path: Path, count: int, endpoint_host: str) -> list[Participant]:
    """Seats p01, p02, ...: a WireGuard config and a secret page address for each."""
    have = {s.label for s in devices.setups(db, db_path)}
    for i in range(1, count + 1):
        label = f"p{i:02d}"
        if label not in have:
            devices.add(db, db_path, label, "phone", endpoint_host=endpoint_host,
                        with_view_token=True)  # fmt: skip
    return participants(db)


def participants(db: Database) -> list[Participant]:
    return [
        Participant(r["device_id"], r["label"], r["view_token"], bool(r["is_shared"]))
        for r in db.query(
            "select s.device_id, d.label, s.view_token, s.is_shared from device_setups s "
            "join devices d on d.id = s.device_id where s.view_token is not null order by d.label"
        )
    ]


def by_token(db: Database, token: str) -> Participant | None:
    """The participant whose secret page this is (compared in constant time)."""
    for p in participants(db):
        if secrets.compare_digest(p.token.encode(), token.encode()):
            return p
    return None


def set_shared(db: Database, participant: Participant, shared: bool) -> None:
    db.table("device_setups").update(participant.device_id, {"is_shared": int(shared)})


def summary(db: Database, participant: Participant) -> dict[str, Any]:
    """What one participant's device sent: only rows of that device, never anyone else's."""
    dev = participant.device_id
    one = {"dev": dev}
    companies = list(
        db.query(
            "select c.name as company, c.country_name as country, count(*) as requests "
            "from requests r join dash_trackers t on t.id = r.tracker_id and t.is_tracker "
            "join dash_companies c on c.id = t.company_id where r.device_id = :dev "
            "group by c.id order by requests desc limit 30",
            one,
        )
    )
    leaks = list(
        db.query(
            "select coalesce(e.what, l.pii_type) as what, coalesce(e.sentence, '') as how, "
            "coalesce(c.name, r.host) as company, count(*) as times "
            "from leaks l join requests r on r.id = l.request_id "
            "left join dash_trackers t on t.id = r.tracker_id "
            "left join dash_companies c on c.id = t.company_id "
            "left join leak_explanations e on e.pii_type = l.pii_type "
            "and e.transform_chain = l.transform_chain and e.location = l.location "
            "where r.device_id = :dev group by 1, 2, 3 order by times desc limit 30",
            one,
        )
    )
    totals = next(
        db.query(
            "select count(*) as requests, count(distinct host) as hosts, "
            "coalesce(sum(is_decrypted), 0) as decrypted from requests where device_id = :dev",
            one,
        )
    )
    refusing = [
        r["host"]
        for r in db.query(
            "select distinct host from requests where device_id = :dev and is_decrypted = 0 "
            "and kind in ('tls_failed', 'tunnel') order by host limit 20",
            one,
        )
    ]
    return {"label": participant.label, "shared": participant.is_shared, **totals,
            "companies": companies, "leaks": leaks, "refusing": refusing}  # fmt: skip


STYLE = """<style>body{font:17px/1.45 system-ui,sans-serif;max-width:46em;margin:1em auto;
padding:0 1em;color:#222}h1{font-size:1.6em}table{border-collapse:collapse;width:100%}
td,th{border-bottom:1px solid #ddd;padding:.3em;text-align:left}.big{font-size:2em;
font-weight:bold}.card{break-inside:avoid;page-break-inside:avoid;border:1px dashed #999;
padding:1em;margin:1em 0}button{font-size:1em;padding:.5em 1em}
@media print{.noprint{display:none}}</style>"""


def _page(title: str, body: str) -> str:
    return (
        f'<!doctype html><html lang="en"><head><meta charset="utf-8">'
        f'<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{html.escape(title)}</title>{STYLE}</head><body>{body}</body></html>"
    )


def _rows(rows: list[dict[str, Any]], cols: list[tuple[str, str]]) -> str:
    if not rows:
        return "<p>Nothing yet.</p>"
    head = "".join(f"<th>{html.escape(t)}</th>" for _, t in cols)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(str(r[k] or ''))}</td>" for k, _ in cols) + "</tr>"
        for r in rows
    )
    return f"<table><tr>{head}</tr>{body}</table>"


def _findings(s: dict[str, Any]) -> str:
    share = round(100 * s["decrypted"] / s["requests"]) if s["requests"] else 0
    refusing = ", ".join(html.escape(h) for h in s["refusing"]) or "none"
    return (
        f'<p><span class="big">{s["requests"]}</span> requests left your phone for '
        f"{s['hosts']} different servers. gazeback could look inside {share} % of them.</p>"
        f"<h2>Companies that received them</h2>"
        + _rows(
            s["companies"],
            [("company", "Company"), ("country", "Country"), ("requests", "Requests")],
        )  # fmt: skip
        + "<h2>Your own data we found in them</h2>"
        + _rows(s["leaks"], [("what", "What"), ("company", "Sent to"), ("times", "Times")])
        + f"<h2>Apps that refused to be looked at</h2><p>{refusing} (certificate pinning: "
        "these connections were counted but could not be read).</p>"
    )


def participant_page(s: dict[str, Any], token: str) -> str:
    """A participant's own live page, with the opt-in to show their details to the room."""
    choice = (
        "You share your details with the room. "
        f'<form method="post" action="/me/{token}/share"><input type="hidden" name="share" '
        'value="0"><button>Stop sharing</button></form>'
        if s["shared"]
        else "Only you can see this page. The big screen shows the room's totals, never "
        "your details, unless you choose to share them. "
        f'<form method="post" action="/me/{token}/share"><input type="hidden" name="share" '
        'value="1"><button>Share my details with the room</button></form>'
    )
    return _page(
        f"What your phone sent ({s['label']})",
        f"<h1>What your phone sent</h1><p class=noprint>{choice}</p>{_findings(s)}"
        f'<p class=noprint><a href="/me/{token}/handout">Printable handout</a> · '
        f'<a href="/me/{token}/summary">My one-page summary</a> · reload '
        "this page to see new requests.</p>",
    )


def own_summary(db: Database, participant: Participant) -> str:
    """The participant's own one-page summary (as `gazeback summary` makes it), of their
    phone only: companies, kinds of data, countries, what to do next; no values."""
    from gazeback.share.summary import collect
    from gazeback.share.summarypage import render_html

    return render_html(collect(db, device=participant.label, days=None))


def handout(s: dict[str, Any]) -> str:
    """The printable handout: what this participant saw, in plain words."""
    return _page(
        "What my phone told companies",
        "<h1>What my phone told companies</h1>"
        "<p>During the workshop your phone's internet traffic went through gazeback, a tool "
        "that records what a device sends out and to whom. This page is what it found on "
        "your phone. Nothing of it is kept: at the end of the workshop the whole recording "
        "was wiped.</p>"
        + _findings(s)
        + "<h2>What this means</h2><p>Each company in the list received requests from your "
        "phone: most of them are advertising, analytics or tracking companies working for "
        "the apps and sites you used. Together they can recognise your phone across apps and "
        "build a profile. Where your own data (for example an email address or advertising "
        "ID) appears, it was sent to that company, sometimes hashed, which still lets them "
        "match it.</p><h2>What you can do</h2><ul><li>Remove the workshop's certificate and "
        "the WireGuard tunnel from your phone now (Settings → Security → certificates; "
        "WireGuard app → delete the tunnel).</li><li>Reset your advertising ID and limit ad "
        "tracking in your phone's privacy settings.</li><li>You can ask each company what "
        "it holds about you (GDPR Art. 15 access request).</li></ul>",
    )


def seat_cards(db: Database, db_path: Path, endpoint_host: str, view_base: str) -> str:
    """One card per seat to print and hand out: the WireGuard QR code and the address of the
    participant's own page. Each card holds that seat's keys: give it to one person."""
    cards = []
    for p in participants(db):
        setup = devices.find(db, db_path, p.label)
        conf = devices.client_config(setup, endpoint_host)
        url = f"{view_base}/me/{p.token}"
        cards.append(
            f'<div class="card"><h2>Seat {html.escape(p.label)}</h2><ol>'
            "<li>Install the WireGuard app, tap +, scan this code, switch the tunnel on:<br>"
            f"{wireguard.qr_svg(conf)}</li><li>Open <b>http://mitm.it</b> and install the "
            "certificate for your phone (Android: Settings → Security → Install "
            "certificate → CA certificate; iPhone: Settings → General → VPN &amp; Device "
            "Management → install, then About → Certificate Trust Settings → turn on).</li>"
            "<li>Your own page (scan or type): "
            f"{wireguard.qr_svg(url)}<br><code>{html.escape(url)}</code></li></ol></div>"
        )
    return _page("gazeback workshop seats", "<h1>Workshop seats</h1>" + "".join(cards))


class PageServer:
    """Serves participants their own pages: ``/me/<token>``, ``/me/<token>/handout``,
    ``/me/<token>/summary`` (their one-page summary), and
    ``POST /me/<token>/share``. Nothing else; an unknown token is a 404."""

    def __init__(self, db_path: Path, host: str, port: int) -> None:
        self.db_path = db_path
        handler = type("Handler", (_Handler,), {"db_path": db_path})
        self.httpd = ThreadingHTTPServer((host, port), handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def port(self) -> int:
        return int(self.httpd.server_address[1])

    def start(self) -> PageServer:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


class _Handler(BaseHTTPRequestHandler):
    db_path: Path

    def log_message(self, format: str, *args: Any) -> None:
        pass  # paths hold the participants' secrets: keep them out of the terminal

    def _route(self) -> tuple[Database, Participant, str] | None:
        parts = self.path.split("?", 1)[0].strip("/").split("/")
        if len(parts) < 2 or parts[0] != "me":
            self._send(404, _page("Not found", "<p>Not found.</p>"))
            return None
        db = sqlite_utils.Database(self.db_path)
        participant = by_token(db, parts[1])
        if participant is None:
            db.close()
            self._send(404, _page("Not found", "<p>Not found.</p>"))
            return None
        return db, participant, "/".join(parts[2:])

    def do_GET(self) -> None:
        route = self._route()
        if route is None:
            return
        db, participant, rest = route
        try:
            s = summary(db, participant)
            if rest == "":
                self._send(200, participant_page(s, participant.token))
            elif rest == "handout":
                self._send(200, handout(s))
            elif rest == "summary":
                self._send(200, own_summary(db, participant))
            else:
                self._send(404, _page("Not found", "<p>Not found.</p>"))
        finally:
            db.close()

    def do_POST(self) -> None:
        route = self._route()
        if route is None:
            return
        db, participant, rest = route
        try:
            length = min(int(self.headers.get("content-length") or 0), 100)
            body = self.rfile.read(length).decode("ascii", "replace")
            if rest != "share":
                self._send(404, _page("Not found", "<p>Not found.</p>"))
                return
            set_shared(db, participant, "share=1" in body)
            self.send_response(303)
            self.send_header("Location", f"/me/{participant.token}")
            self.send_header("Content-Length", "0")
            self.end_headers()
        finally:
            db.close()

    def _send(self, status: int, text: str) -> None:
        data = text.encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("Referrer-Policy", "no-referrer")
        self.end_headers()
        self.wfile.write(data)
