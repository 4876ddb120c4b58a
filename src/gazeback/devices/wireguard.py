"""WireGuard for a person's devices: one key file, listen port and client config per device.

mitmproxy's WireGuard mode gives every client the address 10.0.0.1, so gazeback runs one
WireGuard server per device (``--mode wireguard:<keys.json>@<port>``) and knows the device
by the port its packets arrived on. Key files hold mitmproxy's JSON
``{"server_key": ..., "client_key": ...}`` and live next to the database (0600).
"""

from __future__ import annotations

import io
import json
import os
from pathlib import Path
from typing import TextIO

import mitmproxy_rs
import segno

from gazeback.db.localfiles import side_file

BASE_PORT = 51820  # WireGuard's usual port; devices get 51820, 51821, ...
CLIENT_ADDRESS = "10.0.0.1/32"  # what mitmproxy's WireGuard mode gives every client
CLIENT_DNS = "10.0.0.53"  # mitmproxy answers DNS inside the tunnel


def keys_dir(db_path: Path) -> Path:
    """``trail.db.wireguard/``: the key files of every added device (0700)."""
    return side_file(db_path, "wireguard")


def keys_path(db_path: Path, name: str) -> Path:
    return keys_dir(db_path) / f"{name}.json"


def create_keys(path: Path) -> dict[str, str]:
    """Write a fresh key pair for one device's WireGuard server (0600); refuse to overwrite."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(path.parent, 0o700)
    keys = {
        "server_key": mitmproxy_rs.wireguard.genkey(),
        "client_key": mitmproxy_rs.wireguard.genkey(),
    }
    fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(keys, f, indent=2)
    return keys


def read_keys(path: Path) -> dict[str, str]:
    try:
        keys = json.loads(path.read_text())
        mitmproxy_rs.wireguard.pubkey(keys["server_key"])
        mitmproxy_rs.wireguard.pubkey(keys["client_key"])
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise ValueError(f"{path} is not a usable WireGuard key file: {e}") from e
    return {"server_key": keys["server_key"], "client_key": keys["client_key"]}


def public_key(private_key: str) -> str:
    return str(mitmproxy_rs.wireguard.pubkey(private_key))


def client_config(keys: dict[str, str], endpoint_host: str, port: int) -> str:
    """The configuration the device imports into its WireGuard app (same as mitmproxy's)."""
    return "\n".join(
        [
            "[Interface]",
            f"PrivateKey = {keys['client_key']}",
            f"Address = {CLIENT_ADDRESS}",
            f"DNS = {CLIENT_DNS}",
            "",
            "[Peer]",
            f"PublicKey = {public_key(keys['server_key'])}",
            "AllowedIPs = 0.0.0.0/0",
            f"Endpoint = {endpoint_host}:{port}",
        ]
    )


def mode_spec(path: Path, port: int, host: str = "") -> str:
    """``wireguard:/path/phone.json@0.0.0.0:51820`` for ``mitmdump --mode``."""
    where = f"{host}:{port}" if host else str(port)
    return f"wireguard:{path}@{where}"


def qr_terminal(text: str, out: TextIO) -> None:
    """Print ``text`` as a QR code made of block characters (scan it from the screen)."""
    segno.make(text, error="l").terminal(out=out, compact=True)


def qr_svg(text: str) -> str:
    """``text`` as an SVG document (dark modules on white, 4 px each), fit to serve as an
    image and to place inline in HTML."""
    # A standalone SVG document (with its namespace): the dashboard serves it as an image,
    # and a browser draws an image/svg+xml only when the root element carries the namespace.
    out = io.BytesIO()
    segno.make(text, error="l").save(out, kind="svg", scale=4, light="white", xmldecl=False)
    return out.getvalue().decode()
