"""``gazeback demo``: fill a database with a synthetic trail and show it."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import click

from gazeback.dashboard import access, serve


@click.command()
@click.option(
    "--db",
    "db_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=Path("gazeback-demo.db"),
    show_default=True,
    help="Database to create or add to (never your real trail unless you say so).",
)
@click.option(
    "--days",
    default=7,
    show_default=True,
    type=click.IntRange(1, 366),
    help="Days of traffic, ending now.",
)
@click.option("--seed", default=1, show_default=True, help="Same seed, same trail.")
@click.option(
    "--scale", default=20_000, show_default=True, type=click.IntRange(1), help="Number of requests."
)
@click.option("--no-serve", is_flag=True, help="Only write the database.")
@click.option("--port", default=8001, show_default=True, help="Dashboard port (127.0.0.1 only).")
def demo(db_path: Path, days: int, seed: int, scale: int, no_serve: bool, port: int) -> None:
    """Make a realistic made-up trail and open it in the dashboard.

    A made-up person, Alex, has a phone, a laptop and a smart TV. Their apps and web sites
    call real tracking companies; some send Alex's email address, phone number or device
    IDs (plain, hashed or encoded); some connections could not be looked into. The
    requests go through the same steps as a live capture. Good for workshops, tests and
    benchmarks; nothing leaves this computer.

    Example:

        gazeback demo

        gazeback demo --db /tmp/workshop.db --days 3 --seed 7 --no-serve

        gazeback demo --db /tmp/big.db --scale 1000000 --no-serve
    """
    from gazeback.cli.options import check_db_file, check_port
    from gazeback.dashboard.demo import generate

    db_path = db_path.expanduser()
    check_db_file(db_path, folder_must_exist=True)
    if not no_serve:
        check_port("127.0.0.1", port, "--port")
    started = time.monotonic()

    def progress(n: int) -> None:
        click.echo(f"  {n:,} of {scale:,} requests", err=True)

    click.echo(f"Writing {scale:,} made-up requests over {days} days to {db_path} ...")
    try:
        counts = generate(db_path, days=days, seed=seed, scale=scale, progress=progress)
    except KeyboardInterrupt:  # Ctrl-C is a normal way to stop, not an error ("Aborted!")
        click.echo(f"Stopped. {db_path} holds only part of the demo: run `gazeback demo` again.")
        sys.exit(0)
    click.echo(
        f"Done in {time.monotonic() - started:.0f} s: {counts['requests']:,} requests, "
        f"{counts['leaks']:,} pieces of personal data found, {counts['devices']} devices."
    )
    if no_serve:
        click.echo(f"See it with: gazeback dashboard --db {db_path}")
        return
    token = access.new_token()
    click.echo(f"Dashboard: {serve.dashboard_url('127.0.0.1', port, token)}")
    click.echo("  (open this address: its key lets only you in; Ctrl-C to stop)")
    command = serve.dashboard_command(db_path, "127.0.0.1", port)
    sys.exit(serve.serve_until_interrupted(command, env=serve.dashboard_env(token)))
