"""Test-only: a network namespace of its own joined to this machine by a veth pair (a "device
on the LAN"), optionally with a real WireGuard client (wireguard-go, userspace) in it.
Nothing leaves the machine: the namespace's only routes are the veth /30 and the tunnel,
whose peer is the local mitmdump.

Every name is unique per instance (namespace, veth, WireGuard interface and so its UAPI
socket under /var/run/wireguard, which all namespaces share), and the /30 is one no
interface of this machine uses, so tests running at the same time, or a wireguard-go
somebody else runs here, neither collide with nor get reconfigured by ours.
"""

from __future__ import annotations

import ipaddress
import os
import random
import secrets
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
    out = subprocess.run(args, capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed ({out.returncode}): {out.stderr.strip()}")
    return out.stdout


def _used_networks() -> list[ipaddress.IPv4Network]:
    nets = []
    for line in _sh("ip", "-o", "-4", "addr", "show").splitlines():
        fields = line.split()
        if "inet" in fields:
            nets.append(ipaddress.ip_interface(fields[fields.index("inet") + 1]).network)
    return nets


class Namespace:
    """``with Namespace() as ns: ns.run("curl", ...)``: a client at ``ns.ns_ip`` that reaches
    this machine at ``ns.host_ip`` (an address no other program listens on)."""

    def __init__(self) -> None:
        tag = secrets.token_hex(4)
        self.ns, self.veth, self.peer = f"gzb-{tag}", f"gzh{tag}", f"gzn{tag}"
        self.host_ip = self.ns_ip = ""

    def _pick_subnet(self) -> None:
        used = _used_networks()
        for _ in range(100):
            net = ipaddress.ip_network(
                f"10.213.{random.randrange(256)}.{random.randrange(64) * 4}/30"
            )
            if not any(net.overlaps(u) for u in used):
                hosts = list(net.hosts())
                self.host_ip, self.ns_ip = str(hosts[0]), str(hosts[1])
                return
        raise RuntimeError("no free /30 in 10.213.0.0/16 for a test namespace")

    def exec(self, *cmd: str) -> tuple[str, ...]:
        return ("ip", "netns", "exec", self.ns, *cmd)

    def __enter__(self) -> Namespace:
        _sh("ip", "netns", "add", self.ns)
        try:
            for attempt in range(5):
                self._pick_subnet()
                _sh("ip", "link", "add", self.veth, "type", "veth", "peer", "name", self.peer,
                    "netns", self.ns)  # fmt: skip
                try:
                    _sh("ip", "addr", "add", f"{self.host_ip}/30", "dev", self.veth)
                    break
                except RuntimeError:  # taken meanwhile by a test running at the same time
                    _sh("ip", "link", "del", self.veth)
                    if attempt == 4:
                        raise
            _sh("ip", "link", "set", self.veth, "up")
            _sh(*self.exec("ip", "addr", "add", f"{self.ns_ip}/30", "dev", self.peer))
            _sh(*self.exec("ip", "link", "set", self.peer, "up"))
            _sh(*self.exec("ip", "link", "set", "lo", "up"))
        except BaseException:
            self.__exit__()
            raise
        return self

    def run(self, *cmd: str, timeout: float = 20) -> subprocess.CompletedProcess[str]:
        return subprocess.run(self.exec(*cmd), capture_output=True, text=True, timeout=timeout)

    def __exit__(self, *exc: object) -> None:
        subprocess.run(["ip", "link", "del", self.veth], capture_output=True)
        subprocess.run(["ip", "netns", "del", self.ns], capture_output=True)


class Tunnel(Namespace):
    """``with Tunnel(client_key, server_pub, port, tmp) as t: t.run("curl", ...)``: the
    namespace's default route goes through wireguard-go to ``host_ip:port``."""

    def __init__(
        self, client_key: str | None, server_public_key: str | None, port: int | None, tmp: Path
    ) -> None:
        super().__init__()
        self.wg = f"gzw{self.ns[4:]}"  # ≤ 15 characters; its UAPI socket is unique too
        self.client_key, self.server_pub, self.port = client_key, server_public_key, port
        self.log_path = tmp / f"wireguard-go-{self.wg}.log"
        self.key_path = tmp / f"{self.wg}.key"
        self.proc: subprocess.Popen[bytes] | None = None

    def log(self) -> str:
        """wireguard-go's own output, for failure messages."""
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            text = ""
        return f"--- wireguard-go log ({self.wg} in {self.ns}) ---\n{text or '(empty)'}"

    def __enter__(self) -> Tunnel:
        super().__enter__()
        try:
            log = open(self.log_path, "wb")
            self.proc = subprocess.Popen(
                [*self.exec("wireguard-go", "-f", self.wg)], stdout=log, stderr=subprocess.STDOUT,
                env={**os.environ, "WG_I_PREFER_BUGGY_USERSPACE_TO_POLISHED_KMOD": "1",
                     "LOG_LEVEL": "verbose"},
            )  # fmt: skip
            for _ in range(200):
                if self.run("ip", "link", "show", self.wg).returncode == 0:
                    break
                if self.proc.poll() is not None:
                    raise RuntimeError(f"wireguard-go exited with {self.proc.returncode}")
                time.sleep(0.05)
            else:
                raise RuntimeError(f"wireguard-go made no interface {self.wg} in 10 s")
            if self.client_key and self.server_pub and self.port:
                self.join(
                    f"[Interface]\nPrivateKey = {self.client_key}\nAddress = 10.0.0.1/32\n"
                    f"[Peer]\nPublicKey = {self.server_pub}\nAllowedIPs = 0.0.0.0/0\n"
                    f"Endpoint = {self.host_ip}:{self.port}\n"
                )
        except BaseException as e:
            self.__exit__()
            if isinstance(e, RuntimeError):
                raise RuntimeError(f"{e}\n{self.log()}") from e
            raise
        return self

    def join(self, config: str) -> None:
        """Import a WireGuard configuration as the WireGuard app does (the text `gazeback
        device add` prints, or a seat card's)."""
        conf = dict(
            (k.strip(), v.strip())
            for k, _, v in (line.partition("=") for line in config.splitlines() if "=" in line)
        )
        try:
            self.key_path.write_text(conf["PrivateKey"])
            self.key_path.chmod(0o600)
            _sh(*self.exec("wg", "set", self.wg, "private-key", str(self.key_path), "peer",
                conf["PublicKey"], "endpoint", conf["Endpoint"], "allowed-ips",
                conf["AllowedIPs"]))  # fmt: skip
            _sh(*self.exec("ip", "addr", "add", conf["Address"], "dev", self.wg))
            _sh(*self.exec("ip", "link", "set", self.wg, "up"))
            _sh(*self.exec("ip", "route", "add", "default", "dev", self.wg))
        except RuntimeError as e:
            raise RuntimeError(f"{e}\n{self.log()}") from e

    def handshake_done(self) -> bool:
        out = self.run("wg", "show", self.wg, "latest-handshakes").stdout.split()
        return len(out) == 2 and out[1] != "0"

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        super().__exit__()
