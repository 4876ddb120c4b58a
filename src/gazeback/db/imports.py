"""Rows that only imports write: the problems found in a file, and which files are in."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlite_utils import Database


def find_import(db: Database, content_hash: str) -> dict[str, Any] | None:
    """The finished capture row of an earlier import of the same bytes, if any."""
    rows = db.query(
        "select id, source, file_name, started_at, requests_recorded from captures"
        " where content_hash = ? and ended_at is not null order by id limit 1",
        [content_hash],
    )
    return next(iter(rows), None)


def save_problems(
    db: Database, capture_id: int, file_name: str, problems: Iterable[tuple[str, str]]
) -> None:
    """Record each (position, reason) defect found while importing ``file_name``."""
    db.table("import_problems").insert_all(
        (
            {"capture_id": capture_id, "file_name": file_name, "position": pos, "reason": why}
            for pos, why in problems
        ),
        pk="id",
    )
