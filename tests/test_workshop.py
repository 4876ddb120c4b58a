"""Workshop mode: three participants, each sees only their own rows; the room sees only what
two of them share or what they opted in to show; the wipe leaves nothing readable."""

import os
import re
import signal
import subprocess
import sys

import httpx
import pytest
import sqlite_utils
from conftest import ROOT, free_port
from signin import signed_in

from gazeback.dashboard import serve
from gazeback.db import migrations
from gazeback.db.wipe import trail_files, wipe
from gazeback.devices import wireguard, workshop

# participant -> companies their phone contacted (Grindr and SecretCo are each one person's)
TRAFFIC = {
    "p01": ["Google", "Grindr"],
    "p02": ["Google", "Facebook"],
    "p03": ["Facebook", "SecretCo"],
}
MARKER = "marker-7f3a9c"


@pytest.fixture
def room(tmp_path):
    db_path = tmp_path / "ws" / "trail.db"
    db_path.parent.mkdir(mode=0o700)
    db = sqlite_utils.Database(db_path)
    migrations.apply(db)
    people = workshop.add_seats(db, db_path, 3, "192.168.1.20")
    for name in {c for cs in TRAFFIC.values() for c in cs}:
        slug = name.lower()
        db.table("companies").insert({"id": slug, "name": name, "country": "US"})
        db.table("trackers").insert(
            {"id": slug, "name": name, "company_id": slug, "category": "advertising",
             "is_tracker": 1}
        )  # fmt: skip
    n = 0
    for p in people:
        for company in TRAFFIC[p.label]:
            for _ in range(3):
                n += 1
                rid = db.table("requests").insert(
                    {"flow_id": f"f{n}", "device_id": p.device_id, "kind": "http",
                     "started_at": "2024-05-01T10:00:00Z", "is_decrypted": 1,
                     "host": f"{company.lower()}-{p.label}.example", "tracker_id": company.lower(),
                     "path": f"/collect?{MARKER}"}
                ).last_pk  # fmt: skip
                if company == "Google":
                    db.table("leaks").insert(
                        {"request_id": rid, "pii_type": "email", "transform_chain": "sha256:hex",
                         "location": "url.query:em", "tier": "strong"}
                    )  # fmt: skip
    migrations.apply(db)
    db.close()
    return db_path, {p.label: p for p in people}


PHONE = ("192.168.1.57", 40000)  # a participant's phone on the workshop's network
SERVED = "http://192.168.1.20:8002"  # the laptop's address on their card


async def phone(db_path, **kw):
    """An HTTP client as a participant's phone has it: another computer, talking to the one
    Datasette that ``gazeback workshop`` runs (real Datasette, gazeback's plugin)."""
    ds = serve.make_datasette(db_path, workshop=True, **kw)
    await ds.invoke_startup()
    transport = httpx.ASGITransport(app=ds.app(), client=PHONE)
    return ds, httpx.AsyncClient(transport=transport, base_url=SERVED)


async def test_each_participant_sees_only_their_own_rows(room):
    db_path, people = room
    ds, client = await phone(db_path)
    async with client:
        for label, p in people.items():
            page = (await client.get(f"/-/workshop/me/{p.token}")).text
            handout = (await client.get(f"/-/workshop/me/{p.token}/handout")).text
            own = (await client.get(f"/-/workshop/me/{p.token}/summary")).text  # one page (#17)
            assert "Who knows what about me" in own and f"/-/workshop/me/{p.token}/summary" in page
            for text in (page, handout, own):
                for company in TRAFFIC[label]:
                    assert company in text
                others = {c for o, cs in TRAFFIC.items() if o != label for c in cs}
                for company in others - set(TRAFFIC[label]):
                    assert company not in text
                for other in people.values():
                    if other.label != label:
                        assert other.token not in text
                        assert f"-{other.label}.example" not in text
            assert "6</span> requests" in page
            assert ("your email address" in page) == ("Google" in TRAFFIC[label])
        assert (await client.get("/-/workshop/me/not-a-token")).status_code == 404
        assert (await client.get(f"/-/workshop/me/{people['p01'].token}/../p02")).status_code == 404
        # Nothing else answers a phone: not the dashboard, not the trail, not even with the
        # dashboard's own token (which never leaves the laptop).
        for path in ("/", "/-/dashboards/workshop", f"/{db_path.stem}/requests",
                     f"/-/dashboards/workshop?token={ds.gazeback_token}"):  # fmt: skip
            r = await client.get(path)
            assert r.status_code == 403 and MARKER not in r.text, path
        r = await client.get(f"/-/workshop/me/{people['p01'].token}")
        assert "no-store" in r.headers["cache-control"]
        assert r.headers["referrer-policy"] == "no-referrer"  # the token stays in the address


