"""Where records go when the database cannot take them, and how they come back.

A spill file is JSONL (one record a line, 0600: ``encode``/``decode``; what the database would
hold, never a body or a value as sent). The first choice is next to the
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
from gazeback.db.store import LEAK_COLUMNS, REQUEST_COLUMNS, request_row
from gazeback.models import (
    Candidate,
    Classification,
    Detection,
    DeviceKey,
    Leak,
    Learned,
    Observation,
    Record,
)

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


def encode(record: Record) -> dict[str, Any]:
    """A record as one spill line: the device, the ``requests`` row, the leaks and the
    detector's keyed fingerprints (JSON-safe; no body, no value as sent)."""
    obs, det = record.observation, record.detection
    return {
        "device": {"key": obs.device.key, "label": obs.device.label, "kind": obs.device.kind},
        "user_agent": obs.user_agent,
        "request": request_row(record),
        "leaks": [{c: getattr(leak, c) for c in LEAK_COLUMNS} for leak in record.leaks],
        "detection": None
        if det is None or not (det.leaf_fingerprints or det.candidates)
        else {
            "leaf_fingerprints": [list(fp) for fp in det.leaf_fingerprints],
            "candidates": [[c.fingerprint, c.location, c.shape] for c in det.candidates],
        },
        # what adapters found, already in its stored form (fingerprints, masked previews)
        "learned": [
            [
                x.adapter,
                x.company,
                x.property,
                x.location,
                x.group,
                x.value,
                x.fingerprint,
                x.preview,
            ]
            for x in record.learned
        ],  # fmt: skip
    }


def _text(value: Any, where: str) -> str:
    if not isinstance(value, str):
        raise ValueError(f"{where} missing or not text")
    return value


def _flag(value: Any) -> bool | None:
    return None if value is None else bool(value)


def decode(line: Any) -> Record:
    """The record a spill line (``encode``) holds, or ValueError saying what is wrong."""
    if not isinstance(line, dict):
        raise ValueError(f"a {type(line).__name__}, not a recorded request")
    device, req = line.get("device"), line.get("request")
    if not isinstance(device, dict) or not isinstance(device.get("key"), str):
        raise ValueError("no device key")
    if not isinstance(req, dict):
        raise ValueError("no request")
    unknown = set(req) - set(REQUEST_COLUMNS)
    if unknown:
        raise ValueError(f"request has unknown field(s) {sorted(unknown)}")
    leaks, det = line.get("leaks", []), line.get("detection")
    if not isinstance(leaks, list) or not all(isinstance(leak, dict) for leak in leaks):
        raise ValueError("leaks is not a list of leaks")
    headers = json.loads(req["request_headers"]) if req.get("request_headers") else ()
    redacted = json.loads(req["redacted_fields"]) if req.get("redacted_fields") else ()
    obs = Observation(
        flow_id=_text(req.get("flow_id"), "request.flow_id"),
        kind=_text(req.get("kind", "http"), "request.kind"),  # type: ignore[arg-type]
        started_at=_text(req.get("started_at"), "request.started_at"),
        device=DeviceKey(device["key"], str(device.get("label") or device["key"]),
                         str(device.get("kind") or "other")),
        method=req.get("method"),
        scheme=req.get("scheme"),
        host=_text(req.get("host"), "request.host"),
        port=req.get("port"),
        path=req.get("path"),
        query=(),
        request_headers=tuple((str(k), str(v)) for k, v in headers),
        request_body=None,
        content_type=req.get("content_type"),
        user_agent=line.get("user_agent"),
        referer=None,
        origin=None,
        sec_fetch_site=None,
        status_code=req.get("status_code"),
        request_bytes=req.get("request_bytes") or 0,
        response_bytes=req.get("response_bytes") or 0,
        duration_ms=req.get("duration_ms"),
        is_decrypted=bool(req.get("is_decrypted", 1)),
        tls_sni=req.get("tls_sni"),
        server_ip=req.get("server_ip"),
        error=req.get("error"),
        websocket_messages=req.get("websocket_messages"),
        websocket_bytes=req.get("websocket_bytes"),
        redacted_fields=tuple(str(f) for f in redacted),
        app=req.get("app"),
        app_source=req.get("app_source"),
    )  # fmt: skip
    cls = Classification(
        registrable_domain=req.get("registrable_domain"),
        is_third_party=_flag(req.get("is_third_party")),
        tracker_id=req.get("tracker_id"),
    )
    record_leaks = tuple(
        Leak(
            pii_type=_text(leak.get("pii_type"), "leak.pii_type"),
            transform_chain=str(leak.get("transform_chain")),
            location=str(leak.get("location")),
            tier=leak.get("tier"),
            identity_id=leak.get("identity_id"),
        )
        for leak in leaks
    )
    truncated = bool(req.get("decode_truncated"))
    detection = None
    if det:
        detection = Detection(
            leaks=record_leaks,
            truncated=truncated,
            leaf_fingerprints=tuple((int(fp), str(loc)) for fp, loc in det["leaf_fingerprints"]),
            candidates=tuple(
                Candidate(int(fp), str(loc), str(sh)) for fp, loc, sh in det["candidates"]
            ),
        )
    learned_raw = line.get("learned") or []
    if not isinstance(learned_raw, list) or not all(
        isinstance(x, list) and len(x) == 8 for x in learned_raw
    ):
        raise ValueError("learned is not a list of findings")
    learned = tuple(
        Learned(
            str(a), str(c), str(p), str(loc), g if g in GROUPS else "activity",
            None if v is None else str(v), None if fp is None else int(fp), str(pv),
        )
        for a, c, p, loc, g, v, fp, pv in learned_raw
    )  # fmt: skip
    return Record(obs, cls, record_leaks, truncated, detection, learned)


GROUPS = ("identifier", "device", "activity", "location")


def write(db_path: Path, records: list[Record]) -> Path:
    """Spill ``records`` to the first place with room; return it, or raise OSError saying why
    none would take them."""
    lines = [json.dumps(encode(r), ensure_ascii=False).encode() + b"\n" for r in records]
    failures = []
    for i, path in enumerate(spill_files(db_path)):
        try:
            append(path, lines, primary=i == 0)
            return path
        except OSError as e:
            failures.append(f"{path}: {e}")
    raise OSError("; ".join(failures))


def read(path: Path, on_bad: Callable[[int, str], None]) -> Iterator[tuple[int, Record]]:
    """(line number, record) for each good line; ``on_bad(line, why)`` for each other one."""
    with open(path, "rb") as f:
        for n, raw in enumerate(f, 1):
            if not raw.strip():
                continue
            try:
                yield n, decode(json.loads(raw.decode("utf-8")))
            except (UnicodeDecodeError, ValueError, TypeError, KeyError, RecursionError) as e:
                on_bad(n, str(e)[:200])


def replay(
    path: Path,
    save: Callable[[list[Record]], int],
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
    batch: list[tuple[int, Record]] = []
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
    batch: list[tuple[int, Record]],
    save: Callable[[list[Record]], int],
    bad: Callable[[int, str], None],
) -> int:
    if not batch:
        return 0
    try:
        return save([record for _, record in batch])
    except sqlite3.OperationalError:
        raise  # the database itself failed: keep the file
    except Exception:
        pass  # one item in the batch is wrong: find it
    stored = 0
    for n, record in batch:
        try:
            stored += save([record])
        except sqlite3.OperationalError:
            raise
        except Exception as e:
            bad(n, f"{type(e).__name__}: {str(e)[:160]}")
    return stored
