"""Before/after experiments (#16): named experiments, their conditions and repeat runs.

A run is a time window of live traffic (optionally one device), or one capture (an import,
a consent check). ``experiment_requests`` (a view) lists each run's requests;
``experiment_items`` what each run reached: companies, hosts, kinds of data, the person's
registered identifiers and ID-shaped values; :func:`compare` sets two conditions side by
side with the spread between repeat runs.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from sqlite_utils import Database

from gazeback.timestamps import now_iso


class ExperimentError(ValueError):
    """A request about experiments that cannot be met; the message says why."""


def running(db: Database) -> dict[str, Any] | None:
    """The window run going on now, if any (only one at a time)."""
    rows = list(
        db.query(
            "select r.*, e.name as experiment from experiment_runs r "
            "join experiments e on e.id = r.experiment_id "
            "where r.ended_at is null and r.source = 'window' order by r.id desc limit 1"
        )
    )
    return rows[0] if rows else None


def _experiment_id(db: Database, name: str, url: str | None = None) -> int:
    name = name.strip()
    if not name:
        raise ExperimentError("an experiment needs a name (e.g. cookie-banner)")
    row = list(db.query("select id from experiments where name = ?", [name]))
    if row:
        return int(row[0]["id"])
    cur = db.execute(
        "insert into experiments (name, created_at, url) values (?, ?, ?)", [name, now_iso(), url]
    )
    return int(cur.lastrowid or 0)


def _next_run(db: Database, experiment_id: int, condition: str) -> int:
    row = next(
        db.query(
            "select coalesce(max(run), 0) + 1 as n from experiment_runs "
            "where experiment_id = ? and condition = ?",
            [experiment_id, condition],
        )
    )
    return int(row["n"])


def _condition(condition: str) -> str:
    condition = condition.strip()
    if not condition:
        raise ExperimentError('a condition needs a label (e.g. --condition "reject all")')
    return condition


def start(
    db: Database,
    name: str,
    condition: str,
    device_id: int | None = None,
    now: str | None = None,
) -> dict[str, Any]:
    """Start a window run of ``condition``; refuses while another window run goes on."""
    condition = _condition(condition)
    going = running(db)
    if going:
        raise ExperimentError(
            f"experiment {going['experiment']!r} (condition {going['condition']!r}, run "
            f"{going['run']}) is still running since {going['started_at']}: "
            "stop it first with `gazeback experiment stop`"
        )
    with db.conn:
        eid = _experiment_id(db, name)
        run = _next_run(db, eid, condition)
        rid = db.execute(
            "insert into experiment_runs (experiment_id, condition, run, device_id, "
            "started_at, source) values (?, ?, ?, ?, ?, 'window')",
            [eid, condition, run, device_id, now or now_iso()],
        ).lastrowid
    return dict(next(db.query("select * from experiment_runs where id = ?", [rid])))


def stop(db: Database, now: str | None = None) -> dict[str, Any]:
    """End the window run going on; ExperimentError if there is none."""
    going = running(db)
    if not going:
        raise ExperimentError(
            "no experiment is running: start one with "
            "`gazeback experiment start NAME --condition LABEL`"
        )
    with db.conn:
        db.execute(
            "update experiment_runs set ended_at = ? where id = ?", [now or now_iso(), going["id"]]
        )
    return dict(next(db.query("select * from experiment_runs where id = ?", [going["id"]])))


def add_capture(
    db: Database,
    name: str,
    condition: str,
    capture_id: int,
    source: str = "import",
    url: str | None = None,
    **facts: Any,
) -> dict[str, Any]:
    """Make capture ``capture_id`` (all of it) one run of ``condition``. A capture already
    in the experiment is not added twice."""
    condition = _condition(condition)
    with db.conn:
        eid = _experiment_id(db, name, url)
        had = list(
            db.query(
                "select * from experiment_runs where experiment_id = ? and capture_id = ? "
                "and source = ?",
                [eid, capture_id, source],
            )
        )
        if had and source == "import":
            return dict(had[0])
        span = next(
            db.query(
                "select min(started_at) as a, max(started_at) as b from requests "
                "where capture_id = ?",
                [capture_id],
            )
        )
        started = facts.pop("started_at", None) or span["a"] or now_iso()
        ended = facts.pop("ended_at", None) or span["b"] or started
        row = {
            "experiment_id": eid,
            "condition": condition,
            "run": _next_run(db, eid, condition),
            "capture_id": capture_id,
            "started_at": started,
            "ended_at": ended,
            "source": source,
            **facts,
        }
        rid = db.table("experiment_runs").insert(row).last_pk
    return dict(next(db.query("select * from experiment_runs where id = ?", [rid])))


def list_experiments(db: Database) -> list[dict[str, Any]]:
    return list(
        db.query(
            """
