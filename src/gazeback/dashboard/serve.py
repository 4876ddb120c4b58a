"""Starting the proxy and the dashboard: arguments, credentials, addresses."""

from __future__ import annotations

import ipaddress
import json
import os
import signal
import socket
import subprocess
import sys
import time
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from gazeback.dashboard import access
from gazeback.db.localfiles import private_file, side_file

# Moved to devices.access (devices must not import the dashboard); kept here for callers.
from gazeback.devices.access import credentials_path as credentials_path
from gazeback.devices.access import lan_address as lan_address
from gazeback.devices.access import machine_addresses as machine_addresses
from gazeback.devices.access import proxy_credentials as proxy_credentials
from gazeback.devices.access import require_endpoint as require_endpoint

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


def make_datasette(
    db_path: Path,
    settings: dict[str, Any] | None = None,
    token: str | None = None,
    workshop: bool = False,
    **kwargs: Any,
) -> Any:
    """A Datasette serving ``db_path`` exactly as ``gazeback dashboard`` does (tests, bench),
    or as ``gazeback workshop`` does with ``workshop`` (participants' own pages too).

    Every request needs ``token`` (a new one if not given: ``ds.gazeback_token``), as a
    ``?token=`` exchanged for a cookie or as ``Authorization: Bearer``.
    """
    from datasette.app import Datasette

    folder = dashboards_dir()
    meta = dashboard_metadata(db_path.stem)
    token = token or access.new_token()
    meta.setdefault("plugins", {})["gazeback"] = {"token": token, "workshop": workshop}
    ds = Datasette(
        [str(db_path)],
        metadata=meta,
        settings={**datasette_settings(), **(settings or {})},
        template_dir=str(folder / "templates"),
        static_mounts=[(STATIC_MOUNT, str(folder / "static"))],
        **kwargs,
    )
    ds.gazeback_token = token
    return ds


def dashboard_url(
    host: str, port: int, token: str | None, path: str = "/-/dashboards/trail"
) -> str:
    """The address to open: with ``?token=`` (the browser swaps it for a cookie at once)."""
    shown = f"[{host}]" if ":" in host else host
    if host in ("0.0.0.0", "::"):
        shown = "127.0.0.1"
    return f"http://{shown}:{port}{path}" + (f"?{access.TOKEN_PARAM}={token}" if token else "")


def dashboard_env(token: str | None) -> dict[str, str]:
    """The environment the dashboard process gets its token from: never its command line,
    which every account on the computer can read, and never a file."""
    env = {k: v for k, v in os.environ.items() if k != access.TOKEN_ENV}
    if token:
        env[access.TOKEN_ENV] = token
    return env


def token_metadata() -> dict[str, Any]:
    """Datasette metadata that makes every request need the token of ``dashboard_env``."""
    return {"plugins": {"gazeback": {"token": {"$env": access.TOKEN_ENV}}}}


NO_TOKEN_WARNING = (
    "WARNING: --no-token: ANY account on this computer (and any program it runs) can read "
    "your whole trail at this address. Use it only on a computer nobody else uses."
)


def dashboard_command(
    db_path: Path,
    host: str,
    port: int,
    password: str | None = None,
    no_token: bool = False,
    workshop: bool = False,
) -> list[str]:
    """``datasette serve`` for a live trail: mutable (sees WAL rows), gazeback's metadata.

    Run it with ``env=dashboard_env(token)``: every request needs that token (or, beyond
    loopback, the password), unless ``no_token``. Beyond loopback a password is required
    (ValueError without one) and any Host name is answered. A ``workshop`` server may listen
    beyond loopback without one: there only participants' own pages answer (each needs its
    participant's token); everything else answers loopback clients with the token only.
    """
    folder = dashboards_dir()
    meta = dashboard_metadata(db_path.stem)
    config: dict[str, Any] = {"no_token": True} if no_token else {
        "token": {"$env": access.TOKEN_ENV}
    }  # fmt: skip
    if workshop:
        config["workshop"] = True
    elif not is_loopback(host):
        if not password:
            raise ValueError(f"a password is required to serve the dashboard on {host}")
        config |= {"allowed_hosts": ["*"], "password_hash": access.hash_password(password)}
    meta.setdefault("plugins", {})["gazeback"] = config
    meta_path = side_file(db_path, "dashboard")
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


def start_dashboard(
    db_path: Path,
    host: str,
    port: int,
    token: str | None,
    path: str = "/-/dashboards/trail",
    workshop: bool = False,
    **popen: Any,
) -> tuple[subprocess.Popen[bytes], str]:
    """Start the dashboard process; return it and the address to open (with the token)."""
    proc = subprocess.Popen(
        dashboard_command(db_path, host, port, workshop=workshop),
        env=dashboard_env(token),
        **popen,
    )
    return proc, dashboard_url(host, port, token, path)


def write_htpasswd(db_path: Path, creds: dict[str, str]) -> Path:
    """An htpasswd file of the devices' proxy users, bcrypt-hashed (0600).

    gazeback's own check reads it (``gazeback_proxy_users``), and so can mitmproxy's
    ``proxyauth=@file`` (mitmproxy 12 reads bcrypt and ``{SHA}`` only).
    """
    import bcrypt

    path = side_file(db_path, "htpasswd")
    lines = [
        f"{user}:{bcrypt.hashpw(password.encode(), bcrypt.gensalt(BCRYPT_ROUNDS)).decode()}\n"
        for user, password in sorted(creds.items())
    ]
    private_file(path)
    path.write_text("".join(lines))
    return path


BCRYPT_ROUNDS = 10  # ~50 ms a check; a device's connection is checked once, then cached


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


def serve_until_interrupted(command: list[str], env: dict[str, str] | None = None) -> int:
    """Run a server command in the foreground until Ctrl-C; Ctrl-C is the normal way to stop
    it, so it ends with status 0 (not click's "Aborted!")."""
    proc = subprocess.Popen(command, env=env)

    def _terminated(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt  # `kill` (SIGTERM) stops the server as Ctrl-C does

    previous = signal.signal(signal.SIGTERM, _terminated)
    try:
        return proc.wait()
    except KeyboardInterrupt:
        # A terminal sends SIGINT to the whole process group; forward it in case it reached
        # only us (e.g. `kill -INT`), then let the server finish its shutdown.
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
        stop_server(proc)
        return 0
    finally:
        signal.signal(signal.SIGTERM, previous)


def wait_listening(
    port: int, proc: subprocess.Popen[bytes], timeout: float = 30.0, host: str = "127.0.0.1"
) -> bool:
    """Wait until the server ``proc`` started accepts connections on ``host``:``port``
    (127.0.0.1 for a server on every address), so the address printed next is one a person
    can open at once. False if it never did."""
    target = "127.0.0.1" if host in ("0.0.0.0", "") else host
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        with socket.socket(socket.AF_INET6 if ":" in target else socket.AF_INET) as s:
            if s.connect_ex((target, port)) == 0:
                return True
        time.sleep(0.05)
    return False


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
