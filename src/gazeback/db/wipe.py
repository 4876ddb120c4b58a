"""Removing a trail for good: the database, its WAL and journal, and every file gazeback keeps
next to it (key, spill, proxy credentials, WireGuard keys, dashboard metadata).

Each file is first emptied from inside SQLite with ``PRAGMA secure_delete`` (freed pages are
zeroed), then overwritten in place with random bytes and synced, then removed. On
copy-on-write or flash storage an overwrite may not reach every old block: full-disk
encryption is what protects those, and the README says so.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
from pathlib import Path

SQLITE_SIDES = ("-wal", "-shm", "-journal")
CHUNK = 1 << 20


def trail_files(db_path: Path) -> list[Path]:
    """The database and every file or folder gazeback keeps beside it (``trail.db.*``)."""
    folder, name = db_path.parent, db_path.name
    if not folder.is_dir():
        return []
    found = [p for p in (db_path, *(folder / (name + s) for s in SQLITE_SIDES)) if p.exists()]
    found += sorted(p for p in folder.iterdir() if p.name.startswith(name + "."))
    return found


def overwrite(path: Path) -> None:
    """Overwrite a file in place with random bytes and sync it (same inode, same size)."""
    size = path.stat().st_size
    with open(path, "r+b", buffering=0) as f:
        done = 0
        while done < size:
            n = min(CHUNK, size - done)
            f.write(os.urandom(n))
            done += n
        os.fsync(f.fileno())


def shred(path: Path) -> None:
    """Overwrite a file in place with random bytes, sync it, then remove it."""
    overwrite(path)
    path.unlink()


def _empty_database(db_path: Path) -> sqlite3.Connection | None:
    # Zero the pages SQLite frees and copy the WAL into the file. The connection stays
    # open: closing the last one would make SQLite unlink the WAL (and its old frames) before
    # gazeback had overwritten it.
    try:
        conn = sqlite3.connect(db_path, isolation_level=None)
        conn.execute("PRAGMA secure_delete = ON")
        conn.execute("PRAGMA foreign_keys = OFF")
        tables = [
            r[0]
            for r in conn.execute(
                "select name from sqlite_master where type = 'table' and name not like 'sqlite_%'"
            )
        ]
        conn.execute("BEGIN")
        for table in tables:
            conn.execute(f'DELETE FROM "{table}"')  # names read from sqlite_master
        conn.execute("COMMIT")
        conn.execute("PRAGMA wal_checkpoint(FULL)")
    except sqlite3.DatabaseError:
        return None  # not a database (or damaged): the overwrite still covers it
    return conn


def wipe(db_path: Path) -> list[Path]:
    """Securely delete ``db_path`` and everything gazeback keeps next to it; return what went."""
    conn = _empty_database(db_path) if db_path.is_file() else None
    found = trail_files(db_path)
    for path in found:
        if path.is_file() and not path.is_symlink():
            overwrite(path)
    if conn is not None:
        try:
            conn.close()
        except sqlite3.Error:
            pass  # the file is noise by now
    for path in found:
        if path.is_dir() and not path.is_symlink():
            for inner in sorted(path.rglob("*"), reverse=True):
                if inner.is_file() and not inner.is_symlink():
                    shred(inner)
                elif inner.is_dir():
                    inner.rmdir()
                else:
                    inner.unlink()
            path.rmdir()
        elif path.exists() or path.is_symlink():
            path.unlink()
    for side in SQLITE_SIDES:  # SQLite may have made them again while closing
        leftover = db_path.with_name(db_path.name + side)
        if leftover.exists():
            shred(leftover)
    return found


def remove_folder(folder: Path) -> None:
    """Shred every file under ``folder`` (a workshop's own folder), then remove it."""
    for inner in sorted(folder.rglob("*"), reverse=True):
        if inner.is_file() and not inner.is_symlink():
            shred(inner)
    shutil.rmtree(folder, ignore_errors=True)
