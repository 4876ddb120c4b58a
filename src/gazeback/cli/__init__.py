"""The gazeback command line. Commands parse, open the db, call the core, and echo."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from gazeback.cli.options import (
    DbCommand,
    GazebackGroup,
    check_port,
    db_option,
    open_existing_db,
)
from gazeback.cli.options import open_db as _open_db
from gazeback.cli.recording import record
from gazeback.cli.rollup import keep_detail_option
from gazeback.dashboard import access, serve
from gazeback.db import migrations


@click.group(cls=GazebackGroup)
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
    help="Delete everything older than this many days, hourly totals too (0: keep "
    "everything). To keep older traffic as totals instead, see --keep-detail.",
)
@keep_detail_option
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
@click.option(
    "--notify-command",
    metavar="COMMAND",
    help="Run this command when something new appears (see `gazeback news`); {text} is "
    "replaced by the message, e.g. 'notify-send gazeback \"{text}\"'. Run without a shell; "
    "a burst of news is one message.",
)
@click.argument("mitmproxy_args", nargs=-1, type=click.UNPROCESSED)
def run(
    db_path: Path,
    listen_host: str,
    listen_port: int,
    dashboard_port: int,
    no_dashboard: bool,
    keep_days: int,
    keep_detail_days: int,
    devices: tuple[str, ...],
    wireguard_host: str,
    endpoint: str | None,
    notify_command: str | None,
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

    Each request of live-captured traffic is kept for --keep-detail (90 days); older
    traffic is kept as hourly totals the dashboards still show (see `gazeback rollup`).
    Files you import keep their detail. --keep-days deletes everything older, totals too.
    """
    record(
        db_path.expanduser(), listen_host, listen_port, None if no_dashboard else dashboard_port,
        list(devices), wireguard_host, endpoint, list(mitmproxy_args), keep_days,
        keep_detail_days, notify_command=notify_command,
    )  # fmt: skip


@cli.command(cls=DbCommand)
@db_option
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8001, show_default=True, help="Port to listen on.")
@click.option(
    "--no-token",
    is_flag=True,
    help="Let in every request without the key in the address. Any account on this "
    "computer can then read your trail: only for a computer nobody else uses.",
)
def dashboard(db_path: Path, host: str, port: int, no_token: bool) -> None:
    """Serve a database with gazeback's dashboards (Datasette).

    It listens on this computer only and prints the address to open: it ends in a key
    (?token=...) made for this start, so other accounts on this computer cannot read your
    trail. Your browser keeps the key in a cookie until it closes; to open the dashboard
    again after that, use the printed address.

    To open it from another device (a projector's laptop, your phone), listen on the
    network with a password, which is read from the environment variable
    GAZEBACK_DASHBOARD_PASSWORD (never from the command line, where other users could see
    it); the browser then asks for it (any user name).

    Example:

        gazeback dashboard

        gazeback dashboard --db /tmp/workshop.db

        GAZEBACK_DASHBOARD_PASSWORD=... gazeback dashboard --host 0.0.0.0
    """
    password = os.environ.get("GAZEBACK_DASHBOARD_PASSWORD") or None
    if not serve.is_loopback(host) and not password:
        raise click.ClickException(
            f"refusing to serve your trail on {host} without a password: it would be readable "
            "by anyone on the network. Set GAZEBACK_DASHBOARD_PASSWORD, or keep --host "
            "127.0.0.1 (the default)."
        )
    open_existing_db(db_path).close()
    check_port(host, port, "--port")
    token = None if no_token else access.new_token()
    if no_token:
        click.secho(serve.NO_TOKEN_WARNING, fg="red", bold=True, err=True)
    click.echo(f"Dashboard: {serve.dashboard_url(host, port, token)}")
    if token:
        click.echo("  (open this address: its key lets only you in)")
    command = serve.dashboard_command(db_path, host, port, password, no_token=no_token)
    sys.exit(serve.serve_until_interrupted(command, env=serve.dashboard_env(token)))


@cli.command(cls=DbCommand)
@db_option
def migrate(db_path: Path) -> None:
    """Create a database or bring it to the current schema.

    Example:

        gazeback migrate

        gazeback migrate --db /tmp/new-trail.db
    """
    db = _open_db(db_path)
    click.echo(
        f"{db_path}: schema up to date ({len(migrations.migrations.applied(db))} migrations)"
    )


def _register() -> None:
    from gazeback.cli.adapters import adapters
    from gazeback.cli.consent import consent_check
    from gazeback.cli.demo import demo
    from gazeback.cli.devices import device, devices_, status, wipe
    from gazeback.cli.experiments import experiment
    from gazeback.cli.export import export, merge, verify_export
    from gazeback.cli.identity import identity, rescan
    from gazeback.cli.imports import import_
    from gazeback.cli.news import alerts_, news
    from gazeback.cli.request import request
    from gazeback.cli.rollup import rollup
    from gazeback.cli.summary import summary
    from gazeback.cli.trackers import reclassify, trackers
    from gazeback.cli.workshop import workshop

    for command in (
        device, devices_, status, workshop, wipe, import_, demo, export, verify_export, merge,
        trackers, reclassify, adapters, identity, rescan, request, experiment, news, alerts_,
        consent_check, summary, rollup,
    ):  # fmt: skip
        cli.add_command(command)


_register()
