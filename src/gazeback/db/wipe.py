"""Removing a trail for good: the database, its WAL and journal, and every file gazeback keeps
next to it (key, spill, proxy credentials, WireGuard keys, dashboard metadata).

Each file is first emptied from inside SQLite with ``PRAGMA secure_delete`` (freed pages are
zeroed), then overwritten in place with random bytes and synced, then removed. On
copy-on-write or flash storage an overwrite may not reach every old block: full-disk
encryption is what protects those, and the README says so.
"""

from __future__ import annotations

import json
import os
import sqlite3
from pathlib import Path

from gazeback.db.localfiles import private_file

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


MANIFEST = ".gazeback-workshop.json"


class WorkshopFolder:
    """A workshop's folder and the manifest (``.gazeback-workshop.json``, 0600) of what
    gazeback created in it, so that the wipe at the end removes exactly that and nothing a
    person keeps there.

    ``claim`` refuses a folder that holds files but no manifest: it is someone's folder,
    not a workshop's. A folder with a manifest is a workshop's (one that ended without
    wiping, e.g. a power cut): it is reused, and its manifest still says what to wipe.
    """

    def __init__(self, folder: Path, created_folder: bool, entries: list[str]) -> None:
        self.folder = folder
        self.created_folder = created_folder
        self.entries = entries

    @classmethod
    def claim(cls, folder: Path) -> WorkshopFolder:
        manifest = folder / MANIFEST
        if folder.exists() and not folder.is_dir():
            raise ValueError(f"{folder} is a file, not a folder")
        if manifest.is_file():
            try:
                data = json.loads(manifest.read_text())
                found = cls(folder, bool(data["created_folder"]), [str(e) for e in data["entries"]])
            except (OSError, ValueError, KeyError, TypeError) as e:
                raise ValueError(f"{manifest} is not a gazeback workshop manifest ({e})") from None
        elif folder.exists():
            if any(folder.iterdir()):
                raise ValueError(
                    f"{folder} is not empty and is not a gazeback workshop folder: the workshop "
                    "wipes its folder at the end, so give a new or empty folder with --dir"
                )
            found = cls(folder, False, [])
        else:
            folder.mkdir(mode=0o700, parents=True)
            found = cls(folder, True, [])
        found.save()
        return found

    def save(self) -> None:
        path = self.folder / MANIFEST
        private_file(path)
        data = {"created_folder": self.created_folder, "entries": sorted(set(self.entries))}
        tmp = path.with_name(path.name + ".tmp")
        fd = os.open(tmp, os.O_CREAT | os.O_TRUNC | os.O_WRONLY, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(data, f, indent=1)
        os.replace(tmp, path)

    def add(self, *paths: Path) -> None:
        """Note files or folders gazeback created here (they are wiped at the end)."""
        for path in paths:
            rel = path.relative_to(self.folder)
            if rel.parts and str(rel) not in self.entries:
                self.entries.append(str(rel))
        self.save()

    def wipe(self) -> list[Path]:
        """Shred what the manifest lists, then the manifest; remove the folder if gazeback
        made it and nothing else is left in it. Returns what is left that is not ours."""
        for name in self.entries:
            path = self.folder / name
            if path.is_symlink():
                path.unlink()
            elif path.is_dir():
                _shred_tree(path)
            elif path.is_file():
                shred(path)
        manifest = self.folder / MANIFEST
        if manifest.exists():
            shred(manifest)
        left = sorted(self.folder.iterdir()) if self.folder.is_dir() else []
        if self.created_folder and not left:
            self.folder.rmdir()
        return left


def _shred_tree(folder: Path) -> None:
    for inner in sorted(folder.rglob("*"), reverse=True):
        if inner.is_file() and not inner.is_symlink():
            shred(inner)
        elif inner.is_dir() and not inner.is_symlink():
            inner.rmdir()
        else:
            inner.unlink()
    folder.rmdir()
