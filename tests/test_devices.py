"""Bring your devices: WireGuard configs, QR codes, the modes `run` starts, attribution by
listen port and by proxy credential through a real mitmdump, the decryption check."""

import json
import re
import time
from datetime import UTC, datetime

import click
import httpx
import pytest
import sqlite_utils
from click.testing import CliRunner
from conftest import free_port, start_proxy
from signin import signed_in

from gazeback import cli as cli_module
from gazeback.cli import cli as main_cli
from gazeback.cli.devices import device, devices_, status, wipe
from gazeback.dashboard import serve
from gazeback.db import migrations
from gazeback.db.header_sets import with_header_set
from gazeback.db.localfiles import onboarding_path
from gazeback.devices import decryption, wireguard
from gazeback.devices import registry as devices

# the new commands beside the registered ones, without changing gazeback's own group
cli = click.Group("gazeback", commands={**main_cli.commands, "device": device,
                  "devices": devices_, "status": status, "wipe": wipe})  # fmt: skip


def fresh(tmp_path):
    db_path = tmp_path / "data" / "trail.db"
    db_path.parent.mkdir(mode=0o700)
    db = sqlite_utils.Database(db_path)
    migrations.apply(db)
    return db, db_path


def wait_rows(db_path, sql, count, timeout=8.0):
    deadline = time.monotonic() + timeout
    while True:
        try:
            database = sqlite_utils.Database(db_path)
            rows = list(database.query(sql))
            database.close()
        except Exception:
            rows = []
        if len(rows) >= count or time.monotonic() > deadline:
            return rows
        time.sleep(0.1)


def test_keys_config_and_qr(tmp_path):
    path = wireguard.keys_path(tmp_path / "trail.db", "phone")
    keys = wireguard.create_keys(path)
    assert path.stat().st_mode & 0o777 == 0o600
    assert path.parent.stat().st_mode & 0o777 == 0o700
    assert wireguard.read_keys(path) == keys
    with pytest.raises(FileExistsError):
        wireguard.create_keys(path)  # never overwrite a device's keys silently
    conf = wireguard.client_config(keys, "192.168.1.20", 51821)
    lines = conf.splitlines()
    assert lines[0] == "[Interface]" and f"PrivateKey = {keys['client_key']}" in lines
    assert "Address = 10.0.0.1/32" in lines and "DNS = 10.0.0.53" in lines
    assert f"PublicKey = {wireguard.public_key(keys['server_key'])}" in lines
    assert lines[-1] == "Endpoint = 192.168.1.20:51821"
    svg = wireguard.qr_svg(conf)
    assert svg.startswith("<svg") and svg.rstrip().endswith("</svg>")
    import io

    out = io.StringIO()
    wireguard.qr_terminal(conf, out)
    rows = out.getvalue().splitlines()
    assert len(rows) > 20 and set("".join(rows)) <= set("█▀▄ ")
    assert wireguard.mode_spec(path, 51821, "0.0.0.0") == f"wireguard:{path}@0.0.0.0:51821"


@pytest.mark.parametrize(
    "label,kind,message",
    [("", "phone", "use up to 40"), ("my phone", "phone", "use up to 40"),
     ("phone", "fridge", "kind 'fridge'")],
)  # fmt: skip
def test_add_rejects(tmp_path, label, kind, message):
    db, db_path = fresh(tmp_path)
    with pytest.raises(ValueError, match=message):
        devices.add(db, db_path, label, kind, endpoint_host="10.1.1.1")


