"""Write the tracker knowledge a database was classified with, and re-apply it to stored rows.

The store calls :func:`save_knowledge` the first time a tracker id is seen, so every
database carries the ``companies``, ``trackers`` and ``tracker_domains`` rows it uses.
"""

from __future__ import annotations

import json
from typing import Any

from sqlite_utils import Database

from gazeback.knowledge.classify import TrackerIndex, normalize_host, registrable_domain

BATCH = 2000


def save_knowledge(db: Database, index: TrackerIndex, tracker_ids: set[str]) -> None:
    """Upsert the knowledge rows (company chain, tracker, domains) for ``tracker_ids``."""
    rows: dict[str, dict[str, dict[str, Any]]] = {
        "companies": {},
        "trackers": {},
        "tracker_domains": {},
    }
    for tid in sorted(tracker_ids):
        for table, table_rows in index.rows(tid).items():
            key = "domain" if table == "tracker_domains" else "id"
            rows[table].update((r[key], r) for r in table_rows)
    db.table("companies").upsert_all(rows["companies"].values(), pk="id")
    db.table("trackers").upsert_all(rows["trackers"].values(), pk="id")
    db.table("tracker_domains").upsert_all(rows["tracker_domains"].values(), pk="domain")


def reclassify(db: Database, index: TrackerIndex) -> dict[str, int]:
    """Re-apply ``index`` to every stored request: ``tracker_id`` and ``registrable_domain``.

    Page context is not stored, so ``is_third_party`` is left as it was. Every capture's
    ``tracker_list_versions`` is set to the index's versions, which now explain the rows.
    Returns counts: ``requests``, ``changed``, ``trackers``.
    """
    changed = 0
    seen: set[str] = set()
    total = 0
    with db.atomic():
        updates: list[tuple[str | None, str | None, int]] = []
        sql = "select id, host, scheme, path, tls_sni, tracker_id, registrable_domain from requests"
        for row in list(db.query(sql)):
            total += 1
            host = row["host"]
            if row["tls_sni"] and not registrable_domain(host):
                host = row["tls_sni"]
            if row["path"] is None:
                m = index.lookup(host)
            else:
                url = f"{row['scheme'] or 'https'}://{normalize_host(host)}{row['path']}"
                m = index.match_url(url)
            tid = m.tracker_id if m else None
            domain = registrable_domain(host)
            if tid:
                seen.add(tid)
            if (tid, domain) != (row["tracker_id"], row["registrable_domain"]):
                updates.append((tid, domain, row["id"]))
        new_ids = seen - {r["id"] for r in db.query("select id from trackers")}
        save_knowledge(db, index, seen)
        for i in range(0, len(updates), BATCH):
            db.conn.executemany(
                "update requests set tracker_id = ?, registrable_domain = ? where id = ?",
                updates[i : i + BATCH],
            )
        changed = len(updates)
        db.execute(
            "update captures set tracker_list_versions = ?",
            [json.dumps(index.versions(), sort_keys=True)],
        )
    return {"requests": total, "changed": changed, "trackers": len(seen), "new": len(new_ids)}