async def test_a_device_label_with_html_is_shown_as_text(room):
    db_path, people = room
    db = sqlite_utils.Database(db_path)
    evil = '<script>alert("p01")</script><img src=x onerror=alert(1)>'
    db.table("devices").update(people["p01"].device_id, {"label": evil})
    db.table("requests").update(1, {"host": "<b>bold</b>.example", "kind": "tls_failed",
                                    "is_decrypted": 0})  # fmt: skip
    db.close()
    _, client = await phone(db_path)
    async with client:
        page = (await client.get(f"/-/workshop/me/{people['p01'].token}")).text
    assert "<script>alert" not in page and "<img src=x" not in page and "<b>bold" not in page
    assert "&lt;script&gt;alert(" in page and "&lt;b&gt;bold&lt;/b&gt;.example" in page


async def test_share_needs_the_participants_token_and_the_csrf_token(room):
    db_path, people = room
    _, client = await phone(db_path)
    p03 = f"/-/workshop/me/{people['p03'].token}"
    async with client:
        page = await client.get(p03)
        csrf = re.search(r'name="csrftoken" value="([^"]+)"', page.text).group(1)
        assert client.cookies.get("ds_csrftoken")  # Datasette's CSRF cookie, as for any form
        r = await client.post(f"{p03}/share", data={"share": "1"})  # no CSRF token
        assert r.status_code == 403
        r = await client.post("/-/workshop/me/not-a-token/share",
                              data={"share": "1", "csrftoken": csrf})  # fmt: skip
        assert r.status_code == 404
        assert (await client.get(f"{p03}/share")).status_code == 404
    assert rows(db_path, "room_shared") == []


def test_the_room_summary_names_only_what_two_phones_share(room):
    """The room's handout (/-/gazeback/summary?room=1) is the summary with k >= 2 (#17)."""
    from gazeback.share.summary import collect
    from gazeback.share.summarypage import render_html

    db_path, _ = room
    db = sqlite_utils.Database(db_path)
    s = collect(db, days=None, room=True)
    db.close()
    assert {c["name"] for c in s.companies_all} == {"Google", "Facebook"}
    html = render_html(s)
    assert "Grindr" not in html and "SecretCo" not in html and MARKER not in html
    assert "your email address" in html  # two phones sent it to Google


def rows(db_path, view):
    db = sqlite_utils.Database(db_path)
    try:
        return list(db.query(f"select * from {view}"))
    finally:
        db.close()


async def test_the_room_sees_shared_totals_and_opted_in_details(room):
    db_path, people = room
    companies = {r["company"]: r["participants"] for r in rows(db_path, "room_companies")}
    assert companies == {"Google": 2, "Facebook": 2}  # Grindr, SecretCo: one person each
    assert [(r["personal_data"], r["participants"], r["times"])
            for r in rows(db_path, "room_leaks")] == [("your email address", 2, 6)]  # fmt: skip
    assert rows(db_path, "room_shared") == []
    # p03 opts in on their own page: SecretCo (only p03's) may now show, Grindr still not
    _, client = await phone(db_path)
    async with client:
        page = await client.get(f"/-/workshop/me/{people['p03'].token}")
        csrf = re.search(r'name="csrftoken" value="([^"]+)"', page.text).group(1)
        r = await client.post(f"/-/workshop/me/{people['p03'].token}/share",
                              data={"share": "1", "csrftoken": csrf})  # fmt: skip
        assert r.status_code == 303
        assert r.headers["location"] == f"/-/workshop/me/{people['p03'].token}"
        assert "Stop sharing" in (await client.get(r.headers["location"])).text
    companies = {r["company"] for r in rows(db_path, "room_companies")}
    assert companies == {"Google", "Facebook", "SecretCo"}
    assert [r["participant"] for r in rows(db_path, "room_shared")] == ["p03"]


async def test_big_screen_dashboard_shows_no_ones_details(room):
    db_path, _ = room
    ds = await signed_in(serve.make_datasette(db_path))
    board = serve.dashboard_metadata("trail")["plugins"]["datasette-dashboards"]["workshop"]
    r = await ds.client.get("/-/dashboards/workshop")
    assert r.status_code == 200
    for slug, chart in board["charts"].items():
        if "query" not in chart:
            continue
        r = await ds.client.get(
            f"/{db_path.stem}.json", params={"sql": chart["query"], "_shape": "array"}
        )
        assert r.status_code == 200, (slug, r.text)
        text = r.text
        for secret in ("Grindr", "SecretCo", "p01", "p02", "p03", ".example"):
            assert secret not in text, (slug, secret)