select e.name, e.created_at, count(r.id) as runs,
  (select group_concat(condition, ', ') from (select condition from experiment_runs
    where experiment_id = e.id group by condition order by min(id))) as conditions,
  sum(r.ended_at is null and r.source = 'window') as running
from experiments e left join experiment_runs r on r.experiment_id = e.id
group by e.id order by e.created_at
"""
        )
    )


# -- what each run reached --------------------------------------------------------------

# A run's requests: a capture run takes its capture (a consent check: the part of its
# capture inside the run's window); a window run every request in the window (of its device).
REQUESTS_SQL = """
select er.id as run_id, er.experiment_id, er.condition, er.run, r.id as request_id
from experiment_runs er join requests r on r.capture_id = er.capture_id
where er.capture_id is not null and er.source = 'import'
union all
select er.id, er.experiment_id, er.condition, er.run, r.id
from experiment_runs er join requests r on r.capture_id = er.capture_id
  and r.started_at >= er.started_at and r.started_at <= coalesce(er.ended_at, '9999')
where er.capture_id is not null and er.source != 'import'
  and (er.device_id is null or r.device_id = er.device_id)
union all
select er.id, er.experiment_id, er.condition, er.run, r.id
from experiment_runs er join requests r
  on r.started_at >= er.started_at and r.started_at <= coalesce(er.ended_at, '9999')
where er.capture_id is null and (er.device_id is null or r.device_id = er.device_id)
"""

# kind: company (tracking companies), host, data ("Company: kind of data"), identifier
# (one of the person's registered identifiers reaching a company), id (a company that
# received an ID-shaped value: something that can follow you).
ITEMS_SQL = """
with x as (
  select x.run_id, x.experiment_id, x.condition, x.run, r.*, t.company_id, c.name as company,
    coalesce(t.is_tracker, 0) as is_tracker
  from experiment_requests x join requests r on r.id = x.request_id
  left join trackers t on t.id = r.tracker_id
  left join companies c on c.id = t.company_id
)
select run_id, experiment_id, condition, run, 'company' as kind, company as item,
  count(*) as requests from x where is_tracker and company is not null
  group by run_id, company_id
union all
select run_id, experiment_id, condition, run, 'host', host, count(*) from x
  group by run_id, host
union all
select x.run_id, x.experiment_id, x.condition, x.run, 'data',
  coalesce(x.company, x.registrable_domain, x.host) || ': '
    || coalesce(g.words, replace(l.pii_type, '_', ' ')), count(distinct x.id)
  from x join leaks l on l.request_id = x.id
  left join glossary_words g on g.kind = 'pii' and g.key = l.pii_type
  group by x.run_id, 3, 6
union all
select x.run_id, x.experiment_id, x.condition, x.run, 'identifier',
  coalesce(i.label, i.kind) || ' → ' || coalesce(x.company, x.registrable_domain, x.host),
  count(distinct x.id)
  from x join leaks l on l.request_id = x.id join identities i on i.id = l.identity_id
  group by x.run_id, 6
union all
select x.run_id, x.experiment_id, x.condition, x.run, 'id',
  coalesce(x.company, x.registrable_domain, x.host), count(distinct x.id)
  from x join persistent_id_sightings s on s.request_id = x.id
  where x.is_tracker or x.is_third_party
  group by x.run_id, 6
"""

LEARNED_ITEMS_SQL = """
union all
select x.run_id, x.experiment_id, x.condition, x.run, 'data',
  coalesce(x.company, x.registrable_domain, x.host) || ': ' || d.property_words,
  count(distinct x.id)
  from x join learned d on d.request_id = x.id
  group by x.run_id, 6
"""

# Per run: how many requests, to trackers, to how many companies.
RUN_TOTALS_SQL = """
select er.id as run_id, er.experiment_id, e.name as experiment, er.condition, er.run,
  er.source, er.started_at, er.ended_at, er.banner, er.click_result, er.clicked_at,
  count(x.request_id) as requests,
  coalesce(sum(t.is_tracker), 0) as tracker_requests,
  count(distinct case when t.is_tracker then t.company_id end) as companies
