"""How a device reaches this computer's proxy: the address it is given, and its proxy user."""

from __future__ import annotations

import ipaddress
import json
import secrets
import socket
import sys
from pathlib import Path

from gazeback.db.localfiles import private_file, side_file


def credentials_path(db_path: Path) -> Path:
    return side_file(db_path, "proxy_users")


def proxy_credentials(db_path: Path, labels: list[str]) -> dict[str, str]:
    """Per-device proxy users (label → password), created once and kept next to the db (0600)."""
    path = credentials_path(db_path)
    creds: dict[str, str] = json.loads(path.read_text()) if path.exists() else {}
    for label in labels:
        if not label.replace("-", "").replace("_", "").isalnum():
            raise ValueError(f"device label {label!r}: use letters, digits, - and _ only")
        creds.setdefault(label, secrets.token_urlsafe(12))
    private_file(path)
    path.write_text(json.dumps(creds, indent=2, sort_keys=True))
    return creds


def machine_addresses() -> list[tuple[str, str]]:
    """(interface, address) for every address this machine has, loopback included.

    Linux: IPv4 from each interface (SIOCGIFADDR), IPv6 from /proc/net/if_inet6. Elsewhere:
    what the host name resolves to. No traffic is sent.
    """
    found: list[tuple[str, str]] = []
    try:
        import fcntl
        import struct

        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            for _, name in socket.if_nameindex():
                try:
                    req = struct.pack("256s", name.encode()[:15])
                    raw = fcntl.ioctl(s.fileno(), 0x8915, req)  # SIOCGIFADDR
                except OSError:
                    continue  # no IPv4 address on this interface
                found.append((name, socket.inet_ntoa(raw[20:24])))
    except (ImportError, OSError, AttributeError):
        pass
    try:
        for line in Path("/proc/net/if_inet6").read_text().splitlines():
            fields = line.split()
            if len(fields) == 6:
                packed = bytes.fromhex(fields[0])
                found.append((fields[5], str(ipaddress.IPv6Address(packed))))
    except (OSError, ValueError):
        pass
    if not found and sys.platform != "linux":
        try:
            for info in socket.getaddrinfo(socket.gethostname(), None):
                found.append(("", str(info[4][0])))
        except OSError:
            pass
    return list(dict.fromkeys(found))


def lan_address(addresses: list[tuple[str, str]] | None = None) -> str | None:
    """This machine's address as a device on the LAN would use it, or None if it has none:
    the first private IPv4 address (then any other non-loopback, non-link-local IPv4)."""
    found = machine_addresses() if addresses is None else addresses
    usable = []
    for _, addr in found:
        try:
            ip = ipaddress.ip_address(addr)
        except ValueError:
            continue
        if ip.version == 4 and not (ip.is_loopback or ip.is_link_local or ip.is_unspecified):
            usable.append(ip)
    usable.sort(key=lambda ip: not ip.is_private)  # stable: interface order otherwise
    return str(usable[0]) if usable else None


def require_endpoint(endpoint: str | None, addresses: list[tuple[str, str]] | None = None) -> str:
    """The address devices reach this computer at: ``endpoint``, else the LAN address;
    ValueError saying how to pass ``--endpoint`` (and which addresses there are) if neither."""
    if endpoint:
        return endpoint
    found = machine_addresses() if addresses is None else addresses
    host = lan_address(found)
    if host is not None:
        return host
    listed = ", ".join(f"{addr} ({name})" if name else addr for name, addr in found)
    raise ValueError(
        "could not find this computer's network address, so a QR code would not work: "
        "connect to the network the devices use, or give the address they reach this "
        "computer at with --endpoint ADDRESS (e.g. --endpoint 192.168.1.20). "
        + (
            f"Addresses this computer has: {listed}."
            if found
            else "This computer has no network address at all."
        )
    )
