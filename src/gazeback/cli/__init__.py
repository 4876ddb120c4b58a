"""The gazeback command line. Commands parse, open the db, call the core, and echo."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import click

from gazeback.cli.options import db_option, open_existing_db
from gazeback.cli.options import open_db as _open_db
from gazeback.dashboard import serve
from gazeback.db import migrations


@click.group()
@click.version_option(package_name="gazeback")
def cli() -> None:
    """gazeback: see what your own devices tell trackers."""


@cli.command()
@db_option
@click.option("--listen-host", default="127.0.0.1", show_default=True, help="Proxy address.")
@click.option("--listen-port", default=8080, show_default=True, help="Proxy port.")
@click.option("--dashboard-port", default=8001, show_default=True, help="Dashboard port.")
@click.option("--no-dashboard", is_flag=True, help="Run the proxy only.")
@click.option(
    "--keep-days",
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    help="Delete requests older than this many days (0: keep everything).",
)
@click.option(
    "--device",
    "devices",
    multiple=True,
    metavar="LABEL",
    help="Create proxy credentials for this device (repeatable). "
    "Required to listen beyond this computer.",
)
@click.option(
    "--wireguard-host",
    default="0.0.0.0",
    show_default=True,
    help="Address the WireGuard servers of added devices listen on (key-protected).",
)
@click.option(
    "--endpoint",
    metavar="HOST",
    help="Address devices reach this computer at, written into their WireGuard "
    "configuration (default: this computer's LAN address).",
)
@click.argument("mitmproxy_args", nargs=-1, type=click.UNPROCESSED)
def run(
    db_path: Path,
    listen_host: str,
    listen_port: int,
    dashboard_port: int,
    no_dashboard: bool,
    keep_days: int,
    devices: tuple[str, ...],
    wireguard_host: str,
    endpoint: str | None,
    mitmproxy_args: tuple[str, ...],
) -> None:
    """Start the recording proxy and the dashboard; Ctrl-C stops both.

    Point a browser or device at the proxy, open http://mitm.it through it to
    install the certificate, then watch the dashboard. Options after `--` go to
    mitmproxy unchanged.

    Example:

        gazeback run

        gazeback run --listen-host 0.0.0.0 --device phone --device laptop

    Every device added with `gazeback device add` gets its own WireGuard server
    (its own port) and proxy credential.
    """
    record(
        db_path.expanduser(), listen_host, listen_port, None if no_dashboard else dashboard_port,
        list(devices), wireguard_host, endpoint, list(mitmproxy_args), keep_days,
    )  # fmt: skip


def record(
    db_path: Path,
    listen_host: str,
    listen_port: int,
    dashboard_port: int | None,
    devices: list[str],
    wireguard_host: str = "0.0.0.0",
    endpoint: str | None = None,
    mitmproxy_args: list[str] | None = None,
    keep_days: int = 0,
) -> None:
    """What `run` does (`workshop` runs it too): proxy and dashboard until Ctrl-C."""
    db = _open_db(db_path)
    added = serve.device_modes(db, db_path, wireguard_host, endpoint)
    db.close()
    users = list(devices) + [user for user, _ in added]
    lan = not serve.is_loopback(listen_host)
    creds = serve.proxy_credentials(db_path, users) if users else {}
    if lan and not creds:
        raise click.ClickException(
            f"refusing to listen on {listen_host} without proxy credentials: anyone on your "
            "network could use the proxy. Add --device LABEL for each device "
            "(e.g. --device phone), or keep --listen-host 127.0.0.1."
        )
    args = [
        "--listen-host", listen_host, "--listen-port", str(listen_port),
        "-s", str(Path(__file__).parent.parent / "capture" / "mitmproxy_script.py"),
        "--set", f"gazeback_db={db_path}", "--set", "flow_detail=0",
        "--set", "termlog_verbosity=warn",
        "--set", f"gazeback_keep_days={keep_days}",
        # connections to --ignore-hosts become flows gazeback can count (undecrypted)
        "--set", "show_ignored_hosts=true",
    ]  # fmt: skip
    if added:  # one WireGuard server per added device, plus the regular proxy
        args += ["--mode", f"regular@{listen_host}:{listen_port}"]
        args += [arg for _, spec in added for arg in ("--mode", spec)]
    if creds:
        args += ["--set", f"proxyauth=@{serve.write_htpasswd(db_path, creds)}"]
    dashboard = None
    if dashboard_port:
        dashboard = subprocess.Popen(
            serve.dashboard_command(db_path, "127.0.0.1", dashboard_port),
            stdout=subprocess.DEVNULL,
        )
    _banner(db_path, listen_host, listen_port, dashboard_port, creds)
    for user, spec in added:
        click.echo(f"  WireGuard:  device {user!r} on UDP port {spec.rsplit(':', 1)[1]}")
    from mitmproxy.tools.main import mitmdump

    try:
        mitmdump([*args, *(mitmproxy_args or [])])
    finally:
        if dashboard is not None:
            serve.stop_server(dashboard)


def _banner(
    db_path: Path, host: str, port: int, dashboard_port: int | None, creds: dict[str, str]
) -> None:
    shown = serve.lan_address() if host in ("0.0.0.0", "::") else host
    click.echo(f"gazeback is recording to {db_path}")
    click.echo(f"  Proxy:      {shown}:{port}  (set this as the HTTP and HTTPS proxy)")
    for user, password in creds.items():
        click.echo(f"    device {user!r}: proxy user {user}  password {password}")
    click.echo("  Certificate: open http://mitm.it through the proxy and follow the steps")
    if dashboard_port:
        click.echo(f"  Dashboard:  http://127.0.0.1:{dashboard_port}/-/dashboards/trail")
    click.echo("Press Ctrl-C to stop.")


@cli.command()
@click.argument("db_path", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8001, show_default=True, help="Port to listen on.")
def dashboard(db_path: Path, host: str, port: int) -> None:
    """Serve a database with gazeback's dashboards (Datasette).

    It listens on this computer only. To open it from another device (a projector's
    laptop, your phone), listen on the network with a password, which is read from the
    environment variable GAZEBACK_DASHBOARD_PASSWORD (never from the command line, where
    other users could see it); the browser then asks for it (any user name).

    Example:

        gazeback dashboard ~/.local/share/gazeback/trail.db

        GAZEBACK_DASHBOARD_PASSWORD=... gazeback dashboard trail.db --host 0.0.0.0
    """
    password = os.environ.get("GAZEBACK_DASHBOARD_PASSWORD") or None
    if not serve.is_loopback(host) and not password:
        raise click.ClickException(
            f"refusing to serve your trail on {host} without a password: it would be readable "
            "by anyone on the network. Set GAZEBACK_DASHBOARD_PASSWORD, or keep --host "
            "127.0.0.1 (the default)."
        )
    open_existing_db(db_path).close()
    click.echo(f"Dashboard: http://{host}:{port}/-/dashboards/trail")
    sys.exit(serve.serve_until_interrupted(serve.dashboard_command(db_path, host, port, password)))


@cli.command()
@click.argument("db_path", type=click.Path(dir_okay=False, path_type=Path))
def migrate(db_path: Path) -> None:
    """Create a database or bring it to the current schema.

    Example:

        gazeback migrate trail.db
    """
    db = _open_db(db_path)
    click.echo(
        f"{db_path}: schema up to date ({len(migrations.migrations.applied(db))} migrations)"
    )


def _register() -> None:
    from gazeback.cli.demo import demo
    from gazeback.cli.devices import device, devices_, status, wipe
    from gazeback.cli.export import export, merge, verify_export
    from gazeback.cli.identity import identity, rescan
    from gazeback.cli.imports import import_
    from gazeback.cli.trackers import reclassify, trackers
    from gazeback.cli.workshop import workshop

    for command in (
        device, devices_, status, workshop, wipe, import_, demo, export, verify_export, merge,
        trackers, reclassify, identity, rescan,
    ):  # fmt: skip
        cli.add_command(command)


_register()
