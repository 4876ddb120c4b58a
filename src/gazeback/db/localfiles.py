"""Where gazeback keeps its files, and keeping them private (0600 files in a 0700 folder)."""

from __future__ import annotations

import logging
import os
import secrets
import shutil
from pathlib import Path

KEY_BYTES = 32
logger = logging.getLogger("gazeback")


def default_db_path() -> Path:
    """``$XDG_DATA_HOME/gazeback/trail.db`` (``~/.local/share/gazeback/trail.db``)."""
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local/share")
    return Path(base) / "gazeback" / "trail.db"


# Every file gazeback keeps beside a database ``trail.db``, in one place: what it holds.
# All are private (0600 files, 0700 folders), fixed at start, and removed by `gazeback wipe`.
SIDE_FILES = {
    "key": (".key", "the local key: fingerprints and the identities' encryption"),
    "spill": (".spill.jsonl", "records waiting to be written (disk full, database locked)"),
    "onboarding": (".onboarding.json", "each added device's WireGuard QR code (its private key)"),
    "wireguard": (".wireguard", "folder of each added device's WireGuard keys"),
    "proxy_users": (".proxy-users.json", "device proxy passwords"),
    "htpasswd": (".htpasswd", "device proxy passwords, bcrypt-hashed, for the proxy"),
    "dashboard": (".dashboard.json", "the dashboard's Datasette configuration"),
    "seat_cards": (".seats.html", "a workshop's printable seat cards (they hold keys)"),
    "export_link_key": (".export-link.key", "the key that links your exports (--link-key)"),
}


def side_file(db_path: Path, kind: str) -> Path:
    """The file of ``kind`` (a key of SIDE_FILES) beside ``db_path``."""
    return db_path.with_name(db_path.name + SIDE_FILES[kind][0])


def key_path(db_path: Path) -> Path:
    return side_file(db_path, "key")


def spill_path(db_path: Path) -> Path:
    return side_file(db_path, "spill")


def onboarding_path(db_path: Path) -> Path:
    """``trail.db.onboarding.json``: each added device's WireGuard QR code (it holds the
    device's private key), kept out of the database the dashboard can query (0600)."""
    return side_file(db_path, "onboarding")


def private_file(path: Path) -> None:
    """Create ``path`` if missing, owner-only; tighten it if it was looser."""
    fd = os.open(path, os.O_CREAT | os.O_WRONLY | os.O_APPEND, 0o600)
    os.close(fd)
    if path.stat().st_mode & 0o077:
        os.chmod(path, 0o600)


def make_private(path: Path) -> None:
    """Owner-only modes for a file, or a folder and everything in it (0600 / 0700)."""
    for each in (path, *(path.rglob("*") if path.is_dir() and not path.is_symlink() else ())):
        if not each.is_symlink():
            os.chmod(each, 0o700 if each.is_dir() else 0o600)


def prepare_db_path(db_path: Path, min_free_bytes: int = 16 * 1024 * 1024) -> None:
    """Make the folder (0700) and the database file (0600), or raise OSError saying why.

    Called before the proxy starts, so an unwritable path or a full disk is a clear error
    at start rather than lost records later.
    """
    folder = db_path.parent
    for parent in (folder, *folder.parents):
        if parent.exists() and not parent.is_dir():
            raise OSError(f"{parent} is a file, not a folder")
    new_folder = not folder.exists()
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    if new_folder or (folder == default_db_path().parent and folder.stat().st_mode & 0o077):
        os.chmod(folder, 0o700)  # our own folder: fix it
    elif folder.stat().st_mode & 0o077:
        # someone else's folder (a project directory, the home folder): say so, don't change it
        logger.warning(
            "gazeback: %s can be listed by other users; the database files in it are "
            "private (0600), but consider a private folder",
            folder,
        )
    if not os.access(folder, os.W_OK):
        raise OSError(f"{folder} is not writable")
    if db_path.exists() and not os.access(db_path, os.W_OK):
        raise OSError(f"{db_path} is not writable")
    free = shutil.disk_usage(folder).free
    if free < min_free_bytes:
        raise OSError(f"only {free // 1024} KiB free on the disk holding {folder}")
    if db_path.exists() and db_path.stat().st_mode & 0o077:
        logger.warning("gazeback: %s was readable by other users; made private (0600)", db_path)
    private_file(db_path)
    make_side_files_private(db_path)


def make_side_files_private(db_path: Path) -> None:
    """Owner-only modes for every file and folder gazeback keeps beside ``db_path``
    (``-wal``, ``-shm``, ``.key``, ``.spill.jsonl``, proxy credentials, WireGuard keys, ...),
    whatever left them looser (a copy, a restore from backup, an old version)."""
    folder, name = db_path.parent, db_path.name
    for side in folder.iterdir():
        if not (side.name.startswith(name + ".") or side.name.startswith(name + "-")):
            continue
        for path in (side, *(side.rglob("*") if side.is_dir() and not side.is_symlink() else ())):
            if path.is_symlink():
                continue
            mode = path.stat().st_mode
            if mode & 0o077:
                os.chmod(path, 0o700 if path.is_dir() else 0o600)
                logger.warning("gazeback: %s was readable by other users; made private", path)


def load_or_create_key(db_path: Path) -> bytes:
    """The local HMAC key used for fingerprints of secrets (kept next to the db, 0600)."""
    path = key_path(db_path)
    if path.exists():
        if path.stat().st_mode & 0o077:
            os.chmod(path, 0o600)
        key = path.read_bytes()
        if len(key) != KEY_BYTES:
            raise OSError(f"{path} is not a gazeback key file ({len(key)} bytes, expected 32)")
        return key
    key = secrets.token_bytes(KEY_BYTES)
    fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(key)
    return key


def write_private(path: Path, data: str | bytes) -> None:
    """Write a file the person asked for (a letter, a summary, a handout) owner-only (0600)
    and whole: a temporary file in the same folder, synced, then renamed over ``path``.

    On any error (a full disk) the temporary file is removed and an earlier ``path`` is left
    as it was; the OSError is raised.
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.part")
    fd = os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data.encode("utf-8") if isinstance(data, str) else data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def place_private(made: Path, path: Path) -> None:
    """Move a finished file another program wrote (Chromium's PDF) over ``path``, 0600."""
    os.chmod(made, 0o600)
    os.replace(made, path)