def test_seat_cards(room):
    db_path, people = room
    db = sqlite_utils.Database(db_path)
    cards = workshop.seat_cards(db, db_path, "192.168.1.20", "http://192.168.1.20:8002")
    assert cards.count('class="card"') == 3 and cards.count("<svg") == 6
    for p in people.values():
        assert f"http://192.168.1.20:8002/-/workshop/me/{p.token}" in cards


def test_wipe_leaves_nothing_readable(room, tmp_path):
    db_path, _ = room
    db = sqlite_utils.Database(db_path)
    db.enable_wal()
    db.table("requests").update(1, {"host": MARKER})  # something in the WAL too
    spill = db_path.with_name("trail.db.spill.jsonl")
    spill.write_text(MARKER)
    db_path.with_name("trail.db.key").write_bytes(os.urandom(32))
    db_path.with_name("trail.db.seats.html").write_text(MARKER)
    # Hard links keep the inodes alive after removal: their bytes must be overwritten.
    keep = tmp_path / "links"
    keep.mkdir()
    before = [p for p in trail_files(db_path) if p.is_file()]
    before += list(wireguard.keys_dir(db_path).iterdir())
    for i, path in enumerate(before):
        os.link(path, keep / f"{i}-{path.name}")
    assert any(MARKER.encode() in (keep / f).read_bytes() for f in os.listdir(keep))
    assert db_path.with_name("trail.db-wal").exists()
    # `db` stays open, like a proxy that crashed: its WAL is still there to wipe. (A WAL
    # SQLite removed on a clean close is gone from every path already.)
    removed = wipe(db_path)
    try:
        db.close()
    except Exception:
        pass
    assert db_path in removed
    assert list(db_path.parent.iterdir()) == []
    for f in os.listdir(keep):
        data = (keep / f).read_bytes()
        assert MARKER.encode() not in data, f
        assert b"SQLite format" not in data and b"client_key" not in data, f


def test_workshop_command_runs_one_server_and_wipes_itself(tmp_path):
    folder = tmp_path / "room"
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "gazeback", "workshop", "--hours", "1", "--seats", "2", "--dir", str(folder),
         "--endpoint", "127.0.0.1", "--page-host", "127.0.0.1", "--page-port", str(port),
         "--proxy-port", str(free_port()), "--wireguard-host", "127.0.0.1"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, cwd=tmp_path,
    )  # fmt: skip
    out = ""
    try:
        assert proc.stdout is not None
        while "WireGuard:  device 'p02'" not in out:
            line = proc.stdout.readline()
            assert line, out
            out += line
        big = re.search(r"Big screen:  (\S+)", out).group(1)
        assert big.startswith(f"http://127.0.0.1:{port}/-/dashboards/workshop?token=")
        assert f"http://127.0.0.1:{port}/-/workshop/me/<on their card>" in out
        db = sqlite_utils.Database(folder / "trail.db")
        token = workshop.participants(db)[0].token
        db.close()
        own = httpx.get(f"http://127.0.0.1:{port}/-/workshop/me/{token}", timeout=10)
        assert own.status_code == 200 and "What your phone sent" in own.text
        assert httpx.get(big, timeout=10, follow_redirects=True).status_code == 200
        assert httpx.get(f"http://127.0.0.1:{port}/-/dashboards/workshop").status_code == 401
    finally:
        proc.send_signal(signal.SIGINT)
        rest, _ = proc.communicate(timeout=60)
        out += rest
    assert proc.returncode == 0, out
    assert "Seat cards to print" in out and "Wiped the workshop" in out
    assert "WireGuard:  device 'p01' on UDP port" in out
    assert not folder.exists()
    # the console is projected: no seat's password on it, and no page that shows one
    # participant's rows to the room (the trail, a table, the query editor)
    assert "password" not in out.replace("proxy users and passwords in", "")
    assert "2 devices joining by Wi-Fi proxy instead of WireGuard" in out
    addresses = re.findall(r"https?://\S+", out)
    assert addresses and all(
        "/-/dashboards/workshop" in a or a.endswith("/me/<on") or a == "http://mitm.it"
        for a in addresses
    ), addresses
