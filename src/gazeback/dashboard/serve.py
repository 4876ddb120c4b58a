"""Starting the proxy and the dashboard: arguments, credentials, addresses."""

from __future__ import annotations

import ipaddress
import json
import os
import secrets
import signal
import socket
import subprocess
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
    """An htpasswd file for mitmproxy's ``proxyauth=@file`` (hashed, 0600)."""
    from passlib.apache import HtpasswdFile

    path = db_path.with_name(db_path.name + ".htpasswd")
    if path.exists():
        path.unlink()
    private_file(path)
    ht = HtpasswdFile(str(path), new=True, default_scheme="sha256_crypt")
    for user, password in creds.items():
        ht.set_password(user, password)
    ht.save()
    os.chmod(path, 0o600)
    return path


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


def device_modes(
    db: Any, db_path: Path, wireguard_host: str, endpoint: str | None = None
) -> list[tuple[str, str]]:
    """(proxy user, ``--mode wireguard:...``) for every added device; refreshes their QR codes
    so the dashboard shows the address devices reach this computer at now."""
    from gazeback.devices import registry as devices
    from gazeback.devices import wireguard

    found = devices.setups(db, db_path)
    if found:
        devices.refresh_onboarding(db, db_path, endpoint or lan_address(), found)
    return [(s.proxy_user, wireguard.mode_spec(s.keys_path, s.wireguard_port,
             wireguard_host)) for s in found]  # fmt: skip


def serve_until_interrupted(command: list[str]) -> int:
    """Run a server command in the foreground until Ctrl-C; Ctrl-C is the normal way to stop
    it, so it ends with status 0 (not click's "Aborted!")."""
    proc = subprocess.Popen(command)
    try:
        return proc.wait()
    except KeyboardInterrupt:
        # A terminal sends SIGINT to the whole process group; forward it in case it reached
        # only us (e.g. `kill -INT`), then let the server finish its shutdown.
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
        stop_server(proc)
        return 0


def stop_server(proc: subprocess.Popen[bytes], grace: float = 5.0) -> None:
    """Stop a dashboard server: ask, then insist. Uvicorn waits for open connections on a
    graceful stop, and a browser tab can hold one open for good."""
    if proc.poll() is None:
        proc.terminate()
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
