"""`gazeback summary`: one page to share — who knows what about me (thin click command)."""

from __future__ import annotations

import os
import secrets
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import click

from gazeback.cli.options import DbCommand, db_option, open_existing_db
from gazeback.db.localfiles import place_private, write_private
from gazeback.timestamps import parse_duration

if TYPE_CHECKING:
    from sqlite_utils import Database

    from gazeback.leaks.needles import Profile

SUFFIXES = (".html", ".pdf", ".png")


def parse_since(text: str) -> float | None:
    """``30d``, ``2w``, ``12h``, ``30m``, ``30`` → days; ``all`` → None (everything recorded).
    The same durations as ``gazeback news --since``."""
    if text.strip().lower() == "all":
        return None
    period = parse_duration(text)
    if not period:
        raise click.BadParameter(
            f"{text!r} is not a period: give days as 30d, weeks as 2w, hours as 12h, or all"
        )
    return period / timedelta(days=1)


@click.command(cls=DbCommand)
@db_option
@click.option("--out", "out", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="File to write: .html (needs nothing), .pdf or .png (need Chromium).")  # fmt: skip
@click.option("--device", metavar="LABEL", help="Only this device.")
@click.option("--app", metavar="APP", help="Only this app (bundle ID, package or name as stored).")
@click.option("--since", "since", default="30d", show_default=True, metavar="PERIOD",
              help="How far back: 30d, 2w, 12h, or all.")  # fmt: skip
@click.option("--include-sites", is_flag=True,
              help="Also name the sites you visited (left out unless you ask).")  # fmt: skip
@click.option("--paper", type=click.Choice(["a4", "letter"]), default="a4", show_default=True)
def summary(
    db_path: Path, out: Path, device: str | None, app: str | None, since: str,
    include_sites: bool, paper: str,
) -> None:  # fmt: skip
    """Write a one-page summary to share: the companies that received data from your
    devices and who owns them, what kinds of data they learned (never the values), their
    countries, identifiers that link you across companies (masked) and what to do next.

    Before anything is written, the page is searched for your registered identities in
    every form the leak detector knows, and for the sites you visited (unless
    --include-sites): a hit stops it, and nothing is written.

    Example:

        gazeback summary --out me.html

        gazeback summary --device phone --since 7d --out phone.pdf
    """
    from gazeback.chromium import NoChromium
    from gazeback.share.summary import collect, scan
    from gazeback.share.summarypage import find_chromium, render_file, render_html

    kind = out.suffix.lower()
    if kind not in SUFFIXES:
        raise click.BadParameter(f"{out.name}: end it in .html, .pdf or .png", param_hint="--out")
    if not out.parent.is_dir():
        raise click.BadParameter(f"the folder {out.parent} does not exist", param_hint="--out")
    days = parse_since(since)
    exe = None  # looked for before the trail is opened: without it, nothing is touched
    if kind != ".html":
        try:
            exe = find_chromium(out)
        except NoChromium as e:
            raise click.ClickException(str(e)) from e
    db = open_existing_db(db_path)
    if device and not db.execute("select 1 from devices where label = ?", [device]).fetchone():
        labels = ", ".join(r[0] for r in db.execute("select label from devices order by label"))
        raise click.BadParameter(
            f"no device is called {device!r} (devices: {labels or 'none yet'})",
            param_hint="--device",
        )
    if app and not db.execute("select 1 from requests where app = ? limit 1", [app]).fetchone():
        known = [r[0] for r in db.execute(
            "select distinct app from requests where app is not null order by 1 limit 20")]  # fmt: skip
        raise click.BadParameter(
            f"no request was sent by an app called {app!r} (apps: {', '.join(known) or 'none yet'})",
            param_hint="--app",
        )
    s = collect(db, device=device, days=days, app=app, include_sites=include_sites)
    html = render_html(s, paper=paper)
    profile = _profile(db, db_path)
    problems = scan(html, profile, () if include_sites else _sites(db))
    if problems:
        raise click.ClickException(
            f"the summary would show {len(problems)} thing(s) it must not (your identifiers or "
            f"sites you did not choose: {'; '.join(problems[:3])}); nothing was written. "
            + _fix_hint(db, db_path, profile, include_sites)
        )
    # 0600 and whole: a full disk leaves neither a cut file nor an emptied earlier one
    part = out.with_name(f".{out.name}.{secrets.token_hex(4)}.part{kind}")
    try:
        if kind == ".html":
            write_private(out, html)
        else:
            mask = os.umask(0o077)
            try:
                render_file(html, part, chromium=exe)
            finally:
                os.umask(mask)
            place_private(part, out)
    except NoChromium as e:
        raise click.ClickException(str(e)) from e
    finally:
        part.unlink(missing_ok=True)
    click.echo(f"{out}: {s.headline}")


def _fix_hint(db: Database, db_path: Path, profile: Profile, include_sites: bool) -> str:
    """What to do about a refused summary: where the identifier is stored, and the command."""
    from gazeback.cli.options import db_hint
    from gazeback.db.identities import apps_with_identities

    if apps := apps_with_identities(db, profile):
        n = db.execute(
            f"select count(*) from requests where app in ({', '.join('?' * len(apps))})",
            list(apps),
        ).fetchone()[0]
        return (
            f"The app name (requests.app) of {n} request(s), recorded before app names were "
            f"checked, holds it: run `gazeback rescan{db_hint(db_path)}` to replace it, then "
            "write the summary again."
        )
    return (
        "Narrow it with --device, --app or --since"
        + ("" if include_sites else ", or add --include-sites if a site name is meant to show")
        + "; `gazeback identity list` shows which identity has that number."
    )


def _profile(db: Database, db_path: Path) -> Profile:
    from gazeback.cli.export import owner_canaries

    return owner_canaries(db, db_path).profile


def _sites(db: Database) -> tuple[str, ...]:
    """The sites a person visited (first-party names): never on the page unless chosen."""
    return tuple(
        r[0]
        for r in db.execute(
            "select distinct registrable_domain from requests where registrable_domain like '%.%'"
            " and (tracker_id is null or tracker_id not in (select id from trackers"
            " where is_tracker = 1))"
        )
    )