from experiment_runs er join experiments e on e.id = er.experiment_id
left join experiment_requests x on x.run_id = er.id
left join requests r on r.id = x.request_id
left join trackers t on t.id = r.tracker_id
group by er.id
"""

VIEW_TABLES = {
    "experiments", "experiment_runs", "requests", "trackers", "companies", "leaks",
    "identities", "persistent_id_sightings", "glossary_words",
}  # fmt: skip


def ensure_views(db: Database) -> None:
    """(Re)create the experiment views; ``learned`` (#14) adds kinds of data when present."""
    tables = set(db.table_names())
    if not VIEW_TABLES <= tables:
        return
    items = ITEMS_SQL + (LEARNED_ITEMS_SQL if "learned" in tables | set(db.view_names()) else "")
    db.create_view("experiment_requests", REQUESTS_SQL.strip(), replace=True)
    db.create_view("experiment_items", items.strip(), replace=True)
    db.create_view("experiment_run_totals", RUN_TOTALS_SQL.strip(), replace=True)
    ensure_consent_view(db)


# -- comparison -------------------------------------------------------------------------


@dataclass
class Side:
    condition: str
    runs: list[dict[str, Any]]  # experiment_run_totals rows
    # kind -> item -> requests per run (0 where a run did not reach it), in run order
    items: dict[str, dict[str, list[int]]] = field(default_factory=dict)

    def seen(self, kind: str) -> set[str]:
        return set(self.items.get(kind, {}))

    def in_every_run(self, kind: str) -> set[str]:
        return {k for k, per in self.items.get(kind, {}).items() if all(per)}


@dataclass
class Comparison:
    experiment: str
    a: Side
    b: Side

    def only_a(self, kind: str) -> set[str]:
        return self.a.seen(kind) - self.b.seen(kind)

    def only_b(self, kind: str) -> set[str]:
        return self.b.seen(kind) - self.a.seen(kind)

    def both(self, kind: str) -> set[str]:
        return self.a.seen(kind) & self.b.seen(kind)

    def unsteady(self, kind: str) -> set[str]:
        """Items that some runs of a side reached and others did not: noise, not a finding."""
        return {
            k
            for side in (self.a, self.b)
            if len(side.runs) > 1
            for k, per in side.items.get(kind, {}).items()
            if not all(per)
        }

    def headline(self) -> str:
        return headline(self.b.condition, self.b)


def headline(condition: str, side: Side) -> str:
    """ "After you chose <condition>, N companies still received data from this site; K of
    them received an ID that follows you." Over the side's runs (a company counts when
    every run reached it; with one run, that run)."""
    runs = len(side.runs)
    if not runs:
        return f"Nothing was recorded for {condition!r}."
    companies = side.in_every_run("company")
    with_id = companies & side.in_every_run("id")
    some = side.seen("company") - companies
    after = _after(condition)
    text = (
        f"{after}, {len(companies)} {_plural(len(companies), 'company', 'companies')} "
        f"{'still ' if 'reject' in condition.lower() else ''}received data"
        f"{' in every run' if runs > 1 else ''}; {len(with_id)} of them received an ID "
        "that follows you."
    )
    if some:
        text += f" {len(some)} more did in some runs only ({runs} runs)."
    return text


def _after(condition: str) -> str:
    c = condition.lower()
    if "reject" in c:
        return "After you rejected cookies"
    if "accept" in c:
        return "After you accepted cookies"
    if "no choice" in c or c == "wait":
        return "Before you made any choice"
    return f"With {condition!r}"


def _plural(n: int, one: str, many: str) -> str:
    return one if n == 1 else many


def conditions(db: Database, name: str) -> list[str]:
    eid = _find(db, name)
    return [
        r["condition"]
        for r in db.query(
            "select condition from experiment_runs where experiment_id = ? "
            "group by condition order by min(id)",
            [eid],
        )
    ]


def _find(db: Database, name: str) -> int:
    row = list(db.query("select id from experiments where name = ?", [name]))
    if not row:
        known = [r["name"] for r in db.query("select name from experiments order by name")]
        raise ExperimentError(
            f"no experiment is called {name!r}"
            + (f" (there are: {', '.join(known)})" if known else " (there are none yet)")
        )
    return int(row[0]["id"])


def side(db: Database, name: str, condition: str) -> Side:
    eid = _find(db, name)
    runs = list(
        db.query(
            "select * from experiment_run_totals where experiment_id = ? and condition = ? "
            "order by run",
            [eid, condition],
        )
    )
    if not runs:
        raise ExperimentError(
            f"experiment {name!r} has no condition {condition!r} "
            f"(it has: {', '.join(conditions(db, name)) or 'none'})"
        )
    order = {r["run_id"]: i for i, r in enumerate(runs)}
    out = Side(condition, runs)
    for row in db.query(
        "select run_id, kind, item, requests from experiment_items "
        "where experiment_id = ? and condition = ?",
        [eid, condition],
    ):
        per = out.items.setdefault(row["kind"], {}).setdefault(row["item"], [0] * len(runs))
        per[order[row["run_id"]]] += int(row["requests"])
    return out


def compare(db: Database, name: str, a: str | None = None, b: str | None = None) -> Comparison:
    """Condition ``a`` against ``b`` (default: the first two conditions, in the order they
    were first recorded)."""
    known = conditions(db, name)
    if a is None or b is None:
        if len(known) < 2:
            raise ExperimentError(
                f"experiment {name!r} has {len(known)} condition(s); a comparison needs two"
            )
        a = a or (known[0] if known[0] != b else known[1])
        b = b or next(c for c in known if c != a)
    return Comparison(name, side(db, name, a), side(db, name, b))


# -- consent checks -----------------------------------------------------------------------

# Each consent-check request with its phase: before the banner was answered (or no answer
# was given), or after it.
CONSENT_PHASES_SQL = """
select x.run_id, x.experiment_id, x.condition, x.run, r.id as request_id, r.started_at,
  case when er.clicked_at is null or r.started_at < er.clicked_at then 'before choice'
    else 'after choice' end as phase,
  r.host, r.path, c.name as company, coalesce(t.is_tracker, 0) as is_tracker,
  case when instr(r.path, 'gcs=G1') then substr(r.path, instr(r.path, 'gcs=G1') + 4, 4) end
    as gcs,
  case when instr(r.path, 'gcd=') then substr(r.path, instr(r.path, 'gcd=') + 4, 12) end as gcd
from experiment_requests x join experiment_runs er on er.id = x.run_id
join requests r on r.id = x.request_id
left join trackers t on t.id = r.tracker_id
left join companies c on c.id = t.company_id
where er.source = 'consent-check'
"""


def ensure_consent_view(db: Database) -> None:
    if VIEW_TABLES <= set(db.table_names()):
        db.create_view("consent_phases", CONSENT_PHASES_SQL.strip(), replace=True)


def consent_report(db: Database, name: str) -> dict[str, Any]:
    """What a consent check found: trackers before any choice, still after "reject all",
    and whether the consent signals sent to vendors match the click."""
    from gazeback.knowledge.consent import consent_mode, says

    eid = _find(db, name)
    runs = list(
        db.query(
            "select * from experiment_runs where experiment_id = ? order by condition, run", [eid]
        )
    )
    rows = list(db.query("select * from consent_phases where experiment_id = ?", [eid]))
    before = sorted(
        {r["company"] for r in rows if r["is_tracker"] and r["company"]
         and r["phase"] == "before choice"}
    )  # fmt: skip
    handled = {r["id"] for r in runs if r["click_result"] == "done"}
    after_reject = sorted(
        {r["company"] for r in rows if r["is_tracker"] and r["company"]
         and r["phase"] == "after choice" and r["condition"] == "reject all"
         and r["run_id"] in handled}
    )  # fmt: skip
    signals: dict[str, dict[str, int]] = {}
    for r in rows:
        if r["phase"] != "after choice":
            continue
        found = consent_mode(r["path"] or "")
        if found:
            word = says(found)
            per = signals.setdefault(r["condition"], {})
            per[word] = per.get(word, 0) + 1
    mismatches = []
    reject = signals.get("reject all", {})
    if reject.get("granted"):
        mismatches.append(
            f"after “reject all”, {reject['granted']} requests told Google that consent was "
            "granted (Consent Mode gcs/gcd)"
        )
    for r in runs:
        if not r["tcf_summary"]:
            continue
        tcf = json.loads(r["tcf_summary"])
        if (
            r["condition"] == "reject all"
            and r["click_result"] == "done"
            and tcf.get("purposes_consented")
        ):
            mismatches.append(
                f"after “reject all” (run {r['run']}), the page's TCF consent string gives "
                f"consent to purposes {tcf['purposes_consented']}"
            )
        if (
            r["condition"] == "accept all"
            and r["click_result"] == "done"
            and not tcf.get("purposes_consented")
        ):
            mismatches.append(
                f"after “accept all” (run {r['run']}), the page's TCF consent string gives no consent"
            )
    return {
        "runs": runs,
        "fired_before_choice": before,
        "still_after_reject": after_reject,
        "consent_mode": signals,
        "mismatches": mismatches,
        "not_handled": sorted(
            {r["condition"] for r in runs if r["click_result"] == "banner not handled"}
        ),
    }
