"""Test-only: a real WireGuard client (wireguard-go, userspace) in a network namespace of its
own, joined to this machine by a veth pair. Nothing leaves the machine: the namespace's
only routes are the veth /30 and the tunnel, whose peer is the local mitmdump."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path


def available() -> str | None:
    """None when a tunnel can be made here, else why not."""
    if os.geteuid() != 0:
        return "needs root to make a network namespace"
    for tool in ("ip", "wg", "wireguard-go"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed (Debian: iproute2, wireguard-tools, wireguard-go)"
    if not Path("/dev/net/tun").exists():
        return "no /dev/net/tun"
    return None


def _sh(*args: str) -> str:
    return subprocess.run(args, check=True, capture_output=True, text=True).stdout


class Tunnel:
    """``with Tunnel(client_key, server_pub, port) as t: t.run("curl", ...)``"""

    def __init__(self, client_key: str, server_public_key: str, port: int, tmp: Path) -> None:
        n = os.getpid() % 200 + 20
        self.ns = f"gzbt{os.getpid()}"
        self.host_ip, self.ns_ip = f"10.213.{n}.1", f"10.213.{n}.2"
        self.client_key, self.server_pub, self.port, self.tmp = (
            client_key, server_public_key, port, tmp,
        )  # fmt: skip
        self.proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Tunnel:
        ns, veth = self.ns, f"gzh{os.getpid() % 100000}"
        _sh("ip", "netns", "add", ns)
        try:
            _sh("ip", "link", "add", veth, "type", "veth", "peer", "name", "gzn0", "netns", ns)
            _sh("ip", "addr", "add", f"{self.host_ip}/30", "dev", veth)
            _sh("ip", "link", "set", veth, "up")
            ex = ("ip", "netns", "exec", ns)
            _sh(*ex, "ip", "addr", "add", f"{self.ns_ip}/30", "dev", "gzn0")
            _sh(*ex, "ip", "link", "set", "gzn0", "up")
            _sh(*ex, "ip", "link", "set", "lo", "up")
            log = open(self.tmp / "wireguard-go.log", "wb")
            self.proc = subprocess.Popen(
                [*ex, "wireguard-go", "-f", "wg0"], stdout=log, stderr=subprocess.STDOUT,
                env={**os.environ, "WG_I_PREFER_BUGGY_USERSPACE_TO_POLISHED_KMOD": "1"},
            )  # fmt: skip
            for _ in range(100):
                if subprocess.run([*ex, "ip", "link", "show", "wg0"], capture_output=True).returncode == 0:  # fmt: skip
                    break
                time.sleep(0.05)
            key = self.tmp / "client.key"
            key.write_text(self.client_key)
            key.chmod(0o600)
            _sh(*ex, "wg", "set", "wg0", "private-key", str(key), "peer", self.server_pub,
                "endpoint", f"{self.host_ip}:{self.port}", "allowed-ips", "0.0.0.0/0")  # fmt: skip
            _sh(*ex, "ip", "addr", "add", "10.0.0.1/32", "dev", "wg0")
            _sh(*ex, "ip", "link", "set", "wg0", "up")
            _sh(*ex, "ip", "route", "add", "default", "dev", "wg0")
        except BaseException:
            self.__exit__()
            raise
        return self

    def run(self, *cmd: str, timeout: float = 20) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["ip", "netns", "exec", self.ns, *cmd], capture_output=True, text=True, timeout=timeout
        )

    def handshake_done(self) -> bool:
        out = self.run("wg", "show", "wg0", "latest-handshakes").stdout.split()
        return len(out) == 2 and out[1] != "0"

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        subprocess.run(["ip", "netns", "del", self.ns], capture_output=True)
