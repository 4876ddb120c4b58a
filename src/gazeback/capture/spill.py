"""Where records go when the database cannot take them, and how they come back.

A spill file is JSONL (one stored item a line, 0600). The first choice is next to the
database (``trail.db.spill.jsonl``). When that disk is full too, a private folder on another
disk takes it: ``$GAZEBACK_SPILL_DIR`` if set (then only that), else
``$XDG_RUNTIME_DIR/gazeback``, ``/dev/shm/gazeback-UID`` or the temp folder's
``gazeback-UID``. A write that does not fit is cut back to where it began, so a spill file
never holds half a line of ours. Every next start replays every spill file of its database.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import sqlite3
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from gazeback.db.localfiles import spill_path

logger = logging.getLogger("gazeback")

SPILL_DIR_ENV = "GAZEBACK_SPILL_DIR"
MARGIN = 64 * 1024  # leave this much free: a disk filled to the last byte helps no one


def fallback_dirs() -> list[Path]:
    """Folders on other disks for when the database's disk is full, first choice first."""
    chosen = os.environ.get(SPILL_DIR_ENV)
    if chosen:
        return [Path(chosen).expanduser()]
    dirs = []
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if runtime:
        dirs.append(Path(runtime) / "gazeback")
    if Path("/dev/shm").is_dir():
        dirs.append(Path("/dev/shm") / f"gazeback-{os.getuid()}")
    dirs.append(Path(tempfile.gettempdir()) / f"gazeback-{os.getuid()}")
    return list(dict.fromkeys(dirs))


def spill_files(db_path: Path) -> list[Path]:
    """Every place a spill of ``db_path`` may be, first choice first."""
    digest = hashlib.sha256(str(Path(db_path).absolute()).encode()).hexdigest()[:16]
    name = f"{db_path.name}-{digest}.spill.jsonl"
    return [spill_path(db_path), *(d / name for d in fallback_dirs())]


def _private_dir(folder: Path) -> None:
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    st = folder.lstat()
    if folder.is_symlink() or st.st_uid != os.getuid() or st.st_mode & 0o077:
        raise OSError(f"{folder} is not a private folder of this user")


def append(path: Path, lines: list[bytes], primary: bool) -> None:
    """Append whole lines to ``path`` (0600) and sync, or raise OSError and leave it as it was."""
    if not primary:
        _private_dir(path.parent)
    need = sum(len(line) for line in lines)
    free = shutil.disk_usage(path.parent).free
    if free < need + MARGIN:
        raise OSError(f"no room: {free // 1024} KiB free, {need // 1024 + 1} KiB needed")
    fd = os.open(path, os.O_CREAT | os.O_WRONLY | os.O_APPEND, 0o600)
    try:
        if os.fstat(fd).st_mode & 0o077:
            os.fchmod(fd, 0o600)
        start = os.fstat(fd).st_size
        try:
            for line in lines:
                view = memoryview(line)
                while view:
                    view = view[os.write(fd, view) :]
            os.fsync(fd)
        except OSError:
            os.ftruncate(fd, start)  # no half line left behind
            raise
    finally:
        os.close(fd)


def write(db_path: Path, items: list[dict[str, Any]]) -> Path:
    """Spill ``items`` to the first place with room; return it, or raise OSError saying why
    none would take them."""
    lines = [json.dumps(item, ensure_ascii=False).encode() + b"\n" for item in items]
    failures = []
    for i, path in enumerate(spill_files(db_path)):
        try:
            append(path, lines, primary=i == 0)
            return path
        except OSError as e:
            failures.append(f"{path}: {e}")
    raise OSError("; ".join(failures))


def check_item(item: Any) -> dict[str, Any]:
    """The item if it has the shape ``store.record_item`` gives, else ValueError."""
    if not isinstance(item, dict):
        raise ValueError(f"a {type(item).__name__}, not a recorded request")
    device, request = item.get("device"), item.get("request")
    if not isinstance(device, dict) or not isinstance(device.get("key"), str):
        raise ValueError("no device key")
    if not isinstance(request, dict):
        raise ValueError("no request")
    for field in ("flow_id", "started_at", "host"):
        if not isinstance(request.get(field), str):
            raise ValueError(f"request.{field} missing or not text")
    if not isinstance(item.get("leaks", []), list):
        raise ValueError("leaks is not a list")
    item.setdefault("leaks", [])
    return item


def read(path: Path, on_bad: Callable[[int, str], None]) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, item) for each good line; ``on_bad(line, why)`` for each other one."""
    with open(path, "rb") as f:
        for n, raw in enumerate(f, 1):
            if not raw.strip():
                continue
            try:
                yield n, check_item(json.loads(raw.decode("utf-8")))
            except (UnicodeDecodeError, ValueError, RecursionError) as e:
                on_bad(n, str(e)[:200])


def replay(
    path: Path,
    save: Callable[[list[dict[str, Any]]], int],
    batch_size: int = 500,
) -> tuple[int, int]:
    """Store every good line of a spill file through ``save``, then remove the file.

    Returns (stored, skipped). A line that is not a recorded request (cut short by a crash,
    edited, damaged) is skipped and logged with its file and line number; a database error
    (disk full, locked) is raised and the file kept for the next start.
    """
    skipped = 0

    def bad(n: int, why: str) -> None:
        nonlocal skipped
        skipped += 1
        logger.error("gazeback: %s line %d is not a recorded request (%s); skipped", path, n, why)

    stored = 0
    batch: list[tuple[int, dict[str, Any]]] = []
    for entry in read(path, bad):
        batch.append(entry)
        if len(batch) >= batch_size:
            stored += _save(batch, save, bad)
            batch = []
    stored += _save(batch, save, bad)
    path.unlink()
    if stored or skipped:
        logger.warning(
            "gazeback: replayed %d spilled requests from %s%s",
            stored,
            path,
            f"; {skipped} bad line(s) skipped" if skipped else "",
        )
    return stored, skipped


def _save(
    batch: list[tuple[int, dict[str, Any]]],
    save: Callable[[list[dict[str, Any]]], int],
    bad: Callable[[int, str], None],
) -> int:
    if not batch:
        return 0
    try:
        return save([item for _, item in batch])
    except sqlite3.OperationalError:
        raise  # the database itself failed: keep the file
    except Exception:
        pass  # one item in the batch is wrong: find it
    stored = 0
    for n, item in batch:
        try:
            stored += save([item])
        except sqlite3.OperationalError:
            raise
        except Exception as e:
            bad(n, f"{type(e).__name__}: {str(e)[:160]}")
    return stored