def test_device_add_list_remove(tmp_path):
    db_path = tmp_path / "data" / "trail.db"
    run = CliRunner().invoke
    base = ["--db", str(db_path), "--endpoint", "192.168.1.20"]
    r = run(cli, ["device", "add", "phone", *base], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    assert "Endpoint = 192.168.1.20:51820" in r.output and "█" in r.output
    assert "user 'phone'" in r.output
    r = run(cli, ["device", "add", "tv", "--kind", "tv", "--no-qr", *base])
    assert r.exit_code == 0 and "█" not in r.output and "51821" in r.output
    assert run(cli, ["device", "add", "tv", *base]).exit_code == 1  # twice: a clear error

    db = sqlite_utils.Database(db_path)
    rows = list(
        db.query(
            "select d.key, d.label, d.kind, s.wireguard_port, s.onboarding_endpoint, "
            "s.device_id from device_setups s join devices d on d.id = s.device_id order by 4"
        )
    )
    assert rows == [
        {"key": "user:phone", "label": "phone", "kind": "phone", "wireguard_port": 51820,
         "onboarding_endpoint": "192.168.1.20:51820", "device_id": rows[0]["device_id"]},
        {"key": "user:tv", "label": "tv", "kind": "tv", "wireguard_port": 51821,
         "onboarding_endpoint": "192.168.1.20:51821", "device_id": rows[1]["device_id"]},
    ]  # fmt: skip
    qr = devices.qr_codes(db_path)  # beside the database, owner-only
    assert set(qr) == {str(r["device_id"]) for r in rows} and qr[
        str(rows[0]["device_id"])
    ].startswith("<svg")
    assert onboarding_path(db_path).stat().st_mode & 0o777 == 0o600
    creds = json.loads(serve.credentials_path(db_path).read_text())
    assert set(creds) == {"phone", "tv"}
    assert serve.credentials_path(db_path).stat().st_mode & 0o777 == 0o600

    r = run(cli, ["device", "list", "--db", str(db_path)])
    assert "phone" in r.output and "WireGuard UDP 51821" in r.output
    r = run(cli, ["device", "remove", "tv", "--db", str(db_path)])
    assert r.exit_code == 0, r.output
    assert not wireguard.keys_path(db_path, "tv").exists()
    assert set(json.loads(serve.credentials_path(db_path).read_text())) == {"phone"}
    assert set(devices.qr_codes(db_path)) == {str(rows[0]["device_id"])}
    assert [s.label for s in devices.setups(db, db_path)] == ["phone"]
    assert run(cli, ["device", "remove", "tv", "--db", str(db_path)]).exit_code == 1
    # the port is free again
    assert devices.add(db, db_path, "speaker", "speaker", endpoint_host="x").wireguard_port == 51821


@pytest.mark.parametrize(
    "args", [["device"], ["device", "add"], ["device", "list"], ["device", "remove"],
             ["devices"], ["status"], ["wipe"]],
)  # fmt: skip
def test_help_has_an_example(args):
    r = CliRunner().invoke(cli, [*args, "--help"])
    assert r.exit_code == 0 and "Example" in r.output


def test_run_starts_a_wireguard_mode_per_device_and_the_regular_proxy(tmp_path, monkeypatch):
    port = free_port()
    db, db_path = fresh(tmp_path)
    phone = devices.add(db, db_path, "phone", endpoint_host="x")
    tv = devices.add(db, db_path, "tv", "tv", endpoint_host="x")
    db.close()
    seen = []
    monkeypatch.setattr("mitmproxy.tools.main.mitmdump", lambda args: seen.append(args))
    r = CliRunner().invoke(
        cli,
        ["run", "--db", str(db_path), "--no-dashboard", "--listen-port", str(port),
         "--endpoint", "192.168.7.7"],
        catch_exceptions=False,
    )  # fmt: skip
    assert r.exit_code == 0, r.output
    args = seen[0]
    modes = [args[i + 1] for i, a in enumerate(args) if a == "--mode"]
    assert modes == [
        f"regular@127.0.0.1:{port}",
        f"wireguard:{phone.keys_path}@0.0.0.0:51820",
        f"wireguard:{tv.keys_path}@0.0.0.0:51821",
    ]
    auth = next(a for a in args if a.startswith("gazeback_proxy_users="))
    assert "phone:$2b$" in open(auth.split("=", 1)[1]).read()
    assert "WireGuard:  device 'phone' on UDP port 51820" in r.output
    # the dashboard's QR codes now point where devices reach this computer
    db = sqlite_utils.Database(db_path)
    assert {r["onboarding_endpoint"] for r in db.table("device_setups").rows} == {
        "192.168.7.7:51820", "192.168.7.7:51821",
    }  # fmt: skip
    # no added device: `run` is unchanged (no --mode)
    seen.clear()
    empty = tmp_path / "other" / "trail.db"
    CliRunner().invoke(
        cli,
        ["run", "--db", str(empty), "--no-dashboard", "--listen-port", str(free_port())],
        catch_exceptions=False,
    )
    assert "--mode" not in seen[0]
    assert cli_module.run.callback is not None


def credentialed_proxy(tmp_path, upstream, added):
    """A real mitmdump asking for the proxy users of the devices added, (label, kind) each."""
    db, db_path = fresh(tmp_path)
    for label, kind in added:
        devices.add(db, db_path, label, kind, endpoint_host="x")
    db.close()
    creds = serve.proxy_credentials(db_path, [])
    htpasswd = serve.write_htpasswd(db_path, creds)
    proxy = start_proxy(tmp_path, upstream, "--set", f"gazeback_proxy_users={htpasswd}")
    return proxy, creds, db_path


def test_attribution_by_proxy_credential_through_mitmdump(tmp_path, upstream):
    proxy, creds, db_path = credentialed_proxy(
        tmp_path, upstream, [("laptop", "laptop"), ("phone", "phone")]
    )
    try:
        for user, host in (("laptop", "api.example.org"), ("phone", "tracker.example")):
            url = f"http://{user}:{creds[user]}@127.0.0.1:{proxy.port}"
            with httpx.Client(proxy=url, verify=str(proxy.ca), timeout=10) as client:
                assert client.get(f"https://{host}/hello").status_code == 200
        with httpx.Client(proxy=proxy.url, timeout=10) as me:  # this computer: no credential
            assert me.get("http://plain.example/").status_code == 200
        with httpx.Client(proxy=f"http://phone:wrong@127.0.0.1:{proxy.port}", timeout=10) as bad:
            assert bad.get("http://wrong.example/").status_code == 407  # a wrong one: refused
        wait_rows(db_path, "select * from requests", 3)
    finally:
        assert proxy.stop() == 0
    rows = proxy.rows(
        "select d.label, d.kind, r.host from requests r join devices d on d.id = r.device_id "
        "order by r.host"
    )
    assert rows == [
        {"label": "laptop", "kind": "laptop", "host": "api.example.org"},
        {"label": "this computer", "kind": "other", "host": "plain.example"},
        {"label": "phone", "kind": "phone", "host": "tracker.example"},
    ]
    assert proxy.rows("select count(*) as n from devices")[0]["n"] == 3  # no stray rows


def test_a_room_joining_at_once_through_mitmdump(tmp_path, upstream):
    # Eight connections of one phone arrive together with its credential: every one is let in
    # and attributed (their bcrypt checks share one run: tests/test_deviceauth.py).
    from concurrent.futures import ThreadPoolExecutor

    proxy, creds, db_path = credentialed_proxy(tmp_path, upstream, [("phone", "phone")])

    def one(i):
        url = f"http://phone:{creds['phone']}@127.0.0.1:{proxy.port}"
        with httpx.Client(proxy=url, verify=str(proxy.ca), timeout=20) as client:
            return client.get(f"https://tracker.example/join?n={i}").status_code

    try:
        with ThreadPoolExecutor(8) as pool:
            assert list(pool.map(one, range(8))) == [200] * 8
        wait_rows(db_path, "select * from requests", 8)
    finally:
        assert proxy.stop() == 0
    rows = proxy.rows(
        "select d.label, count(*) as n from requests r join devices d on d.id = r.device_id "
        "group by d.label"
    )
    assert rows == [{"label": "phone", "n": 8}]


def test_decryption_check(db):
    now = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
    phone = db.table("devices").insert({"key": "user:phone", "label": "phone"}).last_pk
    tv = db.table("devices").insert({"key": "user:tv", "label": "tv"}).last_pk
    laptop = db.table("devices").insert({"key": "user:laptop", "label": "laptop"}).last_pk
    rows = [
        (phone, "11:55:00", "http", 1, "a.example", None),
        (phone, "11:56:00", "http", 1, "b.example", None),
        (phone, "11:57:00", "tls_failed", 0, "pinned.example", "com.bank"),
        (phone, "11:58:00", "tunnel", 0, "pinned.example", "com.bank"),
        (phone, "10:00:00", "tls_failed", 0, "old.example", None),  # outside the window
        (tv, "11:59:00", "tls_failed", 0, "tv.example", None),
        (tv, "11:59:30", "error", 1, "down.example", None),  # never reached its server
        (laptop, "09:00:00", "http", 1, "c.example", None),  # worked before
        (laptop, "11:59:00", "tls_failed", 0, "c.example", None),
    ]
    for i, (dev, at, kind, dec, host, app) in enumerate(rows):
        db.table("requests").insert(
            {"flow_id": str(i), "device_id": dev, "started_at": f"2024-05-01T{at}.000Z",
             "kind": kind, "is_decrypted": dec, "host": host, "app": app}
        )  # fmt: skip
    got = {d.device: d for d in decryption.check(db, 10, now=now)}
    assert (got["phone"].connections, got["phone"].decrypted) == (4, 2)
    assert got["phone"].share == 0.5 and got["phone"].refusing == ["com.bank: pinned.example"]
    assert "accept only their own certificate" in got["phone"].verdict
    # the failed connection is neither decrypted nor a connection that says anything
    assert (got["tv"].connections, got["tv"].decrypted, got["tv"].failed) == (1, 0, 1)
    assert got["tv"].share == 0 and "not installed on this device yet" in got["tv"].verdict
    assert "worked before" in got["laptop"].verdict  # decrypted before, refused now


def test_devices_command_lists_families_and_relabels(tmp_path):
    db, db_path = fresh(tmp_path)
    dev = db.table("devices").insert({"key": "ip:192.168.1.23", "label": "device at x"}).last_pk
    agents = [
        "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/126.0.0.0 Mobile Safari/537.36",
        "okhttp/4.9.2",
        "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 "
        "(KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1",
    ]
    for i, ua in enumerate(agents * 2):
        db.table("requests").insert(with_header_set(db,
            {"flow_id": str(i), "device_id": dev, "started_at": "2024-05-01T10:00:00Z",
             "kind": "http", "host": "h", "request_headers": json.dumps([["User-Agent", ua]])}
        ))  # fmt: skip
    db.close()
    r = CliRunner().invoke(
        cli,
        ["device", "relabel", "device at x", "kitchen", "--kind", "tablet", "--db", str(db_path)],
    )
    assert r.exit_code == 0, r.output
    r = CliRunner().invoke(cli, ["device", "list", "--db", str(db_path)])
    assert r.exit_code == 0, r.output
    assert "kitchen  (tablet)  6 requests" in r.output
    assert "systems: Android, iOS" in r.output
    assert "apps:    Chrome Mobile, Mobile Safari, okhttp" in r.output
    r = CliRunner().invoke(cli, ["device", "relabel", "nope", "x", "--db", str(db_path)])
    assert r.exit_code == 1 and "no device is labelled 'nope'" in r.output
    # the old name works for one release, and says what replaced it
    r = CliRunner().invoke(cli, ["devices", "--db", str(db_path)])
    assert r.exit_code == 0 and "kitchen  (tablet)" in r.output
    assert "now `gazeback device list`" in r.output


def test_status_command(tmp_path):
    db, db_path = fresh(tmp_path)
    devices.add(db, db_path, "phone", endpoint_host="x")
    db.close()
    r = CliRunner().invoke(cli, ["status", str(db_path)])
    assert r.exit_code == 0 and "phone: no connection: no traffic yet" in r.output
    db = sqlite_utils.Database(db_path)
    (phone,) = [r["id"] for r in db.query("select id from devices where label = 'phone'")]
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")
    for i, (kind, dec) in enumerate([("http", 1), ("error", 1), ("error", 1)]):
        db.table("requests").insert(
            {"flow_id": f"s{i}", "device_id": phone, "started_at": now, "kind": kind,
             "is_decrypted": dec, "host": "a.example"}
        )  # fmt: skip
    db.close()
    r = CliRunner().invoke(cli, ["status", str(db_path)])
    # one connection (not "1 connections"); the two that never reached a server are not
    # counted as looked into
    assert "phone: looked inside 100 % of 1 connection: working" in r.output, r.output
    assert "and 2 that never reached their server" in r.output, r.output


def test_wireguard_tunnel_through_mitmdump(tmp_path, upstream):
    """A real WireGuard client (wireguard-go in its own network namespace) scans nothing but
    uses the very config `device add` made; its requests land on its device."""
    from wgclient import Tunnel, available

    why = available()
    if why:
        pytest.skip(why)
    db, db_path = fresh(tmp_path)
    phone = devices.add(db, db_path, "phone", port=free_udp_port(), endpoint_host="x")
    devices.add(db, db_path, "laptop", "laptop", endpoint_host="x")
    db.close()
    keys = wireguard.read_keys(phone.keys_path)
    tunnel = Tunnel(keys["client_key"], wireguard.public_key(keys["server_key"]),
                    phone.wireguard_port, tmp_path)  # fmt: skip
    with tunnel:
        spec = wireguard.mode_spec(phone.keys_path, phone.wireguard_port, tunnel.host_ip)
        proxy = start_proxy(
            tmp_path, upstream, "--mode", "regular", "--mode", spec, hostmap_last=True
        )
        try:
            ca = str(proxy.ca)
            curl = ("curl", "-sS", "--max-time", "10", "--noproxy", "*")
            r1 = tunnel.run(*curl, "--resolve", "tracker.example:80:10.99.0.7",
                            "http://tracker.example/pixel.gif?via=wg")  # fmt: skip
            r2 = tunnel.run(*curl, "--cacert", ca, "--resolve", "www.google-analytics.com:443:10.99.0.8",
                            "https://www.google-analytics.com/g/collect?v=2")  # fmt: skip
            r3 = tunnel.run(
                *curl, "--resolve", "pinned.example:443:10.99.0.9", "https://pinned.example/"
            )  # fmt: skip  (no CA: refuses ours)
            assert tunnel.handshake_done(), tunnel.log()
            assert (r1.returncode, r2.returncode) == (0, 0), r1.stderr + r2.stderr + tunnel.log()
            assert r3.returncode != 0
            wait_rows(db_path, "select * from requests", 3)
        finally:
            assert proxy.stop() == 0
    rows = proxy.rows(
        "select d.label, r.host, r.kind, r.is_decrypted from requests r "
        "join devices d on d.id = r.device_id order by r.host"
    )
    assert rows == [
        {"label": "phone", "host": "pinned.example", "kind": "tls_failed", "is_decrypted": 0},
        {"label": "phone", "host": "tracker.example", "kind": "http", "is_decrypted": 1},
        {"label": "phone", "host": "www.google-analytics.com", "kind": "http", "is_decrypted": 1},
    ]
    check = {d.device: d for d in decryption.check(sqlite_utils.Database(db_path), 10)}
    assert check["phone"].connections == 3 and check["phone"].refusing == ["pinned.example"]
    assert check["laptop"].connections == 0


def free_udp_port() -> int:
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def test_connect_a_device_page(tmp_path):
    db, db_path = fresh(tmp_path)
    devices.add(db, db_path, "phone", endpoint_host="192.168.1.20")
    db.close()
    ds = await signed_in(serve.make_datasette(db_path))
    page = await ds.client.get("/-/dashboards/connect")
    assert page.status_code == 200 and "Connect a device" in page.text
    for system in ("Android", "iOS", "macOS", "Windows", "Linux", "http://mitm.it"):
        assert system in page.text
    board = serve.dashboard_metadata("trail")["plugins"]["datasette-dashboards"]["connect"]
    r = await ds.client.get(
        "/trail.json", params={"sql": board["charts"]["qr"]["query"], "_shape": "array"}
    )
    row = r.json()[0]
    assert "192.168.1.20:51820" in row["How it connects"]
    src = re.search(r'<img src="([^"]+)"', row["Scan this"]).group(1)
    qr = await ds.client.get(src)  # the page's image, fetched as the browser does
    assert qr.status_code == 200 and qr.text.startswith("<svg")
    assert qr.headers["content-type"].startswith("image/svg+xml")
    assert (await ds.client.get(src, headers={"cookie": ""})).status_code == 401
