"""Alerts on what is new (#16): rules as data, a baseline per device, what they raised.

Each device has a baseline: its first N days (``alert_baselines.days``, default
:data:`DEFAULT_BASELINE_DAYS`), or the runs of one experiment condition. What the device
sends after its baseline is compared with what it sent during it; every rule in
``alert_rules`` that is switched on raises one alert per new thing (a company, a kind of
data for a company, ...), naming the first request behind it. :func:`refresh` raises them;
it is idempotent (an alert is raised once).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlite_utils import Database

from gazeback.timestamps import now_iso

DEFAULT_BASELINE_DAYS = 1


@dataclass(frozen=True)
class Rule:
    id: str
    title: str
    description: str
    sql: str  # over `base` and `after` (request ids of one device), gives subject, text, request_id, seen_at


_CO = "coalesce(c.name, r.registrable_domain, r.host)"
_CO_KEY = "coalesce(t.company_id, r.registrable_domain, r.host)"
_CO_KEY2 = "coalesce(t2.company_id, r2.registrable_domain, r2.host)"

RULES: tuple[Rule, ...] = (
    Rule(
        "new_company",
        "A new company",
        "A device sent something to a tracking company it had not contacted during its baseline.",
        f"""
select t.company_id as subject, min(r.started_at) as seen_at, r.id as request_id,
  :device_label || ' sent data to ' || {_CO} || ' for the first time (' || r.host || ').' as text
from after a join requests r on r.id = a.request_id
join trackers t on t.id = r.tracker_id and t.is_tracker
left join companies c on c.id = t.company_id
where t.company_id is not null and t.company_id not in (
  select t2.company_id from base b join requests r2 on r2.id = b.request_id
  join trackers t2 on t2.id = r2.tracker_id where t2.company_id is not null)
group by t.company_id
""",
    ),
    Rule(
        "new_data_kind",
        "A new kind of data for a company",
        "A company received a kind of your personal data it had not received from this device.",
        f"""
select {_CO_KEY} || '|' || l.pii_type as subject, min(r.started_at) as seen_at,
  r.id as request_id,
  {_CO} || ' received ' || coalesce(g.words, replace(l.pii_type, '_', ' ')) || ' from '
    || :device_label || ' for the first time.' as text
from after a join requests r on r.id = a.request_id join leaks l on l.request_id = r.id
left join trackers t on t.id = r.tracker_id left join companies c on c.id = t.company_id
left join glossary_words g on g.kind = 'pii' and g.key = l.pii_type
where {_CO_KEY} || '|' || l.pii_type not in (
  select {_CO_KEY2} || '|' || l2.pii_type from base b join requests r2 on r2.id = b.request_id
  join leaks l2 on l2.request_id = r2.id left join trackers t2 on t2.id = r2.tracker_id)
group by 1
""",
    ),
    Rule(
        "identifier_new_company",
        "Your identifier reached a new company",
        "One of your registered identifiers (email, phone, advertising ID, ...) reached a "
        "company that had not received it from this device.",
        f"""
select l.identity_id || '|' || {_CO_KEY} as subject, min(r.started_at) as seen_at,
  r.id as request_id,
  'Your ' || coalesce(i.label, i.kind) || ' reached ' || {_CO} || ' from ' || :device_label
    || ' for the first time.' as text
from after a join requests r on r.id = a.request_id join leaks l on l.request_id = r.id
join identities i on i.id = l.identity_id
left join trackers t on t.id = r.tracker_id left join companies c on c.id = t.company_id
where l.identity_id || '|' || {_CO_KEY} not in (
  select l2.identity_id || '|' || {_CO_KEY2} from base b join requests r2 on r2.id = b.request_id
  join leaks l2 on l2.request_id = r2.id and l2.identity_id is not null
  left join trackers t2 on t2.id = r2.tracker_id)
group by 1
""",
    ),
    Rule(
        "device_starts_tracking",
        "A device started talking to trackers",
        "A device that sent nothing to trackers during its baseline does now (a TV after a "
        "firmware update, an app after an update).",
        f"""
select 'trackers' as subject, min(r.started_at) as seen_at, r.id as request_id,
  :device_label || ' started talking to trackers: first ' || {_CO} || ' (' || r.host || ').'
    as text
from after a join requests r on r.id = a.request_id
join trackers t on t.id = r.tracker_id and t.is_tracker
left join companies c on c.id = t.company_id
where not exists (select 1 from base b join requests r2 on r2.id = b.request_id
  join trackers t2 on t2.id = r2.tracker_id and t2.is_tracker)
group by 1
""",
    ),
    Rule(
        "pinned_host",
        "A pinned host appeared",
        "A device contacted a host that refuses to be looked into (certificate pinning), which "
        "it had not contacted during its baseline.",
        """
select r.host as subject, min(r.started_at) as seen_at, r.id as request_id,
  :device_label || ' contacted ' || r.host || ', which refuses to be looked into '
    || '(certificate pinning), for the first time.' as text
from after a join requests r on r.id = a.request_id
join _pinned_hosts p on p.host = r.host
where r.is_decrypted = 0 and r.host not in (
  select r2.host from base b join requests r2 on r2.id = b.request_id)
