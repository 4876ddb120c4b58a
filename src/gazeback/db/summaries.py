"""The dashboards' per-hour summary tables (schema and triggers: migrations m016)."""

from __future__ import annotations

from sqlite_utils import Database

from gazeback.db.migrations import SUMMARY_FILL_SQL, sql_statements


def rebuild(db: Database) -> None:
    """Recompute ``summary_hourly`` and ``summary_leaks`` from ``requests`` and ``leaks``.

    The triggers keep them current on every insert, update and delete; this is for a file
    edited outside gazeback, or a check that the triggers and a full recount agree.
    """
    with db.atomic():
        for statement in sql_statements(SUMMARY_FILL_SQL):
            db.execute(statement)
