"""Applying adapters to traffic recorded earlier (``gazeback reclassify``): rows for ``learned_items``.

Bodies are never stored, so only what the stored path, query, headers and leaf fingerprints hold
can be found again (see ``pipeline.learn_stored``)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from sqlite_utils import Database

from gazeback.knowledge.learn import AdapterIndex
from gazeback.models import Learned

# (method, host, path, headers, leaf location → fingerprints) → findings
LearnFn = Callable[[str, str, str, list[tuple[str, str]], dict[str, list[int]]], Sequence[Learned]]

COLUMNS = (
    "request_id",
    "adapter",
    "company",
    "property",
    "location",
    "kind_group",
    "value",
    "fingerprint",
    "preview",
)


def insert_learned(db: Database, rows: Iterable[dict[str, Any]]) -> None:
    """Insert ``learned_items`` rows (one executemany; columns are ours, values bound)."""
    names = ", ".join(COLUMNS)
    marks = ", ".join("?" for _ in COLUMNS)
    db.conn.executemany(
        f"insert into learned_items ({names}) values ({marks})",
        [tuple(row.get(c) for c in COLUMNS) for row in rows],
    )


def relearn(db: Database, adapters: AdapterIndex, learn_fn: LearnFn) -> dict[str, int]:
    """Apply the adapters to every stored HTTP request an adapter's host covers; add only
    findings not stored yet. Returns counts: requests looked at, rows added."""
    hosts = [
        r[0]
        for r in db.execute("select distinct host from requests where kind = 'http'").fetchall()
        if r[0] and adapters.candidates(r[0]) is not None
    ]
    previews = {
        int(r[0]): r[1]
        for r in db.execute(
            "select fingerprint, min(preview) from learned_items "
            "where fingerprint is not null and preview != '' group by fingerprint"
        ).fetchall()
    }
    has_leaves = "leaf_fingerprints" in db.table_names()
    looked = 0
    rows: list[dict[str, Any]] = []
    for host in hosts:
        requests = db.execute(
            "select id, method, path, request_headers from requests "
            "where kind = 'http' and host = ?",
            [host],
        ).fetchall()
        for request_id, method, path, headers_json in requests:
            looked += 1
            headers = [(str(h[0]), str(h[1])) for h in json.loads(headers_json or "[]")]
            leaves: dict[str, list[int]] = {}
            if has_leaves:
                for fp, loc in db.execute(
                    "select fingerprint, location from leaf_fingerprints where request_id = ?",
                    [request_id],
                ).fetchall():
                    leaves.setdefault(loc, []).append(int(fp))
            found = learn_fn(method or "", host, path or "/", headers, leaves)
            if not found:
                continue
            have = {
                (r[0], r[1], r[2], r[3] if r[3] is not None else r[4])
                for r in db.execute(
                    "select adapter, property, location, fingerprint, value from learned_items "
                    "where request_id = ?",
                    [request_id],
                ).fetchall()
            }
            for x in found:
                k = (
                    x.adapter,
                    x.property,
                    x.location,
                    x.fingerprint if x.fingerprint is not None else x.value,
                )
                if k in have:
                    continue
                have.add(k)
                preview = x.preview
                if x.fingerprint is not None and not preview:
                    preview = previews.get(x.fingerprint, "(an identifier; recorded before)")
                rows.append(
                    {
                        "request_id": request_id,
                        "adapter": x.adapter,
                        "company": x.company,
                        "property": x.property,
                        "location": x.location,
                        "kind_group": x.group,
                        "value": x.value,
                        "fingerprint": x.fingerprint,
                        "preview": preview,
                    }
                )
    with db.atomic():
        insert_learned(db, rows)
    return {"requests": looked, "added": len(rows)}
