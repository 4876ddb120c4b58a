"""``gazeback experiment``: before/after experiments (#16) — start, stop, list, compare."""

from __future__ import annotations

from pathlib import Path

import click

from gazeback.cli.options import DbCommand, db_option, open_existing_db
from gazeback.db import experiments as ex

KINDS = (
    ("company", "Tracking companies"),
    ("id", "Companies that received an ID that can follow you"),
    ("identifier", "Your registered identifiers"),
    ("data", "Kinds of data, per company"),
    ("host", "Hosts"),
)
MAX_LISTED = 15


@click.group()
def experiment() -> None:
    """Before/after experiments: did "Reject all" (or an update, a setting) change anything?

    Mark time windows (or imported captures) as conditions of a named experiment, then
    compare them: what only one condition reached, what both did, and how much repeat
    runs of one condition differ.

    Example:

        gazeback experiment start cookie-banner --condition "reject all"

        gazeback experiment stop

        gazeback experiment compare cookie-banner
    """


def _device_id(db, label: str | None) -> int | None:  # type: ignore[no-untyped-def]
    if label is None:
        return None
    row = list(db.query("select id from devices where label = ?", [label]))
    if not row:
        known = [r["label"] for r in db.query("select label from devices order by label")]
        raise click.ClickException(
            f"no device is called {label!r}"
            + (f" (there are: {', '.join(known)})" if known else " (none has been seen yet)")
        )
    return int(row[0]["id"])


@experiment.command(cls=DbCommand)
@db_option
@click.argument("name")
@click.option("--condition", required=True, metavar="LABEL", help='e.g. "reject all".')
@click.option("--device", metavar="LABEL", help="Only this device's requests count.")
def start(db_path: Path, name: str, condition: str, device: str | None) -> None:
    """Start a run of one condition of experiment NAME (created if new).

    Everything your devices send until `gazeback experiment stop` belongs to this run.
    Starting the same condition again makes a repeat run (kept apart, so you can see
    the noise between runs).

    Example:

        gazeback experiment start cookie-banner --condition "reject all" --device laptop
    """
    db = open_existing_db(db_path)
    try:
        run = ex.start(db, name, condition, _device_id(db, device))
    except ex.ExperimentError as e:
        raise click.ClickException(str(e)) from None
    click.echo(
        f"experiment {name!r}: condition {condition!r}, run {run['run']} started at "
        f"{run['started_at']}. Do what you want to test, then `gazeback experiment stop`."
    )


@experiment.command(cls=DbCommand)
@db_option
def stop(db_path: Path) -> None:
    """Stop the run going on.

    Example:

        gazeback experiment stop
    """
    db = open_existing_db(db_path)
    try:
        run = ex.stop(db)
    except ex.ExperimentError as e:
        raise click.ClickException(str(e)) from None
    total = next(db.query("select * from experiment_run_totals where run_id = ?", [run["id"]]))
    click.echo(
        f"stopped: condition {run['condition']!r}, run {run['run']}: "
        f"{_count(total['requests'], 'request', 'requests')}, "
        f"{_count(total['companies'], 'tracking company', 'tracking companies')}."
    )


@experiment.command(name="list", cls=DbCommand)
@db_option
def list_(db_path: Path) -> None:
    """List experiments, their conditions and runs.

    Example:

        gazeback experiment list
    """
    db = open_existing_db(db_path)
    rows = ex.list_experiments(db)
    if not rows:
        click.echo("No experiments yet: `gazeback experiment start NAME --condition LABEL`.")
    for r in rows:
        state = "  (running)" if r["running"] else ""
        click.echo(
            f"{r['name']}: {_count(r['runs'], 'run', 'runs')} of {r['conditions'] or 'no conditions'}{state}"
        )


@experiment.command(cls=DbCommand)
@db_option
@click.argument("name")
@click.option("-a", "cond_a", metavar="LABEL", help="First condition (default: the first).")
@click.option("-b", "cond_b", metavar="LABEL", help="Second condition (default: the second).")
def compare(db_path: Path, name: str, cond_a: str | None, cond_b: str | None) -> None:
    """Compare two conditions of experiment NAME: only in A, only in B, in both.

    Items that some repeat runs of a condition reached and others did not are marked
    with ~ (noise, not a difference you caused). The dashboard shows the same:
    /-/dashboards/experiment?experiment=NAME.

    Example:

        gazeback experiment compare cookie-banner -a "accept all" -b "reject all"
    """
    db = open_existing_db(db_path)
    try:
        c = ex.compare(db, name, cond_a, cond_b)
    except ex.ExperimentError as e:
        raise click.ClickException(str(e)) from None
    click.echo(c.headline())
    click.echo("")
    for side in (c.a, c.b):
        counts = ", ".join(str(r["tracker_requests"]) for r in side.runs)
        click.echo(
            f"{side.condition!r}: {_count(len(side.runs), 'run', 'runs')}; requests to trackers per run: {counts}"
        )
    for kind, title in KINDS:
        unsteady = c.unsteady(kind)
        parts = (
            (f"only in {c.a.condition!r}", c.only_a(kind)),
            (f"only in {c.b.condition!r}", c.only_b(kind)),
            ("in both", c.both(kind)),
        )
        if not any(items for _, items in parts):
            continue
        click.echo(f"\n{title}:")
        for label, items in parts:
            shown = [f"{'~' if i in unsteady else ''}{i}" for i in sorted(items)[:MAX_LISTED]]
            more = f" … and {len(items) - MAX_LISTED} more" if len(items) > MAX_LISTED else ""
            click.echo(f"  {label} ({len(items)}): {', '.join(shown) or '-'}{more}")
    if any(c.unsteady(k) for k, _ in KINDS):
        click.echo("\n~ reached in some runs of a condition only: noise between runs.")


def _count(n: int, one: str, many: str) -> str:
    return f"{n:,} {one if n == 1 else many}"
