"""Import a fixture into a fresh database and describe the result as plain, comparable data.

Shared by tests/test_importers.py and scripts/regen_import_goldens.py, so the goldens are
made by exactly the code the tests run.
"""

from __future__ import annotations

from pathlib import Path

import sqlite_utils

from gazeback.db import migrations
from gazeback.db.identities import add_identity, load_identities
from gazeback.imports.importers import Source, content_hash, guess_format, import_file
from gazeback.knowledge.classify import load_index
from gazeback.leaks.needles import build_profile
from gazeback.pipeline import Context

KEY = b"k" * 32
EMAIL = "alice@example.org"
DATA = Path(__file__).resolve().parent.parent / "data"
REQUEST_COLUMNS = (
    "flow_id", "kind", "started_at", "method", "scheme", "host", "port", "path",
    "registrable_domain", "tracker_id", "status_code", "request_bytes", "response_bytes",
    "is_decrypted", "tls_sni", "server_ip", "error", "app",
)  # fmt: skip


def fresh_db() -> sqlite_utils.Database:
    db = sqlite_utils.Database(memory=True)
    migrations.apply(db)
    add_identity(db, KEY, "email", EMAIL, label="email")
    return db


def context(db: sqlite_utils.Database) -> Context:
    return Context(KEY, load_index(), build_profile(load_identities(db, KEY)))


def import_path(db: sqlite_utils.Database, path: Path, fmt: str | None = None):
    with open(path, "rb") as fp:
        head = fp.read(4096)
        fp.seek(0)
        kind = fmt or guess_format(head, path.name)
        src = Source(path.name, content_hash(fp), path.stat().st_size, None, path)
        return import_file(db, fp, src, kind, context(db), index=load_index())


def describe(db: sqlite_utils.Database) -> dict:
    """Rows without database ids or import times (the volatile parts)."""
    cols = ", ".join(f"requests.{c}" for c in REQUEST_COLUMNS)
    return {
        "captures": list(db.query(
            "select source, file_name, requests_recorded from captures order by id")),
        "devices": list(db.query("select key, label from devices order by key")),
        "requests": list(db.query(
            f"select {cols}, devices.key as device from requests"
            " join devices on devices.id = requests.device_id order by flow_id")),
        "leaks": list(db.query(
            "select requests.flow_id, leaks.pii_type, leaks.transform_chain, leaks.location,"
            " leaks.tier from leaks join requests on requests.id = leaks.request_id"
            " order by 1, 4")),
        "import_problems": list(db.query(
            "select file_name, position, reason from import_problems order by id")),
    }  # fmt: skip


def golden_for(path: Path) -> Path:
    return path.with_name(path.name + ".expected.json")  # x.har → x.har.expected.json


def fixtures() -> list[Path]:
    """Every importable fixture: recorded ones and their defective variants."""
    skip = ("not-", "cut-short", ".expected", "tracker_accuracy", "ask_labeled")
    return sorted(p for p in DATA.iterdir() if p.is_file() and not any(s in p.name for s in skip))
