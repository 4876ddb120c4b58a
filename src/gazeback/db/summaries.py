"""The dashboards' per-hour summary tables (schema and triggers: migrations m016, m040, m047)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from sqlite_utils import Database

from gazeback.db.migrations import SUMMARY_FILL_SQL, SUMMARY_LEAKS_BY_KEY, sql_statements


def rebuild(db: Database) -> None:
    """Recompute ``summary_hourly`` and ``summary_leaks`` from ``requests`` and ``leaks``.

    The triggers keep them current on every insert, update and delete; this is for a file
    edited outside gazeback, or a check that the triggers and a full recount agree.
    """
    with db.atomic():
        for statement in sql_statements(SUMMARY_FILL_SQL):
            db.execute(statement)


# A writer's batch added to the summaries by one upsert per distinct key: an app sends a burst to
# the same hosts in the same hour, so a batch of 16 requests is a few summary rows, not 16 runs of
# the insert triggers (#19, m047). The keys are built as the triggers build them (coalesce: '' and 0).
_ADD_HOURLY = """
insert into summary_hourly (hour, device_id, app, host, tracker_id, kind, is_decrypted,
  requests, leaks, request_bytes, response_bytes) values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
on conflict do update set requests = requests + excluded.requests,
  leaks = leaks + excluded.leaks, request_bytes = request_bytes + excluded.request_bytes,
  response_bytes = response_bytes + excluded.response_bytes
"""
_ADD_LEAKS = """
insert into summary_leaks (hour, device_id, app, host, tracker_id, pii_type, transform_chain,
  location, leaks) values (?, ?, ?, ?, ?, ?, ?, ?, ?)
on conflict do update set leaks = leaks + excluded.leaks
"""

# One stored request as the summaries see it: (hour, device_id, app, host, tracker_id, kind,
# is_decrypted) as the triggers coalesce them, then its bytes up and down, then each of its leaks
# as (pii_type, transform_chain, location).
HourKey = tuple[str, int, str, str, str, str, int]
LeakKey = tuple[str, str, str]


def defer(db: Database) -> None:
    """Turn the summaries' insert triggers off until ``resume`` (inside one transaction)."""
    db.execute("insert into _summary_deferred (deferred) values (1)")


def add_batch(db: Database, rows: Iterable[tuple[HourKey, int, int, Sequence[LeakKey]]]) -> None:
    """Add a batch's requests and their leaks to the summaries (while deferred)."""
    hourly: dict[HourKey, list[int]] = {}
    leaks: dict[tuple[str | int, ...], int] = {}
    for key, up, down, found in rows:
        counts = hourly.get(key)
        if counts is None:
            counts = hourly[key] = [0, 0, 0, 0]
        counts[0] += 1
        counts[1] += len(found)
        counts[2] += up
        counts[3] += down
        for leak in found:
            k = (*key[:5], *leak)
            leaks[k] = leaks.get(k, 0) + 1
    db.conn.executemany(_ADD_HOURLY, [(*k, *c) for k, c in hourly.items()])
    if leaks:
        db.conn.executemany(_ADD_LEAKS, [(*k, n) for k, n in leaks.items()])


# Leak rows written after a batch's own (persistent IDs: on this batch's requests and older
# ones), grouped by the key of their request, the way the leaks' insert trigger adds them.
_LATER_LEAKS_HOURLY = """
insert into summary_hourly (hour, device_id, app, host, tracker_id, kind, is_decrypted,
  requests, leaks, request_bytes, response_bytes)
select substr(r.started_at, 1, 13), coalesce(r.device_id, 0), coalesce(r.app, ''), r.host,
  coalesce(r.tracker_id, ''), r.kind, coalesce(r.is_decrypted, 0), 0, count(*), 0, 0
from leaks l join requests r on r.id = l.request_id
where l.id > :after
group by 1, 2, 3, 4, 5, 6, 7
on conflict do update set leaks = leaks + excluded.leaks
"""
_LATER_LEAKS = SUMMARY_LEAKS_BY_KEY.format(where="l.id > :after") + (
    "\non conflict do update set leaks = leaks + excluded.leaks"
)


def last_leak(db: Database) -> int:
    """The newest ``leaks`` id, for ``add_leaks_after``."""
    return int(db.execute("select coalesce(max(id), 0) from leaks").fetchone()[0])


def add_leaks_after(db: Database, after: int) -> None:
    """Add the leak rows with ids above ``after`` (written while deferred) to the summaries."""
    db.execute(_LATER_LEAKS_HOURLY, {"after": after})
    db.execute(_LATER_LEAKS, {"after": after})


def resume(db: Database) -> None:
    """The insert triggers on again (what ``defer`` turned off)."""
    db.execute("delete from _summary_deferred")
