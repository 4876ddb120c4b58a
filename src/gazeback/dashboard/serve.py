"""Starting the proxy and the dashboard: arguments, credentials, addresses."""

from __future__ import annotations

import ipaddress
import json
import secrets
import socket
import sys
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from gazeback.db.localfiles import private_file

LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})


def is_loopback(host: str) -> bool:
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def dashboards_dir() -> Path:
    """``dashboards/``: the installed package, or the source tree next to this module.

    An editable install maps ``gazeback.dashboards`` to one checkout's folder; when this
    module runs from another checkout (PYTHONPATH=src), that checkout's folder wins.
    """
    local = Path(__file__).resolve().parents[3] / "dashboards"
    if (local / "metadata.yml").is_file() and (local / "__init__.py").is_file():
        return local
    return Path(str(resources.files("gazeback.dashboards")))


def dashboard_metadata(db_name: str) -> dict[str, Any]:
    """gazeback's metadata.yml, pointed at the database Datasette will call ``db_name``.

    The file is written for a database named ``trail`` (``trail.db``); any other file name
    gets the same dashboards.
    """
    meta: dict[str, Any] = yaml.safe_load((dashboards_dir() / "metadata.yml").read_text())
    if db_name != "trail":
        meta["databases"] = {db_name: meta["databases"].pop("trail")}
        for board in meta["plugins"]["datasette-dashboards"].values():
            for item in [*board.get("charts", {}).values(), *board.get("filters", {}).values()]:
                if item.get("db") == "trail":
                    item["db"] = db_name
                for key in ("query", "display"):
                    if isinstance(item.get(key), str):
                        item[key] = item[key].replace('href="/trail/', f'href="/{db_name}/')
                        item[key] = item[key].replace("](/trail/", f"](/{db_name}/")
    return meta


STATIC_MOUNT = "gazeback-static"  # dashboards/static, served at /gazeback-static/


def datasette_settings() -> dict[str, Any]:
    # suggest_facets off: on a million-row trail, trying every column as a facet takes
    # seconds per table page; the facets named in metadata.yml still show.
    return {
        "sql_time_limit_ms": 3000,
        "allow_download": False,
        "default_cache_ttl": 0,
        "suggest_facets": False,
    }


def make_datasette(db_path: Path, settings: dict[str, Any] | None = None, **kwargs: Any) -> Any:
    """A Datasette serving ``db_path`` exactly as ``gazeback dashboard`` does (tests, bench)."""
    from datasette.app import Datasette

    folder = dashboards_dir()
    return Datasette(
        [str(db_path)],
        metadata=dashboard_metadata(db_path.stem),
        settings={**datasette_settings(), **(settings or {})},
        template_dir=str(folder / "templates"),
        static_mounts=[(STATIC_MOUNT, str(folder / "static"))],
        **kwargs,
    )


def dashboard_command(
    db_path: Path, host: str, port: int, password: str | None = None
) -> list[str]:
    """``datasette serve`` for a live trail: mutable (sees WAL rows), gazeback's metadata.

    Beyond loopback a password is required (ValueError without one): every request then
    needs it, and any Host name is answered.
    """
    from gazeback.dashboard.plugin import hash_password

    folder = dashboards_dir()
    meta = dashboard_metadata(db_path.stem)
    if not is_loopback(host):
        if not password:
            raise ValueError(f"a password is required to serve the dashboard on {host}")
        meta.setdefault("plugins", {})["gazeback"] = {
            "allowed_hosts": ["*"],
            "password_hash": hash_password(password),
        }
    meta_path = db_path.with_name(db_path.name + ".dashboard.json")
    private_file(meta_path)
    meta_path.write_text(json.dumps(meta))
    cmd = [
        sys.executable, "-m", "datasette", "serve", str(db_path),
        "--metadata", str(meta_path),
        "--host", host, "--port", str(port),
        "--setting", "sql_time_limit_ms", "3000",
        "--setting", "allow_download", "off",
        "--setting", "default_cache_ttl", "0",
        "--setting", "suggest_facets", "off",
    ]  # fmt: skip
    if (folder / "templates").is_dir():
        cmd += ["--template-dir", str(folder / "templates")]
    if (folder / "static").is_dir():
        cmd += ["--static", f"{STATIC_MOUNT}:{folder / 'static'}"]
    return cmd


def credentials_path(db_path: Path) -> Path:
    return db_path.with_name(db_path.name + ".proxy-users.json")


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


def write_htpasswd(db_path: Path, creds: dict[str, str]) -> Path:
    """An htpasswd file of the devices' proxy users, bcrypt-hashed (0600).

    gazeback's own check reads it (``gazeback_proxy_users``), and so can mitmproxy's
    ``proxyauth=@file`` (mitmproxy 12 reads bcrypt and ``{SHA}`` only).
    """
    import bcrypt

    path = db_path.with_name(db_path.name + ".htpasswd")
    lines = [
        f"{user}:{bcrypt.hashpw(password.encode(), bcrypt.gensalt(BCRYPT_ROUNDS)).decode()}\n"
        for user, password in sorted(creds.items())
    ]
    private_file(path)
    path.write_text("".join(lines))
    return path


BCRYPT_ROUNDS = 10  # ~50 ms a check; a device's connection is checked once, then cached


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


def device_modes(
    db: Any, db_path: Path, wireguard_host: str, endpoint: str | None = None
) -> list[tuple[str, str]]:
    """(proxy user, ``--mode wireguard:...``) for every added device; refreshes their QR codes
    so the dashboard shows the address devices reach this computer at now."""
    from gazeback.devices import registry as devices
    from gazeback.devices import wireguard

    found = devices.setups(db, db_path)
    host = endpoint or lan_address()
    if found and host:  # without an address, keep the QR codes devices were given
        devices.refresh_onboarding(db, db_path, host, found)
    return [(s.proxy_user, wireguard.mode_spec(s.keys_path, s.wireguard_port,
             wireguard_host)) for s in found]  # fmt: skip
