"""`gazeback device add/list/remove`, `gazeback devices`, `gazeback status`, `gazeback wipe`."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from gazeback.cli.options import DbCommand, db_option, open_existing_db
from gazeback.cli.options import open_db as _open_db
from gazeback.dashboard import serve
from gazeback.db import wipe as wiping
from gazeback.devices import decryption, wireguard
from gazeback.devices import registry as devices


@click.group()
def device() -> None:
    """Add, list and remove the devices you bring (a phone, a laptop, a TV...).

    Example:

        gazeback device add phone --kind phone
    """


@device.command(name="add")
@click.argument("label")
@click.option("--kind", type=click.Choice(devices.KINDS), default="phone", show_default=True)
@db_option
@click.option("--port", type=int, help="UDP port for its WireGuard server (default: next free).")
@click.option(
    "--endpoint",
    metavar="HOST",
    help="Address the device reaches this computer at (default: this computer's LAN address).",
)
@click.option("--no-qr", is_flag=True, help="Print the configuration as text only.")
def add(
    label: str, kind: str, db_path: Path, port: int | None, endpoint: str | None, no_qr: bool
) -> None:
    """Add a device: its own WireGuard configuration (as a QR code) and proxy credential.

    Install the WireGuard app on the device, tap "+" and scan the QR code. Then start
    `gazeback run`, open http://mitm.it on the device and install the certificate.
    The dashboard page "Connect a device" shows the same QR code and the steps.

    Example:

        gazeback device add phone --kind phone

        gazeback device add living-room-tv --kind tv --endpoint 192.168.1.20
    """
    db_path = db_path.expanduser()
    try:
        host = serve.require_endpoint(endpoint)
    except ValueError as e:
        raise click.ClickException(f"{e} Nothing was added.") from None
    db = _open_db(db_path)
    try:
        setup = devices.add(db, db_path, label, kind, port=port, endpoint_host=host)
    except ValueError as e:
        raise click.ClickException(f"{e}. See `gazeback device list`.") from e
    conf = devices.client_config(setup, host)
    password = serve.proxy_credentials(db_path, [setup.proxy_user])[setup.proxy_user]
    click.echo(f"Added {label!r} ({kind}): WireGuard on UDP port {setup.wireguard_port}.\n")
    if not no_qr:
        click.echo("Scan this with the WireGuard app (tap +, then 'Scan from QR code'):")
        wireguard.qr_terminal(conf, sys.stdout)
    click.echo(conf + "\n")
    click.echo(
        f"Or, without WireGuard, set the device's Wi-Fi proxy to {host}:8080 with user "
        f"{setup.proxy_user!r} and password {password!r} (start `gazeback run --listen-host "
        "0.0.0.0`).\nThen run `gazeback run`, open http://mitm.it on the device and install "
        "the certificate. `gazeback status` tells you whether it works."
    )


@device.command(name="list", cls=DbCommand)
@db_option
def list_(db_path: Path) -> None:
    """List every device in your trail: the ones you added (with their WireGuard port and
    proxy user) and the ones gazeback saw, with their requests and the operating systems
    and apps seen in their user agents.

    Example:

        gazeback device list
    """
    db = open_existing_db(db_path)
    _print_devices(db)


@device.command(name="relabel", cls=DbCommand)
@click.argument("old")
@click.argument("new")
@db_option
@click.option("--kind", type=click.Choice(devices.KINDS), help="Also set its kind.")
def relabel(old: str, new: str, db_path: Path, kind: str | None) -> None:
    """Give the device labelled OLD the label NEW (and a kind): say, one gazeback could only
    name after its address.

    Example:

        gazeback device relabel "device at 192.168.1.23" kitchen-speaker --kind speaker
    """
    db = open_existing_db(db_path)
    try:
        devices.relabel(db, old, new, kind)
    except (LookupError, ValueError) as e:
        raise click.ClickException(str(e)) from e
    click.echo(f"Relabelled {old!r} as {new!r}.")


def _print_devices(db: Any) -> None:
    found = devices.describe(db)
    if not found:
        click.echo(
            "No device yet. Add a phone with `gazeback device add phone`, or start "
            "`gazeback run` and point a browser at the proxy."
        )
    for d in found:
        how = f"WireGuard UDP {d['wireguard_port']}" if d["wireguard_port"] else ""
        if d.get("proxy_user"):
            how += f"  proxy user {d['proxy_user']}"
        click.echo(f"{d['label']}  ({d['kind'] or 'other'})  {d['requests']} requests  {how}")
        click.echo(f"    systems: {', '.join(d['os_families']) or '(no user agent seen)'}")
        click.echo(f"    apps:    {', '.join(d['app_families'][:8]) or '-'}")


@device.command(name="remove")
@click.argument("label")
@db_option
def remove(label: str, db_path: Path) -> None:
    """Remove a device's WireGuard keys and proxy credential; its recorded trail stays.

    Delete the tunnel in the device's WireGuard app too.

    Example:

        gazeback device remove phone
    """
    db_path = db_path.expanduser()
    db = open_existing_db(db_path)
    try:
        setup = devices.remove(db, db_path, label)
    except LookupError as e:
        raise click.ClickException(f"{e}. See `gazeback device list`.") from e
    click.echo(f"Removed {setup.label!r}: it can no longer connect. Its trail is kept.")


@click.command(name="devices", cls=DbCommand, hidden=True)
@db_option
@click.option(
    "--relabel", nargs=2, metavar="OLD NEW", help="Give the device labelled OLD the label NEW."
)
@click.option("--kind", type=click.Choice(devices.KINDS), help="With --relabel: set its kind.")
def devices_(db_path: Path, relabel: tuple[str, str] | None, kind: str | None) -> None:
    """Deprecated: `gazeback device list` and `gazeback device relabel` (for one release).

    Example:

        gazeback device list
    """
    click.echo(
        "gazeback: `gazeback devices` is now `gazeback device list` (and `--relabel` is "
        "`gazeback device relabel OLD NEW`); this name goes in the next release.",
        err=True,
    )
    db = open_existing_db(db_path)
    if relabel:
        try:
            devices.relabel(db, relabel[0], relabel[1], kind)
        except (LookupError, ValueError) as e:
            raise click.ClickException(str(e)) from e
        click.echo(f"Relabelled {relabel[0]!r} as {relabel[1]!r}.")
    _print_devices(db)


@click.command(cls=DbCommand)
@db_option
@click.option("--minutes", default=10.0, show_default=True, help="Look at this recent window.")
def status(db_path: Path, minutes: float) -> None:
    """Is decryption working? Per device: the share of its connections gazeback could look
    inside over the last minutes, and the hosts (apps) that refuse the certificate.

    Example:

        gazeback status --minutes 5
    """
    db = open_existing_db(db_path)
    rows = decryption.check(db, minutes)
    if not rows:
        click.echo(f"No traffic in the last {minutes:g} minutes, and no device added.")
    for d in rows:
        n = f"{d.connections} connection" + ("" if d.connections == 1 else "s")
        seen = f"looked inside {100 * d.share:.0f} % of {n}" if d.connections else "no connection"
        click.echo(f"{d.device}: {seen}: {d.verdict}")
        if d.failed:
            click.echo(
                f"    and {d.failed} that never reached their server "
                "(not counted: nothing to look inside)"
            )
        for host in d.refusing[:15]:
            click.echo(f"    refused gazeback's certificate: {host}")


@click.command(cls=DbCommand)
@db_option
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
def wipe(db_path: Path, yes: bool) -> None:
    """Delete a trail for good: the database, its WAL and journal, and the key, spill,
    credential, WireGuard and dashboard files next to it (overwritten, then removed).

    Example:

        gazeback wipe --yes

        gazeback wipe --db /tmp/workshop.db --yes
    """
    files = wiping.trail_files(db_path)
    if not files:
        raise click.ClickException(f"nothing to wipe: {db_path} and its files do not exist")
    if not yes:
        click.confirm(f"Delete {len(files)} files for good ({db_path} and beside it)?", abort=True)
    for path in wiping.wipe(db_path):
        click.echo(f"wiped {path}")
