"""Attack: a device uses the proxy to reach this computer (SSRF, #13 item 2), e.g. the
dashboard at http://127.0.0.1:8001/trail.json?sql=... . Real `gazeback run`, real dashboard,
real clients: a device on the LAN (a network namespace, with its proxy credential) and a
phone over WireGuard (wireguard-go in a namespace)."""

import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest
from conftest import free_port, wait_for_port
from gazebackrun import Gazeback
from wgclient import Namespace, Tunnel, available

pytestmark = pytest.mark.skipif(bool(available()), reason=str(available()))

CURL = ("curl", "-sS", "--max-time", "10", "-w", "\n%{http_code}")


class Secret(BaseHTTPRequestHandler):
    def do_GET(self):
        body = b"local service: the secret"
        self.send_response(200)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def local_service(host: str) -> ThreadingHTTPServer:
    server = ThreadingHTTPServer((host, 0), Secret)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def fetch(ns: Namespace, *args: str) -> tuple[str, str]:
    out = ns.run(*CURL, *args)
    body, _, status = out.stdout.rpartition("\n")
    return status, body + out.stderr


def test_a_lan_device_cannot_read_the_dashboard_through_the_proxy(tmp_path, upstream):
    g = Gazeback(tmp_path)
    dashboard = free_port()
    with Namespace() as device:
        own = local_service(device.host_ip)  # a service on this computer's own address
        g.run("--device", "phone", "--dashboard-port", str(dashboard), upstream=upstream,
              listen_host=device.host_ip)  # fmt: skip
        try:
            password = json.loads(g.db_path.with_name("trail.db.proxy-users.json").read_text())
            proxy = ("-x", f"http://{device.host_ip}:{g.port}", "-U", f"phone:{password['phone']}")
            # the dashboard answers on loopback (this computer's own browser)...
            wait_for_port(dashboard, timeout=60)
            assert httpx.get(f"http://127.0.0.1:{dashboard}/-/versions.json", timeout=30)
            sql = "trail.json?sql=select+host+from+requests"
            targets = [
                f"http://127.0.0.1:{dashboard}/{sql}",
                f"http://localhost:{dashboard}/{sql}",
                f"http://[::1]:{dashboard}/{sql}",
                f"http://2130706433:{dashboard}/{sql}",  # 127.0.0.1 as one number
                f"http://127.1:{dashboard}/{sql}",
                f"http://0.0.0.0:{dashboard}/{sql}",
                "http://169.254.169.254/latest/meta-data/",  # link-local (cloud metadata)
                f"http://{device.host_ip}:{own.server_address[1]}/",  # this computer's address
            ]
            for url in targets:
                status, body = fetch(device, *proxy, url)
                assert status == "403", (url, status, body)
                assert "Refused by gazeback" in body and "secret" not in body and "rows" not in body
            # a name that resolves to this computer: refused when the proxy connects
            status, body = fetch(device, *proxy, f"http://{socket.gethostname()}:{dashboard}/{sql}")
            assert status in ("403", "502") and "refused by gazeback" in body, body
            # HTTPS: the CONNECT itself is refused
            status, body = fetch(device, *proxy, f"https://127.0.0.1:{dashboard}/{sql}", "-k")
            assert "403" in body and "rows" not in body, body
            # this computer's own programs may still use local services through the proxy
            # (they can reach them directly anyway): a documented choice. Connecting from
            # here to the proxy's address, their address is this computer's own.
            with httpx.Client(proxy=f"http://{device.host_ip}:{g.port}", timeout=10) as me:
                r = me.get(f"http://127.0.0.1:{upstream.http_port}/mine")
            assert r.status_code == 200 and r.json()["path"] == "/mine"
            g.wait_rows("select 1 from requests where kind = 'refused'", len(targets) + 1)
        finally:
            own.shutdown()
            assert g.stop() == 0, g.output()
    refused = g.rows(
        "select d.label, r.host, r.status_code, r.error from requests r "
        "join devices d on d.id = r.device_id where r.kind = 'refused'"
    )
    assert len(refused) >= len(targets) + 1  # every attempt recorded, the CONNECT too
    assert {r["label"] for r in refused} == {"phone"}
    assert all(
        r["status_code"] == 403 and r["error"].startswith("refused by gazeback: ") for r in refused
    )
    hosts = {r["host"] for r in refused}
    assert {"127.0.0.1", "localhost", "169.254.169.254", device.host_ip} <= hosts


def test_a_wireguard_phone_cannot_reach_this_computer(tmp_path, upstream):
    g = Gazeback(tmp_path)
    with Tunnel(None, None, None, tmp_path) as phone, Namespace() as lan:
        # a service on another of this computer's addresses, which the phone reaches only
        # through its tunnel (its own veth address it would reach directly)
        own = local_service(lan.host_ip)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.bind((phone.host_ip, 0))
            port = s.getsockname()[1]
        added = g.cli("device", "add", "phone", "--db", str(g.db_path), "--endpoint",
                      phone.host_ip, "--port", str(port), "--no-qr")  # fmt: skip
        assert added.returncode == 0, added.stderr
        start = added.stdout.index("[Interface]")
        phone.join(added.stdout[start : added.stdout.index("\n\n", added.stdout.index("[Peer]"))])
        g.run("--wireguard-host", phone.host_ip, "--no-dashboard", upstream=upstream)
        try:
            # WireGuard connects eagerly: the connection is closed before any request, so
            # the phone sees a failed connection rather than a page
            out = phone.run("curl", "-sS", "--max-time", "5", "--noproxy", "*",
                            f"http://{lan.host_ip}:{own.server_address[1]}/")  # fmt: skip
            assert out.returncode != 0 and "secret" not in out.stdout, out.stdout + phone.log()
            # the same phone still reaches the internet
            status, _ = fetch(phone, "--noproxy", "*", "--resolve", "tracker.example:80:10.99.0.7",
                              "http://tracker.example/ok")  # fmt: skip
            assert status == "200", g.output()
            g.wait_rows("select 1 from requests", 2)
        finally:
            own.shutdown()
            assert g.stop() == 0, g.output()
    rows = g.rows("select kind, host, error from requests order by id")
    assert [(r["kind"], r["host"]) for r in rows] == [
        ("refused", lan.host_ip), ("http", "tracker.example"),
    ]  # fmt: skip
    assert "one of this computer's own addresses" in rows[0]["error"]
