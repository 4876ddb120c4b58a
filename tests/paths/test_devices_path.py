"""Journeys as the README tells them, with the real `gazeback` command (a subprocess, HOME in
a temporary folder) and real devices: wireguard-go clients in network namespaces, and a
"device on the LAN" using the regular proxy from a namespace (#12, item 1).

`gazeback device add phone` then `gazeback run`: the phone's tunnel carries HTTP and HTTPS
to the (stand-in) internet and its requests are its own; no proxy credential is asked of a
WireGuard peer nor of this computer's own browser; a device on the LAN needs its credential.
"""

import json
import re
import signal
import socket
import subprocess

import httpx
import pytest
from conftest import free_port
from gazebackrun import Gazeback
from wgclient import Namespace, Tunnel, available

pytestmark = pytest.mark.skipif(bool(available()), reason=str(available()))

CURL = ("curl", "-sS", "--max-time", "10", "--noproxy", "*", "-o", "/dev/null",
        "-w", "%{http_code}")  # fmt: skip


def free_udp_port(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def config_of(output: str) -> str:
    """The WireGuard configuration `device add` printed (what the QR code holds)."""
    start = output.index("[Interface]")
    return output[start : output.index("\n\n", output.index("[Peer]", start))]


def browse(tunnel: Tunnel, ca, tag: str) -> tuple[str, str]:
    """The device opens one HTTP and one HTTPS page (names resolve to addresses on the
    internet side of the tunnel; the stand-in internet answers for them)."""
    plain = tunnel.run(*CURL, "--resolve", "tracker.example:80:10.99.0.7",
                       f"http://tracker.example/pixel.gif?via={tag}")  # fmt: skip
    tls = tunnel.run(*CURL, "--cacert", str(ca), "--resolve",
                     "www.google-analytics.com:443:10.99.0.8",
                     f"https://www.google-analytics.com/g/collect?v=2&via={tag}")  # fmt: skip
    return (plain.stdout + plain.stderr, tls.stdout + tls.stderr)


def by_device(g: Gazeback) -> list[dict]:
    return g.rows(
        "select d.label, r.host, r.status_code, r.kind from requests r "
        "join devices d on d.id = r.device_id order by d.label, r.host"
    )


def test_phone_over_wireguard_as_the_readme_says(tmp_path, upstream):
    g = Gazeback(tmp_path)
    with Tunnel(None, None, None, tmp_path) as phone:
        port = free_udp_port(phone.host_ip)
        added = g.cli("device", "add", "phone", "--db", str(g.db_path), "--endpoint",
                      phone.host_ip, "--port", str(port))  # fmt: skip
        assert added.returncode == 0, added.stderr
        phone.join(config_of(added.stdout))
        g.run("--wireguard-host", phone.host_ip, "--no-dashboard", upstream=upstream)
        try:
            got = browse(phone, g.ca, "wg")
            assert got == ("200", "200"), f"{got}\n{g.output()}\n{phone.log()}"
            # this computer's own browser on the regular proxy: no credential asked
            with httpx.Client(proxy=f"http://127.0.0.1:{g.port}", verify=str(g.ca)) as me:
                assert me.get("https://connect.facebook.net/sdk.js").status_code == 200
                assert me.get("http://api.example.org/v1").status_code == 200
            g.wait_rows("select 1 from requests", 4)
        finally:
            assert g.stop() == 0, g.output()
    assert by_device(g) == [
        {"label": "phone", "host": "tracker.example", "status_code": 200, "kind": "http"},
        {"label": "phone", "host": "www.google-analytics.com", "status_code": 200, "kind": "http"},
        {"label": "this computer", "host": "api.example.org", "status_code": 200, "kind": "http"},
        {"label": "this computer", "host": "connect.facebook.net", "status_code": 200, "kind": "http"},
    ]  # fmt: skip
    assert "Traceback" not in g.output()


def test_two_phones_over_wireguard_at_once(tmp_path, upstream):
    g = Gazeback(tmp_path)
    with Tunnel(None, None, None, tmp_path) as phone, Tunnel(None, None, None, tmp_path) as tablet:
        # both servers listen on the first namespace's host address; the second reaches it
        # through its own veth pair and this machine's routing, as two phones on one Wi-Fi
        host = phone.host_ip
        subprocess.run(["ip", "netns", "exec", tablet.ns, "ip", "route", "add", f"{host}/32",
                        "via", tablet.host_ip], check=True)  # fmt: skip
        for name, dev in (("phone", phone), ("tablet", tablet)):
            added = g.cli("device", "add", name, "--kind", "tablet" if name == "tablet" else "phone",
                          "--db", str(g.db_path), "--endpoint", host,
                          "--port", str(free_udp_port(host)))  # fmt: skip
            assert added.returncode == 0, added.stderr
            dev.join(config_of(added.stdout))
        g.run("--wireguard-host", host, "--no-dashboard", upstream=upstream)
        try:
            for dev, tag in ((phone, "phone"), (tablet, "tablet")):
                got = browse(dev, g.ca, tag)
                assert got == ("200", "200"), f"{tag}: {got}\n{g.output()}\n{dev.log()}"
            g.wait_rows("select 1 from requests", 4)
        finally:
            assert g.stop() == 0, g.output()
    rows = g.rows(
        "select d.label, r.path from requests r join devices d on d.id = r.device_id "
        "order by d.label, r.host"
    )
    assert [(r["label"], r["path"].rsplit("via=", 1)[1]) for r in rows] == [
        ("phone", "phone"), ("phone", "phone"), ("tablet", "tablet"), ("tablet", "tablet"),
    ]  # fmt: skip


def test_workshop_seat_over_wireguard(tmp_path, upstream):
    g = Gazeback(tmp_path)
    folder = tmp_path / "room"
    with Tunnel(None, None, None, tmp_path) as seat:
        proxy_port = free_port()
        g.start("workshop", "--seats", "1", "--dir", str(folder), "--endpoint", seat.host_ip,
                "--wireguard-host", seat.host_ip, "--page-host", "127.0.0.1",
                "--page-port", str(free_port()),
                "--proxy-port", str(proxy_port), upstream=upstream,
                wait=("127.0.0.1", proxy_port))  # fmt: skip
        try:
            db_path = folder / "trail.db"
            keys = json.loads((folder / "trail.db.wireguard" / "p01.json").read_text())
            g.db_path = db_path
            (setup,) = g.rows("select onboarding_endpoint from device_setups")
            host, port = setup["onboarding_endpoint"].rsplit(":", 1)
            assert host == seat.host_ip  # the seat card's QR code points here
            from gazeback.devices import wireguard

            conf = wireguard.client_config(keys, host, int(port))  # what the card's QR holds
            seat.join(conf)
            got = browse(seat, folder / "mitmproxy" / "mitmproxy-ca-cert.pem", "seat")
            assert got == ("200", "200"), f"{got}\n{g.output()}\n{seat.log()}"
            rows = g.wait_rows("select 1 from requests", 2)
            assert len(rows) == 2
            assert {r["label"] for r in by_device(g)} == {"p01"}
        finally:
            assert g.proc is not None
            g.proc.send_signal(signal.SIGINT)
            g.proc.wait(60)
    assert not folder.exists()  # wiped at the end, as promised


def test_lan_device_on_the_regular_proxy_needs_its_credential(tmp_path, upstream):
    g = Gazeback(tmp_path)
    with Namespace() as laptop:
        g.run("--device", "laptop", "--no-dashboard", upstream=upstream,
              listen_host=laptop.host_ip)  # fmt: skip
        try:
            password = json.loads(g.db_path.with_name("trail.db.proxy-users.json").read_text())[
                "laptop"
            ]
            proxy = f"http://{laptop.host_ip}:{g.port}"
            curl = ("curl", "-sS", "--max-time", "10", "-o", "/dev/null", "-w", "%{http_code}")
            without = laptop.run(*curl, "-x", proxy, "http://tracker.example/no-credential")
            wrong = laptop.run(*curl, "-x", proxy, "-U", "laptop:wrong", "http://tracker.example/w")
            tunnel = laptop.run(*curl, "-x", proxy, "https://api.example.org/no-credential",
                                "--cacert", str(g.ca))  # fmt: skip
            with_it = laptop.run(*curl, "-x", proxy, "-U", f"laptop:{password}",
                                 "http://tracker.example/pixel")  # fmt: skip
            tls = laptop.run(*curl, "-x", proxy, "-U", f"laptop:{password}", "--cacert",
                             str(g.ca), "https://www.google-analytics.com/g/collect?v=2")  # fmt: skip
            assert (without.stdout, wrong.stdout, with_it.stdout, tls.stdout) == (
                "407", "407", "200", "200",
            ), g.output()  # fmt: skip
            assert tunnel.returncode != 0 and "407" in tunnel.stderr  # CONNECT refused too
            g.wait_rows("select 1 from requests", 2)
        finally:
            assert g.stop() == 0, g.output()
    assert by_device(g) == [
        {"label": "laptop", "host": "tracker.example", "status_code": 200, "kind": "http"},
        {"label": "laptop", "host": "www.google-analytics.com", "status_code": 200, "kind": "http"},
    ]  # fmt: skip
    # the credential is bcrypt-hashed for mitmproxy 11 and 12 alike
    assert re.fullmatch(
        r"laptop:\$2b\$10\$\S{53}\n", g.db_path.with_name("trail.db.htpasswd").read_text()
    )
