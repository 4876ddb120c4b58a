"""Data access requests: which company, what it received (the evidence), and the requests sent.

The company is resolved through the current tracker knowledge (ownership changes applied), not
through the ``companies`` rows stored when the traffic was recorded: a request to LiveRamp
covers ``rlcdn.com`` even if the database was filled when the lists said Acxiom.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

from sqlite_utils import Database

from gazeback.db.identities import load_identities, load_key
from gazeback.knowledge.build import norm_name
from gazeback.knowledge.classify import TrackerIndex, registrable_domain
from gazeback.knowledge.letters import DUE_DAYS, Company, Evidence, Identifier, due_date

METHODS = ("email", "post", "webform", "other")


class AskError(ValueError):
    """A request that cannot be made as asked (one sentence saying why)."""


def _chain(index: TrackerIndex, cid: str | None) -> list[str]:
    out: list[str] = []
    while cid and cid not in out:
        out.append(cid)
        cid = index.companies.get(cid, {}).get("parent_id")
    return out


def trail_trackers(db: Database) -> list[str]:
    return [
        r[0]
        for r in db.execute("select distinct tracker_id from requests where tracker_id is not null")
    ]


def company_of_tracker(index: TrackerIndex, tid: str) -> str | None:
    try:
        return index.tracker(tid).get("company_id")
    except (KeyError, ValueError):
        return None


def resolve(db: Database, index: TrackerIndex, query: str) -> tuple[Company, list[str]]:
    """The company named ``query`` (id or name, any case) and the trail's trackers it holds
    (its own and its subsidiaries'). Raises AskError when no company of the trail matches."""
    key = norm_name(query)
    candidates = [
        cid for cid, c in index.companies.items() if key in (norm_name(cid), norm_name(c["name"]))
    ]
    by_company: dict[str, list[str]] = {}
    for tid in trail_trackers(db):
        for cid in _chain(index, company_of_tracker(index, tid)):
            by_company.setdefault(cid, []).append(tid)
    found = [c for c in candidates if c in by_company]
    if not found:  # a name the database stored when the lists said otherwise (Acxiom → LiveRamp)
        stored = [
            r[0]
            for r in db.execute(
                "select distinct t.id from trackers t join companies c on c.id = t.company_id "
                "where c.id = ? or lower(c.name) = lower(?)",
                [query, query],
            )
        ]
        now = {company_of_tracker(index, t) for t in stored} - {None}
        found = sorted(c for c in now if c and c in by_company)
    if not found:
        known = ", ".join(
            sorted({index.companies[c]["name"] for c in by_company if c in index.companies})[:8]
        )
        where = (
            f"not among the companies in this trail (some are: {known})"
            if known
            else ("not in this trail (it has no tracker requests yet)")
        )
        raise AskError(f"company {query!r} is {where}")
    cid = sorted(found, key=lambda c: -len(by_company[c]))[0]
    return company(index, cid, by_company[cid]), sorted(set(by_company[cid]))


def company(index: TrackerIndex, cid: str, tracker_ids: list[str] | None = None) -> Company:
    c = index.companies[cid]
    owner = index.companies.get(c.get("owner_id") or "", {})
    domains: list[str] = []
    web = registrable_domain((c.get("website_url") or "").split("//")[-1].split("/")[0])
    if web:
        domains.append(web)
    for tid in tracker_ids or []:
        for d in index.rows(tid)["tracker_domains"]:
            rd = registrable_domain(d["domain"])
            if rd and rd not in domains:
                domains.append(rd)
    return Company(
        id=cid,
        name=c["name"].strip(),
        owner_name=owner.get("name") if c.get("owner_id") != cid else None,
        domains=tuple(domains),
        privacy_policy_url=c.get("privacy_policy_url"),
        history=tuple(c.get("history", [])),
    )


def evidence(db: Database, tracker_ids: list[str]) -> Evidence:
    if not tracker_ids:
        return Evidence()
    marks = ",".join("?" * len(tracker_ids))
    where = f"r.tracker_id in ({marks})"
    ev = Evidence()
    row = db.execute(
        f"select min(started_at), max(started_at), count(*) from requests r where {where}",
        tracker_ids,
    ).fetchone()
    ev.first_seen, ev.last_seen, ev.requests = row
    ev.devices = [
        (label or f"device {i}", n)
        for i, label, n in db.execute(
            f"select r.device_id, d.label, count(*) from requests r left join devices d "
            f"on d.id = r.device_id where {where} group by r.device_id order by 3 desc, 2",
            tracker_ids,
        )
    ]
    ev.hosts = [
        (h, n)
        for h, n in db.execute(
            f"select host, count(*) from requests r where {where} group by host "
            "order by 2 desc, 1 limit 25",
            tracker_ids,
        )
    ]
    ev.kinds = [
        (k, n)
        for k, n in db.execute(
            f"select l.pii_type, count(*) from leaks l join requests r on r.id = l.request_id "
            f"where {where} group by l.pii_type order by 2 desc, 1",
            tracker_ids,
        )
    ]
    if "learned" in db.view_names():  # issue #14: what each request told the company
        ev.learned = [
            (str(k), n)
            for k, n in db.execute(
                f"select property, count(*) from learned r where {where} "
                "group by 1 order by 2 desc, 1 limit 20",
                tracker_ids,
            )
        ]
    ev.persistent_ids = db.execute(
        f"select count(distinct s.persistent_id) from persistent_id_sightings s "
        f"join persistent_ids p on p.id = s.persistent_id join requests r on r.id = s.request_id "
        f"where p.is_persistent = 1 and {where}",
        tracker_ids,
    ).fetchone()[0]
    return ev


def received_identities(db: Database, tracker_ids: list[str]) -> list[dict[str, Any]]:
    """The person's registered identifiers this company received: id, kind, label, masked, times."""
    if not tracker_ids:
        return []
    marks = ",".join("?" * len(tracker_ids))
    return list(
        db.query(
            f"select i.id, i.kind, i.label, i.masked, count(*) as times from leaks l "
            f"join requests r on r.id = l.request_id join identities i on i.id = l.identity_id "
            f"where r.tracker_id in ({marks}) group by i.id order by i.id",
            tracker_ids,
        )
    )


def chosen_identifiers(
    db: Database, db_path: Path, tracker_ids: list[str], include: list[int] | None, all_: bool
) -> list[Identifier]:
    """Decrypt exactly the identifiers the person chose, and only ones this company received."""
    received = {r["id"] for r in received_identities(db, tracker_ids)}
    wanted = received if all_ else set(include or [])
    stray = wanted - received
    if stray:
        raise AskError(
            f"identity {', '.join(map(str, sorted(stray)))} was not received by this company: "
            "only identifiers it received can go into the letter"
        )
    if not wanted:
        return []
    key = load_key(db_path)
    return [
        Identifier(v.id, v.kind, v.label or v.kind, v.value)
        for v in load_identities(db, key, wanted)
    ]


# --- requests sent ----------------------------------------------------------------------


def mark_sent(
    db: Database, comp: Company, record: str | None, law: str, lang: str, method: str, sent_on: date
) -> int:
    if method not in METHODS:
        raise AskError(f"--method {method!r}: use one of {', '.join(METHODS)}")
    if law not in DUE_DAYS:
        raise AskError(f"--law {law!r}: use one of {', '.join(DUE_DAYS)}")
    table = db.table("requests_sent")
    table.insert(
        {
            "company_id": comp.id,
            "company_name": comp.name,
            "record": record,
            "law": law,
            "lang": lang,
            "method": method,
            "sent_on": sent_on.isoformat(),
            "due_on": due_date(sent_on, law).isoformat(),
        }  # fmt: skip
    )
    return int(table.last_pk)  # type: ignore[arg-type]


def mark(db: Database, request_id: int, field: str, on: date) -> None:
    """Set ``answered_on``, ``reminded_on`` or ``complained_on`` of one sent request."""
    if field not in ("answered_on", "reminded_on", "complained_on"):
        raise AskError(f"{field}: not a date of a sent request")
    cur = db.execute(
        f"update requests_sent set {field} = ? where id = ?", [on.isoformat(), request_id]
    )
    if cur.rowcount == 0:
        raise AskError(f"no sent request with id {request_id} (see `gazeback request --list`)")
    db.conn.commit()


def status(row: dict[str, Any], today: date) -> str:
    """waiting, due (the deadline is within a week), overdue, answered."""
    if row.get("answered_on"):
        return "answered"
    due = date.fromisoformat(row["due_on"])
    if today > due:
        return "overdue"
    if (due - today).days <= 7:
        return "due"
    return "waiting"


def next_step(row: dict[str, Any], today: date) -> str | None:
    """What to do now: the admonition once overdue, the complaint two weeks after it."""
    if status(row, today) != "overdue":
        return None
    if not row.get("reminded_on"):
        return "admonition"
    if (today - date.fromisoformat(row["reminded_on"])).days >= 14 and not row.get("complained_on"):
        return "complaint"
    return None


def sent_requests(db: Database, today: date) -> list[dict[str, Any]]:
    rows = list(db.query("select * from requests_sent order by due_on, id"))
    for r in rows:
        r["status"] = status(r, today)
        r["next_step"] = next_step(r, today)
    return rows
