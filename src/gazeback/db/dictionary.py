"""Dictionary tables: a repeated text stored once, referenced by its id (#19).

``header_sets`` (a request's redacted headers) and ``leaf_locations`` (where a leaf
fingerprint sat) are both an ``id`` plus one unique text column.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlite_utils import Database

CHUNK = 500  # texts per lookup: well under SQLite's limit on bound parameters


def dictionary_ids(db: Database, table: str, column: str, texts: Iterable[str]) -> dict[str, int]:
    """The id in ``table`` of each text in ``column``, adding those not stored yet."""
    wanted = sorted(set(texts))
    out: dict[str, int] = {}
    for start in range(0, len(wanted), CHUNK):
        chunk = wanted[start : start + CHUNK]
        marks = ",".join("?" * len(chunk))
        sql = f"select [{column}], id from [{table}] where [{column}] in ({marks})"
        out.update(db.execute(sql, chunk).fetchall())
    missing = [text for text in wanted if text not in out]
    if missing:
        with db.atomic():  # a savepoint inside the writer's batch; committed on its own here
            for text in missing:
                cur = db.conn.execute(f"insert into [{table}] ([{column}]) values (?)", [text])
                out[text] = int(cur.lastrowid or 0)
    return out
