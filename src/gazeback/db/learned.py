"""Applying adapters to traffic recorded earlier (``gazeback reclassify``): rows for ``learned_items``.

Bodies are never stored, so only what the stored path, query, headers and leaf fingerprints hold
can be found again (see ``pipeline.learn_stored``)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from sqlite_utils import Database

from gazeback.db.identities import LEAF_FINGERPRINTS_SQL
from gazeback.knowledge.learn import AdapterIndex, leaf_locations
from gazeback.knowledge.properties import IDENTIFIERS as identifier_properties
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


def learned_row(request_id: int, x: Learned) -> dict[str, Any]:
    """The ``learned_items`` row of one finding."""
    return {
        "request_id": request_id,
        "adapter": x.adapter,
        "company": x.company,
        "property": x.property,
        "location": x.location,
        "kind_group": x.group,
        "value": x.value,
        "fingerprint": x.fingerprint,
        "preview": x.preview,
    }


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
    # the stored leaves where an identifier rule's value can sit, in one pass over the table
    # (leaf_fingerprints is keyed by fingerprint: a scan of the rows at these locations)
    locations = sorted(
        {
            loc
            for a in adapters.adapters
            for rule in a.rules
            if rule.property in identifier_properties
            for loc in leaf_locations(rule.path, a.body)
        }
    )
    leaves_of: dict[int, dict[str, list[int]]] = {}
    if hosts and locations and "leaf_fingerprints" in db.table_names():
        marks = ",".join("?" * len(locations))
        for request_id, fp, loc in db.execute(
            f"{LEAF_FINGERPRINTS_SQL} where l.location in ({marks})", locations
        ):
            leaves_of.setdefault(int(request_id), {}).setdefault(loc, []).append(int(fp))
    looked = 0
    rows: list[dict[str, Any]] = []
    for host in hosts:
        requests = db.execute(
            "select r.id, r.method, r.path, h.headers from requests r "
            "left join header_sets h on h.id = r.header_set_id "
            "where r.kind = 'http' and r.host = ?",
            [host],
        ).fetchall()
        for request_id, method, path, headers_json in requests:
            looked += 1
            headers = [(str(h[0]), str(h[1])) for h in json.loads(headers_json or "[]")]
            leaves = leaves_of.get(int(request_id), {})
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
                row = learned_row(request_id, x)
                if x.fingerprint is not None and not x.preview:
                    row["preview"] = previews.get(x.fingerprint, "(an identifier; recorded before)")
                rows.append(row)
    with db.atomic():
        insert_learned(db, rows)
    return {"requests": looked, "added": len(rows)}
