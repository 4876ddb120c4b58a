"""`gazeback workshop`: a room of participants, a big screen, and nothing left behind."""

from __future__ import annotations

import os
import signal
import threading
from datetime import UTC, datetime
from pathlib import Path

import click

from gazeback.cli.options import check_port
from gazeback.cli.options import open_db as _open_db
from gazeback.cli.recording import record
from gazeback.dashboard import access, serve
from gazeback.db.localfiles import default_db_path, side_file, write_private
from gazeback.db.wipe import WorkshopFolder, trail_files, wipe
from gazeback.devices import workshop as ws
from gazeback.devices.access import credentials_path


@click.command()
@click.option("--hours", default=3.0, show_default=True, help="Wipe everything after this long.")
@click.option("--seats", default=12, show_default=True, help="How many participants can join.")
@click.option(
    "--dir",
    "folder",
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder for the workshop's files (default: a new one under gazeback's data folder): "
    "a new or empty one. What gazeback creates in it is wiped at the end.",
)
@click.option(
    "--endpoint",
    metavar="HOST",
    help="Address phones reach this computer at (default: this computer's LAN address).",
)
@click.option(
    "--page-host", default="0.0.0.0", show_default=True,
    help="Participants' pages (the big screen answers on this computer only).",
)  # fmt: skip
@click.option("--page-port", default=8002, show_default=True, help="Pages and big screen.")
@click.option("--dashboard-port", type=int, hidden=True, help="Not used: see --page-port.")
@click.option("--proxy-port", default=8080, show_default=True, help="Loopback proxy port.")
@click.option("--wireguard-host", default="0.0.0.0", show_default=True, help="Seats' WireGuard.")
@click.argument("mitmproxy_args", nargs=-1, type=click.UNPROCESSED)
def workshop(
    hours: float,
    seats: int,
    folder: Path | None,
    endpoint: str | None,
    page_host: str,
    page_port: int,
    dashboard_port: int | None,
    proxy_port: int,
    wireguard_host: str,
    mitmproxy_args: tuple[str, ...],
) -> None:
    """Run a workshop: participants join with their phones by scanning a seat card's QR code,
    the big screen shows the room's totals (companies, personal data, countries) without
    anyone's details unless they opt in, each participant opens their own page and
    printable handout, and after --hours (or Ctrl-C) everything is wiped.

    Print the seat cards (the file named at start) and give one to each participant: a card
    holds that seat's keys. Project the big screen from this computer's browser. Options
    after `--` go to mitmproxy unchanged.

    Example:

        gazeback workshop --hours 2 --seats 15
    """
    try:
        host = serve.require_endpoint(endpoint)
    except ValueError as e:
        raise click.ClickException(str(e)) from None
    check_port(page_host, page_port, "--page-port")
    if dashboard_port is not None:
        click.echo("--dashboard-port is no longer used: one server on --page-port serves the "
                   "big screen and the participants' pages.", err=True)  # fmt: skip
    check_port("127.0.0.1", proxy_port, "--proxy-port")
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    folder = (folder or default_db_path().parent / f"workshop-{stamp}").expanduser()
    try:
        room = WorkshopFolder.claim(folder)
    except (ValueError, OSError) as e:
        raise click.ClickException(str(e)) from None
    db_path = folder / "trail.db"
    try:
        room.add(db_path)  # noted before it exists: an interrupted start is wiped too
        db = _open_db(db_path)
        ws.add_seats(db, db_path, seats, host)
        cards = side_file(db_path, "seat_cards")
        write_private(cards, ws.seat_cards(db, db_path, host, f"http://{host}:{page_port}"))
        db.close()
        room.add(*trail_files(db_path), folder / "mitmproxy")
        over = threading.Event()

        def end() -> None:
            over.set()
            os.kill(os.getpid(), signal.SIGINT)

        # the hours count from when the room can join, however long starting took
        timer = threading.Timer(hours * 3600, end)
        timer.daemon = True
        click.echo(f"Workshop for {seats} participants until wiped in {hours:g} h (or Ctrl-C).")
        click.echo(f"  Seat cards to print: {cards}")
        token = access.new_token()
        big_screen = serve.dashboard_url("127.0.0.1", page_port, token, "/-/dashboards/workshop")
        click.echo(f"  Big screen:  {big_screen}")
        click.echo(
            f"  Participants' own pages: http://{host}:{page_port}{ws.PAGE_PATH}<on their card>"
        )
        try:
            record(
                db_path, "127.0.0.1", proxy_port, page_port, [], wireguard_host, host,
                ["--set", f"confdir={folder / 'mitmproxy'}", *mitmproxy_args],
                dashboard_token=token,
                dashboard_path="/-/dashboards/workshop",
                passwords_at=credentials_path(db_path),
                dashboard_host=page_host,
                workshop=True,
                ready=timer.start,
            )  # fmt: skip
        except KeyboardInterrupt:
            pass  # Ctrl-C (or the timer) while starting: a normal end, wiped below
        finally:
            timer.cancel()
    finally:
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not stop the wipe
        room.add(*trail_files(db_path))  # files gazeback made next to the db while running
        wipe(db_path)
        left = room.wipe()
        if left:
            click.echo(
                f"Wiped the workshop: everything gazeback created in {folder} is gone; "
                f"{len(left)} file(s) it did not create were left as they were."
            )
        elif room.created_folder:
            click.echo(f"Wiped the workshop: {folder} and everything in it are gone.")
        else:
            click.echo(f"Wiped the workshop: everything gazeback created in {folder} is gone.")
