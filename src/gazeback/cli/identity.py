"""``gazeback identity add|list|remove`` and ``gazeback rescan``: thin click commands."""

from __future__ import annotations

from pathlib import Path

import click
from sqlite_utils import Database

from gazeback.cli.options import DbCommand, db_hint, db_option
from gazeback.db import identities as store_leaks
from gazeback.models import IDENTITY_KINDS


def _open(db_path: Path) -> Database:
    from gazeback.cli.options import open_existing_db

    return open_existing_db(Path(db_path))


@click.group(name="identity")
def identity() -> None:
    """Your own identifiers, to be found in what your devices send."""


@identity.command(name="add", cls=DbCommand)
@db_option
@click.argument("kind", type=click.Choice(IDENTITY_KINDS))
@click.argument("value")
@click.option("--label", help="A name for it, shown in the dashboard instead of the value")
def add(db_path: Path, kind: str, value: str, label: str | None) -> None:
    """Add an identifier to look for. Use - as VALUE to type it without it entering your
    shell history. A location is lat,lon or lat,lon,radius_m (default radius 1000 m).

    Example:

        gazeback identity add email - --label "work email"
    """
    if value == "-":
        value = click.prompt("Value", hide_input=True)
    db = _open(db_path)
    key = store_leaks.load_key(db_path, create=True)
    try:
        new_id = store_leaks.add_identity(db, key, kind, value, label)
    except ValueError as e:
        raise click.ClickException(f"{e}. Nothing was stored.") from e
    click.echo(
        f"Added identity {new_id} ({kind}). Run `gazeback rescan{db_hint(db_path)}` to search "
        "the traffic recorded so far."
    )


@identity.command(name="list", cls=DbCommand)
@db_option
def list_(db_path: Path) -> None:
    """List the identifiers, masked.

    Example:

        gazeback identity list
    """
    rows = store_leaks.list_identities(_open(db_path))
    if rows:
        click.echo("id\tkind\tlabel\tvalue (masked)")
    for row in rows:
        click.echo(f"{row['id']}\t{row['kind']}\t{row['label']}\t{row['masked']}")


@identity.command(name="remove", cls=DbCommand)
@db_option
@click.argument("identity_id", type=int, metavar="ID")
def remove(db_path: Path, identity_id: int) -> None:
    """Forget an identifier, and the leak rows that named it.

    Example:

        gazeback identity remove 3
    """
    if not store_leaks.remove_identity(_open(db_path), identity_id):
        raise click.ClickException(f"No identity {identity_id}: see `gazeback identity list`.")
    click.echo(f"Removed identity {identity_id}.")


@click.command(name="rescan", cls=DbCommand)
@db_option
@click.option("--identity", "identity_ids", type=int, multiple=True, help="Only this identity id")
def rescan(db_path: Path, identity_ids: tuple[int, ...]) -> None:
    """Search traffic recorded earlier for your identifiers (whole values, their hashes and
    encodings; see the README for what a rescan cannot find).

    Example:

        gazeback rescan
    """
    db = _open(db_path)
    try:
        key = store_leaks.load_key(db_path)
    except FileNotFoundError as e:
        raise click.ClickException(f"{e}. Add an identity first.") from e
    added = store_leaks.rescan(db, key, identity_ids or None)
    click.echo(f"{added} new leak rows.")
    # app names recorded before they were checked (#17): never kept in clear
    if apps := store_leaks.scrub_stored_apps(db, store_leaks.load_profile(db_path)):
        click.echo(f"{apps} requests had one of your identifiers in their app name: replaced.")
