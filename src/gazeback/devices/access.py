"""How a device reaches this computer's proxy: the address it is given, and its proxy user."""

from __future__ import annotations

import json
import secrets
import socket
from pathlib import Path

from gazeback.db.localfiles import private_file


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


def lan_address() -> str:
    """This machine's address as a device on the LAN would use it (best effort, no traffic)."""
    try:
        for info in socket.getaddrinfo(socket.gethostname(), None, socket.AF_INET):
            addr = str(info[4][0])
            if not addr.startswith("127."):
                return addr
    except OSError:
        pass
    return "<this computer's address>"