group by r.host
""",
    ),
)
RULES_BY_ID = {r.id: r for r in RULES}


def ensure_rules(db: Database) -> None:
    """Add the rules this version knows (a person's on/off choice is kept)."""
    if not db.table("alert_rules").exists():
        return
    db.table("alert_rules").insert_all(
        [{"id": r.id, "title": r.title, "description": r.description, "enabled": 1} for r in RULES],
        ignore=True,
    )
    for r in RULES:  # titles follow the code; `enabled` is the person's
        db.execute(
            "update alert_rules set title = ?, description = ? where id = ?",
            [r.title, r.description, r.id],
        )


def set_enabled(db: Database, rule_id: str, enabled: bool) -> None:
    if rule_id not in RULES_BY_ID:
        raise ValueError(
            f"there is no alert rule {rule_id!r} (there are: {', '.join(RULES_BY_ID)})"
        )
    with db.conn:
        db.execute("update alert_rules set enabled = ? where id = ?", [int(enabled), rule_id])


def rules(db: Database) -> list[dict[str, Any]]:
    return list(db.query("select * from alert_rules order by rowid"))


def set_baseline(
    db: Database,
    device_id: int,
    days: int | None = None,
    experiment_id: int | None = None,
    condition: str | None = None,
    now: str | None = None,
) -> None:
    """The device's baseline: its first ``days`` days, or the runs of one condition."""
    if (days is None) == (experiment_id is None):
        raise ValueError("a baseline is either a number of days or an experiment condition")
    with db.conn:
        db.table("alert_baselines").upsert(
            {
                "device_id": device_id,
                "days": days,
                "experiment_id": experiment_id,
                "condition": condition,
                "set_at": now or now_iso(),
            },
            pk="device_id",
        )


def _shift(ts: str, days: int) -> str:
    t = datetime.fromisoformat(ts.replace("Z", "+00:00")) + timedelta(days=days)
    return t.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _baseline_ctes(db: Database, device: dict[str, Any]) -> tuple[str, dict[str, Any]] | None:
    """SQL defining `base` and `after` for one device, or None while its baseline lasts."""
    row = list(db.query("select * from alert_baselines where device_id = ?", [device["id"]]))
    b = row[0] if row else {"days": DEFAULT_BASELINE_DAYS, "experiment_id": None}
    params: dict[str, Any] = {"device": device["id"], "device_label": device["label"]}
    if b["experiment_id"] is not None:
        end = next(
            db.query(
                "select max(coalesce(ended_at, '9999')) as e, count(*) as n from experiment_runs "
                "where experiment_id = ? and condition = ?",
                [b["experiment_id"], b["condition"]],
            )
        )
        if not end["n"] or end["e"] == "9999":
            return None  # no such runs (yet), or one still going: nothing is "after" yet
        params.update(eid=b["experiment_id"], cond=b["condition"], end=end["e"])
        return (
            """
with base as (
  select x.request_id from experiment_requests x join requests q on q.id = x.request_id
  join experiment_runs er on er.id = x.run_id
  where er.experiment_id = :eid and er.condition = :cond and q.device_id = :device),
after as (select id as request_id from requests where device_id = :device and started_at > :end)
""",
            params,
        )
    first = next(
        db.query("select min(started_at) as t from requests where device_id = ?", [device["id"]])
    )["t"]
    if first is None:
        return None
    params["end"] = _shift(first, int(b["days"] or 0))
    return (
        """
with base as (select id as request_id from requests
  where device_id = :device and started_at < :end),
after as (select id as request_id from requests where device_id = :device and started_at >= :end)
""",
        params,
    )


def refresh(db: Database, now: str | None = None) -> list[dict[str, Any]]:
    """Raise the alerts of every switched-on rule for every device; return the new ones."""
    now = now or now_iso()
    on = {r["id"] for r in db.query("select id from alert_rules where enabled = 1")}
    new: list[dict[str, Any]] = []
    tables = set(db.table_names())
    for device in list(db.query("select id, label from devices order by id")):
        ctes = _baseline_ctes(db, device)
        if ctes is None:
            continue
        head, params = ctes
        for rule in RULES:
            if rule.id not in on or (rule.id == "pinned_host" and "_pinned_hosts" not in tables):
                continue
            for hit in list(db.query(head + rule.sql, params)):
                row = {
                    "rule_id": rule.id,
                    "device_id": device["id"],
                    "subject": str(hit["subject"]),
                    "text": hit["text"],
                    "request_id": hit["request_id"],
                    "seen_at": hit["seen_at"],
                    "raised_at": now,
                }
                with db.conn:
                    cur = db.execute(
                        "insert or ignore into alerts (rule_id, device_id, subject, text, "
                        "request_id, seen_at, raised_at) values (:rule_id, :device_id, "
                        ":subject, :text, :request_id, :seen_at, :raised_at)",
                        row,
                    )
                if cur.rowcount:
                    row["id"] = cur.lastrowid
                    new.append(row)
    return new


def news(db: Database, since: str) -> list[dict[str, Any]]:
    """Alerts about what devices sent since ``since`` (ISO time), newest first."""
    return list(
        db.query(
            "select a.*, d.label as device, ar.title as rule from alerts a "
            "left join devices d on d.id = a.device_id "
            "join alert_rules ar on ar.id = a.rule_id "
            "where coalesce(a.seen_at, a.raised_at) >= ? and ar.enabled = 1 "
            "order by a.seen_at desc, a.id desc",
            [since],
        )
    )


def mark_notified(db: Database, ids: list[int], now: str | None = None) -> None:
    with db.conn:
        db.conn.executemany(
            "update alerts set notified_at = ? where id = ?", [(now or now_iso(), i) for i in ids]
        )
