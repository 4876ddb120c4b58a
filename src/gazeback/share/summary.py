"""`gazeback summary`: one page a person can share — who knows what about them, no values.

Safe by construction: the page is built only from the views' names and counts (companies,
owners, countries, kinds of personal data, apps); never from values, paths, hosts or
identity labels (a person may have typed their email as a label). First-party sites (what
the person browsed) appear only when they ask for them (``include_sites``). Identifiers that
link them across companies are shown by kind and number only ("your email address #1").
``scan`` then searches the rendered bytes for every registered identity in every form the
leak detector knows, as a last check before anything is written.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlite_utils import Database

from gazeback.db.glossary import COUNTRIES, PII
from gazeback.knowledge.apps import app_name
from gazeback.leaks.needles import Profile

TOP = 6  # companies, countries, apps shown at most (one printed page)
LINKING = 3  # identifiers that link you, shown at most
K_ROOM = 2  # a room summary shows only what at least this many participants share


@dataclass
class Summary:
    """What the page says; every field is a name or a count, never a value."""

    days: float | None
    device: str | None
    app: str | None = None
    devices: int = 0
    requests: int = 0
    tracker_requests: int = 0
    # name, owner, country, country_name, requests, learned: the top ones, and all of them
    companies: list[dict[str, Any]] = field(default_factory=list)
    companies_all: list[dict[str, Any]] = field(default_factory=list)
    company_count: int = 0
    owner_count: int = 0
    identifier_companies: int = 0  # companies that received a registered identifier
    app_count: int = 0
    learned: list[tuple[str, int]] = field(default_factory=list)  # words, companies
    countries: list[tuple[str, int]] = field(default_factory=list)  # country, companies
    linking: list[tuple[str, list[str]]] = field(default_factory=list)  # masked, companies
    apps: list[tuple[str, int, str]] = field(default_factory=list)  # app, companies, source
    sites: list[str] | None = None
    room: int | None = None  # participants, for a workshop room's summary
    first_at: str | None = None
    last_at: str | None = None

    @property
    def headline(self) -> str:
        if not self.requests:
            return "gazeback has not seen any traffic from your devices in this period yet."
        who = (
            "this room's devices" if self.room
            else "one of your devices" if self.devices == 1
            else f"{self.devices} of your devices"
        )  # fmt: skip
        if not self.company_count:
            return (f"{_cap(who)} sent {self.requests:,} requests, and none of them reached a "
                    "company that tracks people.")  # fmt: skip
        owners = (
            f", owned by {_plural(self.owner_count, 'parent company', 'parent companies')}"
            if self.owner_count < self.company_count
            else ""
        )
        told = sum(1 for c in self.companies_all if c["learned"])
        whom = "the participants or their devices" if self.room else "you or your device"
        said = (
            f"{_cap(who)} talked to {_plural(self.company_count, 'tracking company', 'tracking companies')}"
            f"{owners}. {told or 'None'} of them learned something about {whom}"
        )
        if self.room:
            return said + "."
        # the dashboard's sentence counts the same: companies that received a registered identifier
        mine = self.identifier_companies
        return said + (
            f"; your registered identifiers reached {mine}."
            if mine
            else "; none of your registered identifiers reached them."
        )


def _plural(n: int, one: str, many: str | None = None) -> str:
    return f"{n} {one if n == 1 else many or one + 's'}"


def _cap(s: str) -> str:
    return s[:1].upper() + s[1:]


def _where(
    device: str | None, since: str | None, app: str | None, alias: str = ""
) -> tuple[str, list[Any]]:
    p = f"{alias}." if alias else ""
    sql, args = "", []
    if since:
        sql += f" and {p}started_at >= ?"
        args.append(since)
    if device:
        sql += f" and {p}device = ?"
        args.append(device)
    if app:
        sql += f" and {p}app = ?"
        args.append(app)
    return sql, args


def collect(
    db: Database,
    *,
    device: str | None = None,
    days: float | None = 30,
    app: str | None = None,
    include_sites: bool = False,
    now: datetime | None = None,
    room: bool = False,
) -> Summary:
    """Read the summary from the ``trail`` and ``leak_report`` views.

    :param room: a workshop room's summary: companies, kinds of data and countries only
        when at least ``K_ROOM`` participants (devices) share them; no linking identifiers,
        no apps, no sites
    """
    since = None
    if days:
        since = ((now or datetime.now(UTC)) - timedelta(days=days)).strftime("%Y-%m-%dT%H:%M:%S")
    s = Summary(days=days, device=device, app=app)
    w, a = _where(device, since, app)
    row = db.execute(
        "select count(*), count(distinct device_id), coalesce(sum(is_tracker), 0), "
        f"min(started_at), max(started_at) from trail where 1=1 {w}", a
    ).fetchone()  # fmt: skip
    s.requests, s.devices, s.tracker_requests, s.first_at, s.last_at = row
    k = K_ROOM if room else 1
    if room:
        s.room = s.devices
    leaks_w, leaks_a = _where(device, since, None)
    if app:
        leaks_w += " and request_id in (select id from requests where app = ?)"
        leaks_a.append(app)
    learned: dict[str, set[str]] = {}
    reached: set[str] = set()  # companies a registered identifier reached
    for company, pii, devices in db.execute(
        "select company, pii_type, count(distinct device_id) from leak_report "
        f"where company is not null {leaks_w} group by company, pii_type", leaks_a
    ):  # fmt: skip
        if devices >= k:
            learned.setdefault(company, set()).add(pii)
            reached.add(company)
    if "learned" in db.view_names():  # what adapters decoded (issue #14): kinds, never values
        for company, words, devices in db.execute(
            "select company, property_words, count(distinct device_id) from learned "
            f"where company is not null {w} group by company, property_words", a
        ):  # fmt: skip
            if devices >= k and words:
                learned.setdefault(company, set()).add(str(words))
    companies = []
    for name, owner, country, n, devices in db.execute(
        # every request to a tracking company, as the dashboard's company charts count them
        "select company, owner, country, count(*), count(distinct device_id) from trail "
        f"where company is not null {w} group by company having max(is_tracker) = 1 "
        "order by count(*) desc, company", a
    ):  # fmt: skip
        if devices < k:
            continue
        companies.append({
            "name": name, "owner": owner or name, "country": country,
            "country_name": COUNTRIES.get(country or "", country or "unknown"), "requests": n,
            "learned": sorted({PII.get(p, p.replace("_", " ")) for p in learned.get(name, ())}),
        })  # fmt: skip
    s.companies_all = companies
    s.companies = companies[:TOP]
    s.company_count = len(companies)
    s.owner_count = len({c["owner"] for c in companies})
    s.identifier_companies = len(reached & {c["name"] for c in companies})
    kinds: dict[str, int] = {}
    for c in companies:
        for words in c["learned"]:
            kinds[words] = kinds.get(words, 0) + 1
    s.learned = sorted(kinds.items(), key=lambda x: (-x[1], x[0]))
    countries: dict[str, int] = {}
    for c in companies:
        countries[c["country_name"]] = countries.get(c["country_name"], 0) + 1
    s.countries = sorted(countries.items(), key=lambda x: (-x[1], x[0]))[:TOP]
    if room:
        return s
    s.linking = _linking(db, leaks_w, leaks_a)
    s.apps = _apps(db, w, a)
    s.app_count = db.execute(
        f"select count(distinct app) from trail where app is not null and is_tracker = 1 {w}", a
    ).fetchone()[0]
    if include_sites:
        s.sites = [
            r[0] for r in db.execute(
                "select registrable_domain from trail where is_tracker = 0 and kind = 'http'"
                f" and registrable_domain is not null {w} group by registrable_domain"
                f" order by count(*) desc limit {TOP}", a)
        ]  # fmt: skip
    return s


def _linking(db: Database, w: str, a: list[Any]) -> list[tuple[str, list[str]]]:
    """Identifiers sent to two companies or more, by kind and number only."""
    reached: dict[tuple[int, str], set[str]] = {}
    for ident, pii, company in db.execute(
        "select distinct coalesce(identity_id, -1), pii_type, company from leak_report "
        f"where company is not null {w}", a
    ):  # fmt: skip
        reached.setdefault((ident, pii), set()).add(company)
    out: list[tuple[str, list[str]]] = []
    numbers: dict[str, int] = {}
    for (_, pii), companies in sorted(reached.items(), key=lambda x: (-len(x[1]), x[0])):
        if len(companies) < 2:
            continue
        numbers[pii] = numbers.get(pii, 0) + 1
        out.append((f"{PII.get(pii, pii.replace('_', ' '))} #{numbers[pii]}", sorted(companies)))
    return out[:LINKING]


def _apps(db: Database, w: str, a: list[Any]) -> list[tuple[str, int, str]]:
    rows = db.execute(
        "select app, count(distinct company), group_concat(distinct app_source) from trail "
        f"where app is not null and is_tracker = 1 {w} group by app "
        f"order by count(distinct company) desc, app limit {TOP}", a
    ).fetchall()  # fmt: skip
    return [(app_name(r[0]) or r[0], r[1], "reported" if "reported" in r[2] else "inferred")
            for r in rows]  # fmt: skip


# --- the last check -----------------------------------------------------------------------


def forms(data: bytes) -> list[str]:
    """The texts a file's bytes can be read as (the verifier's G1 reads the same)."""
    return [data.decode("latin-1"), data.decode("utf-8", "replace"),
            data.decode("utf-16-le", "replace"), data[1:].decode("utf-16-le", "replace")]  # fmt: skip


def scan(data: bytes | str, profile: Profile, words: tuple[str, ...] = ()) -> list[str]:
    """Where ``data`` holds a registered identity (any needle form) or one of ``words``."""
    raw = data.encode() if isinstance(data, str) else data
    hits: list[str] = []
    for text in forms(raw):
        for automaton, t in ((profile.automaton, text), (profile.ci_automaton, text.lower())):
            if automaton is None:
                continue
            for end, (_, needles) in automaton.iter(t):
                n = needles[0]
                hits.append(f"identity {n.identity_id} ({n.pii_type}, {n.chain}) at {end}")
                break
        low = text.lower()
        hits += [f"{w!r}" for w in words if w and w.lower() in low]
    return sorted(set(hits))
