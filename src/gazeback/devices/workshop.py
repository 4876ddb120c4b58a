"""Workshop mode: seats that participants join by QR code, what each participant's own page
shows (only their own rows), and their opt-in to share with the room.

The pages themselves are served by the dashboard's Datasette (``dashboard/plugin.py``,
``/-/workshop/me/<token>``, templates ``dashboards/templates/workshop_*.html``). The room's
aggregate (big screen) is the ``workshop`` dashboard in dashboards/metadata.yml, read from
the ``room_*`` views, which hide anything fewer than two participants share.
"""

from __future__ import annotations

import html
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlite_utils import Database

from gazeback.devices import registry as devices
from gazeback.devices import wireguard

PAGE_PATH = "/-/workshop/me/"  # + the participant's token: their own page


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
padding:0 1em;color:#222}.card{break-inside:avoid;page-break-inside:avoid;border:1px dashed
#999;padding:1em;margin:1em 0}</style>"""


def _page(title: str, body: str) -> str:
    return (
        f'<!doctype html><html lang="en"><head><meta charset="utf-8">'
        f'<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{html.escape(title)}</title>{STYLE}</head><body>{body}</body></html>"
    )


def seat_cards(db: Database, db_path: Path, endpoint_host: str, view_base: str) -> str:
    """One card per seat to print and hand out: the WireGuard QR code and the address of the
    participant's own page. Each card holds that seat's keys: give it to one person."""
    cards = []
    for p in participants(db):
        setup = devices.find(db, db_path, p.label)
        conf = devices.client_config(setup, endpoint_host)
        url = f"{view_base}{PAGE_PATH}{p.token}"
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


def own_summary(db: Database, participant: Participant) -> str:
    """The participant's own one-page summary (as `gazeback summary` makes it), of their
    phone only: companies, kinds of data, countries, what to do next; no values."""
    from gazeback.share.summary import collect
    from gazeback.share.summarypage import render_html

    return render_html(collect(db, device=participant.label, days=None))
