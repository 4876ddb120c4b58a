"""`gazeback rollup`: keep older traffic as hourly totals only (#19, the rollup tier)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import click

from gazeback.cli.options import DbCommand, db_option, open_existing_db


class Days(click.ParamType):  # type: ignore[type-arg]
    """A number of days written ``90d`` or ``90`` (``0``: keep all detail)."""

    name = "DAYS"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> int:
        if isinstance(value, int):
            return value
        match = re.fullmatch(r"\s*(\d{1,5})\s*d?\s*", str(value))
        if not match:
            self.fail(
                f"{value!r} is not a number of days, e.g. 90d (0 keeps all detail)", param, ctx
            )
        return int(match.group(1))


DAYS = Days()


def keep_detail_option(f: Any) -> Any:
    return click.option(
        "--keep-detail",
        "keep_detail_days",
        type=DAYS,
        default="90d",
        show_default=True,
        help="Keep each request of live-captured traffic this long; older traffic is kept as "
        "hourly totals per device, company and kind of data, which the dashboards still show "
        "(0: keep all detail). Imported files keep their detail.",
    )(f)


@click.command(cls=DbCommand)
@db_option
@keep_detail_option
@click.option(
    "--include-imports",
    is_flag=True,
    help="Roll up imported captures (HAR, .mitm, pcap …) too; they keep their detail otherwise.",
)
@click.option("--dry-run", is_flag=True, help="Say what would be rolled up; change nothing.")
def rollup(db_path: Path, keep_detail_days: int, include_imports: bool, dry_run: bool) -> None:
    """Keep older traffic as hourly totals: delete each request older than the window
    (from an hour boundary) with its leaks, fingerprints and what it carried, and keep the
    hourly totals of those hours, which the dashboards keep showing.

    `gazeback run` does this at start and every hour (its --keep-detail, 90 days unless
    told otherwise). Traffic from imported files is left in detail unless --include-imports:
    an old capture you import stays whole until you ask. Pages that list single requests say
    from when on they have detail.

    Example:

        gazeback rollup --dry-run

        gazeback rollup --keep-detail 30d
    """
    from gazeback.db import store

    if keep_detail_days <= 0:
        click.echo("--keep-detail 0 keeps all detail: nothing to roll up.")
        return
    db = open_existing_db(db_path)
    try:
        done = store.rollup(db, keep_detail_days, include_imports=include_imports, dry_run=dry_run)
    finally:
        db.close()
    assert done is not None
    before = f"{done.horizon.replace('T', ' ')}:00 UTC"
    verb = "would roll" if dry_run else "rolled"
    click.echo(
        f"{verb} up {done.requests:,} requests from before {before} "
        f"({done.leaks:,} leaks, {done.learned_items:,} learned items) into hourly totals."
    )
    if done.kept_imported:
        click.echo(
            f"{done.kept_imported:,} older requests from imported files keep their detail "
            "(--include-imports rolls them up too)."
        )
    if dry_run:
        click.echo("Nothing was changed (--dry-run).")
