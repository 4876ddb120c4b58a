"""Opening a database for a command: private files, current schema, clear errors.

Kept apart from cli.py so that every command module can import it without importing the
command group (which imports them all).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
import sqlite_utils

from gazeback.db import migrations
from gazeback.db.localfiles import default_db_path, prepare_db_path


def open_db(path: Path) -> sqlite_utils.Database:
    """Open (or create) ``path`` with private file modes, WAL and the current schema."""
    try:
        prepare_db_path(path)
    except OSError as e:
        raise click.ClickException(f"cannot use {path}: {e}") from e
    db = sqlite_utils.Database(path)
    db.enable_wal()
    migrations.apply(db)
    return db


def open_existing_db(path: Path) -> sqlite_utils.Database:
    """Open a database that must already exist (a typo must not create an empty one)."""
    if not Path(path).exists():
        raise click.ClickException(
            f"{path} does not exist. Give the database gazeback records into (by default "
            f"{default_db_path()}), or create one with `gazeback migrate {path}`."
        )
    return open_db(Path(path))


def db_option(f: Any) -> Any:
    """``--db PATH``, defaulting to the database ``gazeback run`` records into."""
    return click.option(
        "--db",
        "db_path",
        type=click.Path(dir_okay=False, path_type=Path),
        default=default_db_path,
        show_default="~/.local/share/gazeback/trail.db",
        help="The database gazeback records into.",
    )(f)
