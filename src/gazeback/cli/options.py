"""Opening a database for a command: private files, current schema, clear errors.

Kept apart from cli.py so that every command module can import it without importing the
command group (which imports them all).
"""

from __future__ import annotations

import socket
import sqlite3
import stat
from pathlib import Path
from typing import Any

import click
import sqlite_utils

from gazeback.db import migrations
from gazeback.db.localfiles import default_db_path, prepare_db_path

SQLITE_MAGIC = b"SQLite format 3\x00"


def check_db_file(path: Path, folder_must_exist: bool = False) -> None:
    """ClickException, before anything is changed, if ``path`` exists and is not a SQLite
    database (a text file, a folder, a FIFO), or (``folder_must_exist``) if its folder is
    missing."""
    path = Path(path)
    if not path.exists():
        if folder_must_exist and not path.parent.is_dir():
            raise click.ClickException(
                f"cannot create {path}: the folder {path.parent} does not exist "
                "(create it first, or give another path)"
            )
        return
    mode = path.stat().st_mode
    if not stat.S_ISREG(mode):
        raise click.ClickException(f"{path} is not a database file (it is {_kind(mode)})")
    with open(path, "rb") as f:
        head = f.read(len(SQLITE_MAGIC))
    if head and head != SQLITE_MAGIC:
        raise click.ClickException(
            f"{path} is not a SQLite database (it starts with {head[:8]!r}); "
            "nothing was changed. Give the database gazeback records into."
        )


def _kind(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "a folder"
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a regular file"


def open_db(path: Path) -> sqlite_utils.Database:
    """Open (or create) ``path`` with private file modes, WAL and the current schema."""
    check_db_file(path)
    try:
        prepare_db_path(path)
    except OSError as e:
        raise click.ClickException(f"cannot use {path}: {e}") from e
    try:
        db = sqlite_utils.Database(path)
        db.enable_wal()
        migrations.apply(db)
    except sqlite3.DatabaseError as e:  # damaged inside, past a valid header
        raise click.ClickException(f"cannot open {path} as a gazeback database: {e}") from e
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


def check_port(host: str, port: int, option: str) -> None:
    """ClickException if ``host:port`` cannot be listened on (another program has it),
    checked before anything starts, so that nothing runs half-up."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the servers bind
        try:
            s.bind((host, port))
        except OSError as e:
            raise click.ClickException(
                f"cannot listen on {host}:{port} ({e.strerror or e}): another program is "
                f"using it. Stop it, or choose another port with {option} PORT."
            ) from None
