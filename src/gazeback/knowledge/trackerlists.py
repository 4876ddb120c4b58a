"""Tracker list parsers: ``parse_*(data: bytes) -> Layer`` per source, plus reading the artifact.

Each parser turns one upstream file into a :class:`Layer` of plain rows in the project's
vocabulary (category taxonomy, lower-case domains). Malformed input raises ``ValueError``
naming the file and the entry, so a broken update or build fails loudly and the previous
data stays in use. Merging the layers into one artifact lives in ``trackerbuild``.
"""

from __future__ import annotations

import gzip
import json
import re
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

CATEGORIES = (
    "advertising",
    "analytics",
    "audience_measurement",
    "social",
    "fingerprinting",
    "session_replay",
    "tag_manager",
    "consent",
    "customer_interaction",
    "cdn",
    "hosting",
    "first_party_service",
    "third_party_service",
    "other",
)
# third_party_service: payments, maps, translation, captcha — not tracking by default (a URL
# rule still marks a request that tracks).
NOT_TRACKERS = frozenset({"cdn", "hosting", "first_party_service", "third_party_service"})

# AdGuard companiesdb and whotracks.me share category ids and names.
WHOTRACKS_CATEGORIES = {
    "advertising": "advertising",
    "pornvertising": "advertising",
    "site_analytics": "analytics",
    "mobile_analytics": "analytics",
    "telemetry": "analytics",
    "social_media": "social",
    "customer_interaction": "customer_interaction",
    "comments": "customer_interaction",
    "consent": "consent",
    "cdn": "cdn",
    "hosting": "hosting",
    # "essential" mixes tag managers, consent tools and certificate authorities;
    # trackerbuild refines it with third-party-web's category for the same domains.
    "essential": "first_party_service",
    "misc": "first_party_service",  # mostly the sites themselves: amazon, apple, booking.com
    "audio_video_player": "first_party_service",
    "email": "first_party_service",  # webmail: gmail, outlook
    "extensions": "other",  # browser-extension adware
    "unknown": "other",
}
DISCONNECT_CATEGORIES = {
    "Advertising": "advertising",
    "Analytics": "analytics",
    "Social": "social",
    "Fingerprinting": "fingerprinting",
    "Cryptomining": "other",
    "Content": "first_party_service",
    "Disconnect": "social",  # Facebook, Google, Twitter: Firefox remaps these too
}
TPW_CATEGORIES = {
    "ad": "advertising",
    "marketing": "advertising",
    "analytics": "analytics",
    "social": "social",
    "tag-manager": "tag_manager",
    "consent-provider": "consent",
    "customer-success": "customer_interaction",
    "cdn": "cdn",
    "hosting": "hosting",
    "utility": "first_party_service",
    "content": "first_party_service",
    "video": "first_party_service",
    "other": "other",
}
BLACKLIGHT_USES = {
    "marketing": "advertising",
    "audience measurement": "audience_measurement",
    "social media": "social",
    "design optimization": "session_replay",
    "tag manager": "tag_manager",
    "compliance": "consent",
    "CRM": "customer_interaction",
    "content recommendation": "advertising",
    "hosting": "hosting",
    "code": "cdn",
    "font": "cdn",
    "video": "first_party_service",
    "security": "first_party_service",
    "location": "first_party_service",
}
_HOST = re.compile(r"^(?=.{1,253}$)[a-z0-9_]([a-z0-9_-]{0,62}\.)*[a-z0-9_-]{1,63}$")


@dataclass
class Layer:
    """Rows from one source: companies, trackers, domain → tracker id, and the source version."""

    source: str
    version: str
    companies: list[dict[str, Any]] = field(default_factory=list)
    trackers: list[dict[str, Any]] = field(default_factory=list)
    domains: list[tuple[str, str]] = field(default_factory=list)
    url_rules: list[str] = field(default_factory=list)
    # the overlay's dated ownership changes (see parse_overlay), applied last by the merge
    ownership_changes: list[dict[str, Any]] = field(default_factory=list)


def slug(name: str) -> str:
    """``"Google/Doubleclick Ads"`` → ``"google_doubleclick_ads"``."""
    return re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_") or "unnamed"


def country_code(value: Any) -> str | None:
    """Upper-case ISO 3166-1 alpha-2; ``UK`` → ``GB``; anything else → None."""
    if not isinstance(value, str) or not re.fullmatch(r"[A-Za-z]{2}", value.strip()):
        return None
    code = value.strip().upper()
    return "GB" if code == "UK" else code


def check_domain(domain: Any, where: str) -> str:
    """A lower-case host name, or ValueError naming ``where``."""
    if not isinstance(domain, str):
        raise ValueError(f"{where}: domain {domain!r} is not a string")
    d = domain.strip().lower().rstrip(".")
    if not _HOST.match(d):
        raise ValueError(f"{where}: {domain!r} is not a host name")
    return d


def _json(data: bytes, file: str) -> Any:
    try:
        return json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValueError(f"{file}: not valid JSON ({e})") from None


def _need(obj: Any, kind: type, where: str) -> Any:
    if not isinstance(obj, kind):
        raise ValueError(f"{where}: expected a JSON {kind.__name__}, got {type(obj).__name__}")
    return obj


def parse_adguard_trackers(data: bytes) -> Layer:
    """AdGuard companiesdb ``dist/trackers.json``: trackers and domains."""
    file = "adguard-companiesdb/trackers.json"
    doc = _need(_json(data, file), dict, file)
    cats = _need(doc.get("categories"), dict, f"{file} categories")
    trackers = _need(doc.get("trackers"), dict, f"{file} trackers")
    domains = _need(doc.get("trackerDomains"), dict, f"{file} trackerDomains")
    if len(domains) < 1000:
        raise ValueError(
            f"{file}: only {len(domains)} tracker domains, expected thousands (truncated?)"
        )
    layer = Layer("adguard", str(doc.get("timeUpdated", ""))[:10] or "unknown")
    for tid, t in sorted(trackers.items()):
        where = f"{file} tracker {tid!r}"
        if not isinstance(t, dict) or not isinstance(t.get("name"), str):
            raise ValueError(f"{where}: missing name")
        cat = cats.get(str(t.get("categoryId")))
        if cat not in WHOTRACKS_CATEGORIES:
            raise ValueError(f"{where}: unknown categoryId {t.get('categoryId')!r}")
        layer.trackers.append(
            {
                "id": tid,
                "name": t["name"],
                "company_id": t.get("companyId") or None,
                "category": WHOTRACKS_CATEGORIES[cat],
                "upstream_category": cat,
                "website_url": t.get("url") or None,
            }
        )
    for domain, tid in sorted(domains.items()):
        where = f"{file} trackerDomains {domain!r}"
        if tid not in trackers:
            raise ValueError(f"{where}: tracker {tid!r} is not defined")
        layer.domains.append((check_domain(domain, where), tid))
    return layer


def parse_adguard_companies(data: bytes) -> Layer:
    """AdGuard companiesdb ``dist/companies.json``: companies (no country)."""
    file = "adguard-companiesdb/companies.json"
    doc = _need(_json(data, file), dict, file)
    companies = _need(doc.get("companies"), dict, f"{file} companies")
    if len(companies) < 1000:
        raise ValueError(
            f"{file}: only {len(companies)} companies, expected thousands (truncated?)"
        )
    layer = Layer("adguard", str(doc.get("timeUpdated", ""))[:10] or "unknown")
    for cid, c in sorted(companies.items()):
        if not isinstance(c, dict) or not isinstance(c.get("name"), str):
            raise ValueError(f"{file} company {cid!r}: missing name")
        layer.companies.append(
            {"id": cid, "name": c["name"], "website_url": c.get("websiteUrl") or None}
        )
    return layer


def parse_whotracksme(data: bytes) -> Layer:
    """whotracks.me ``trackerdb.sql`` (SQLite dump of 2022-08-02): companies with country."""
    file = "whotracksme-2022/trackerdb.sql"
    db = sqlite3.connect(":memory:")
    try:
        db.executescript(data.decode("utf-8"))
        cats = dict(db.execute("select id, name from categories"))
        companies = db.execute(
            "select id, name, website_url, privacy_url, country from companies order by id"
        ).fetchall()
        trackers = db.execute(
            "select id, name, category_id, company_id, website_url from trackers order by id"
        ).fetchall()
        domains = db.execute(
            "select domain, tracker from tracker_domains order by domain"
        ).fetchall()
    except (sqlite3.Error, UnicodeDecodeError) as e:
        raise ValueError(f"{file}: cannot load the SQL dump ({e})") from None
    finally:
        db.close()
    layer = Layer("whotracksme", "2022-08-02")
    for cid, name, site, privacy, country in companies:
        layer.companies.append(
            {
                "id": cid,
                "name": name,
                "website_url": site or None,
                "privacy_policy_url": privacy or None,
                "country": country_code(country),
            }
        )
    ids = set()
    for tid, name, cat_id, company_id, site in trackers:
        cat = cats.get(cat_id, "unknown")
        if cat not in WHOTRACKS_CATEGORIES:
            raise ValueError(f"{file} tracker {tid!r}: unknown category {cat!r}")
        ids.add(tid)
        layer.trackers.append(
            {
                "id": tid,
                "name": name,
                "company_id": company_id or None,
                "category": WHOTRACKS_CATEGORIES[cat],
                "upstream_category": cat,
                "website_url": site or None,
            }
        )
    for domain, tid in domains:
        where = f"{file} tracker_domains {domain!r}"
        if tid not in ids:
            raise ValueError(f"{where}: tracker {tid!r} is not defined")
        layer.domains.append((check_domain(domain, where), tid))
    return layer


def parse_third_party_web(data: bytes) -> Layer:
    """third-party-web ``entities-nostats.json``: entity → tracker, ``company`` or name → company."""
    file = "third-party-web/entities-nostats.json"
    doc = _need(_json(data, file), list, file)
    if len(doc) < 500:
        raise ValueError(f"{file}: only {len(doc)} entities, expected thousands (truncated?)")
    layer = Layer("third-party-web", "unknown")
    for i, e in enumerate(doc):
        where = f"{file} entity #{i}"
        if not isinstance(e, dict) or not isinstance(e.get("name"), str):
            raise ValueError(f"{where}: missing name")
        where = f"{file} entity {e['name']!r}"
        if e.get("category") not in TPW_CATEGORIES:
            raise ValueError(f"{where}: unknown category {e.get('category')!r}")
        company = e.get("company") or e["name"]
        tid = slug(e["name"])
        layer.companies.append({"id": slug(company), "name": company})
        layer.trackers.append(
            {
                "id": tid,
                "name": e["name"],
                "company_id": slug(company),
                "category": TPW_CATEGORIES[e["category"]],
                "upstream_category": e["category"],
                "website_url": e.get("homepage") or None,
            }
        )
        for pattern in _need(e.get("domains"), list, f"{where} domains"):
            if not isinstance(pattern, str):
                raise ValueError(f"{where}: domain pattern {pattern!r} is not a string")
            layer.domains.append((check_domain(pattern.removeprefix("*."), where), tid))
    return layer


def parse_disconnect(services: bytes, entities: bytes) -> Layer:
    """Disconnect ``services.json`` + ``entities.json`` (last GPL release, 2020-06-17)."""
    sfile, efile = "disconnect-2020-gpl/services.json", "disconnect-2020-gpl/entities.json"
    doc = _need(_json(services, sfile), dict, sfile)
    ents = _need(_json(entities, efile), dict, efile)
    ents = ents.get("entities", ents)
    owner: dict[str, str] = {}
    for name, e in sorted(ents.items()):
        if not isinstance(e, dict):
            raise ValueError(f"{efile} entity {name!r}: expected an object")
        for d in e.get("resources", []) + e.get("properties", []):
            owner.setdefault(check_domain(d, f"{efile} entity {name!r}"), name)
    layer = Layer("disconnect", "2020-06-17")
    for cat, services_ in sorted(_need(doc.get("categories"), dict, sfile).items()):
        if cat not in DISCONNECT_CATEGORIES:
            continue  # e.g. "Email" in later releases: not part of this snapshot's taxonomy
        for entry in _need(services_, list, f"{sfile} {cat}"):
            for name, body in _need(entry, dict, f"{sfile} {cat} entry").items():
                where = f"{sfile} {cat} service {name!r}"
                category = DISCONNECT_CATEGORIES[cat]
                if _need(body, dict, where).get("session-replay") == "true":
                    category = "session_replay"
                for url, domains in body.items():
                    if not isinstance(domains, list):
                        continue  # flags such as "dnt": "eff"
                    # a few entries are URL prefixes ("yandex.ru/clck/click"): host-only here
                    ds = [check_domain(d, where) for d in domains if "/" not in str(d)]
                    company = next((owner[d] for d in ds if d in owner), name)
                    tid = slug(name)
                    layer.companies.append({"id": slug(company), "name": company})
                    layer.trackers.append(
                        {
                            "id": tid,
                            "name": name,
                            "company_id": slug(company),
                            "category": category,
                            "upstream_category": cat,
                            "website_url": url,
                        }
                    )
                    layer.domains.extend((d, tid) for d in ds)
    return layer


def parse_webxray(data: bytes, source: str = "webxray") -> Layer:
    """webXray ``domain_owners.json`` (or Blacklight's copy): owners with parent chain and country."""
    file = f"{source}/domain_owners.json"
    doc = _need(_json(data, file), list, file)
    by_id = {o.get("id"): o for o in doc if isinstance(o, dict)}
    layer = Layer(source, "2020-02-24" if source == "webxray" else "2019-12-18")
    for o in doc:
        where = f"{file} owner {o.get('id') if isinstance(o, dict) else o!r}"
        if not isinstance(o, dict) or not isinstance(o.get("owner_name"), str):
            raise ValueError(f"{where}: missing owner_name")
        parent = by_id.get(o.get("parent_id")) if o.get("parent_id") is not None else None
        if o.get("parent_id") is not None and parent is None:
            raise ValueError(f"{where}: parent_id {o['parent_id']!r} is not defined")
        cid = slug(o["owner_name"])
        uses = [BLACKLIGHT_USES[u] for u in o.get("uses") or [] if u in BLACKLIGHT_USES]
        layer.companies.append(
            {
                "id": cid,
                "name": o["owner_name"],
                "aliases": [a for a in o.get("aliases") or [] if isinstance(a, str)],
                "parent_id": slug(parent["owner_name"]) if parent else None,
                "country": country_code(o.get("country")),
                "website_url": o.get("homepage_url") or None,
                "privacy_policy_url": o.get("privacy_policy_url") or None,
            }
        )
        if o.get("domains"):
            layer.trackers.append(
                {
                    "id": cid,
                    "name": o["owner_name"],
                    "company_id": cid,
                    "category": uses[0] if uses else "other",
                    "upstream_category": ",".join(o.get("uses") or []) or None,
                    "website_url": o.get("homepage_url") or None,
                }
            )
        for d in o.get("domains") or []:
            layer.domains.append((check_domain(d, where), cid))
    return layer


def parse_filter_list(data: bytes, source: str) -> Layer:
    """EasyPrivacy / EasyList (Adblock Plus syntax): plain ``||host^`` rules become domains,
    every other network rule is kept for the URL-rule engine."""
    file = f"easylist/{source}.txt"
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ValueError(f"{file}: not UTF-8 text ({e})") from None
    lines = text.splitlines()
    if not lines or not lines[0].startswith("[Adblock Plus"):
        raise ValueError(f"{file}: line 1: missing the [Adblock Plus …] header")
    m = re.search(r"^! Last modified: \w+, (\d+) (\w+) (\d{4})", text, re.M)
    months = "Jan Feb Mar Apr May Jun Jul Aug Sep Oct Nov Dec".split()
    version = f"{m[3]}-{months.index(m[2]) + 1:02d}-{int(m[1]):02d}" if m else "unknown"
    layer = Layer(source, version)
    for n, line in enumerate(lines, 1):
        line = line.strip()
        if not line or line.startswith(("!", "[")) or "#" in line.split("$", 1)[0]:
            continue  # comments, headers, cosmetic rules
        dm = re.fullmatch(r"\|\|([a-z0-9._-]+)\^(\$(third-party|3p))?", line)
        if dm:
            layer.domains.append((check_domain(dm[1], f"{file} line {n}"), source))
        else:
            layer.url_rules.append(line)
    if len(layer.domains) < 1000:
        raise ValueError(f"{file}: only {len(layer.domains)} domain rules (truncated?)")
    return layer


def parse_overlay(data: bytes) -> Layer:
    """The project-authored overlay: corrections and vendors the lists lack, each with a source."""
    file = "gazeback-overlay/overlay.json"
    doc = _need(_json(data, file), dict, file)
    layer = Layer("gazeback-overlay", str(doc.get("version", "unknown")))
    for kind in ("companies", "trackers"):
        for i, row in enumerate(_need(doc.get(kind, []), list, f"{file} {kind}")):
            where = f"{file} {kind} #{i} {row.get('id') if isinstance(row, dict) else row!r}"
            if not isinstance(row, dict) or not isinstance(row.get("id"), str):
                raise ValueError(f"{where}: missing id")
            if not str(row.get("source_url", "")).startswith("https://"):
                raise ValueError(f"{where}: every overlay entry needs a public https source_url")
            if kind == "trackers":
                if row.get("category") not in CATEGORIES:
                    raise ValueError(f"{where}: category {row.get('category')!r} not in taxonomy")
                for d in row.get("domains", []):
                    layer.domains.append((check_domain(d, where), row["id"]))
                row = {k: v for k, v in row.items() if k != "domains"}
            elif "country" in row:
                row = {**row, "country": country_code(row["country"])}
            getattr(layer, kind).append(row)
    aliases = _need(doc.get("aliases", {}), dict, f"{file} aliases")
    layer.companies.extend({"id": cid, "aliases": [name]} for name, cid in sorted(aliases.items()))
    changes = _need(doc.get("ownership_changes", []), list, f"{file} ownership_changes")
    for i, row in enumerate(changes):
        layer.ownership_changes.append(_ownership_change(row, f"{file} ownership_changes #{i}"))
    return layer


_DATE = re.compile(r"\d{4}(-\d{2}(-\d{2})?)?")


def _ownership_change(row: Any, where: str) -> dict[str, Any]:
    """One dated ownership change: who now holds ``company`` (``to``; None: nobody above it)."""
    if not isinstance(row, dict) or not isinstance(row.get("company"), str):
        raise ValueError(f"{where}: missing company")
    where = f"{where} {row['company']}"
    if not str(row.get("source_url", "")).startswith("https://"):
        raise ValueError(f"{where}: every ownership change needs a public https source_url")
    if not isinstance(row.get("date"), str) or not _DATE.fullmatch(row["date"]):
        raise ValueError(f"{where}: date must be YYYY, YYYY-MM or YYYY-MM-DD")
    for key in ("from", "to"):
        if row.get(key) is not None and not isinstance(row[key], str):
            raise ValueError(f"{where}: {key} must be a company id or null")
    if not isinstance(row.get("trackers", []), list):
        raise ValueError(f"{where}: trackers must be a list of tracker ids")
    if "country" in row:
        row = {**row, "country": country_code(row["country"])}
    return dict(row)


def read_artifact(path: Path) -> dict[str, Any]:
    """Read a ``trackers.json.gz`` artifact, checking its shape."""
    try:
        doc = json.loads(gzip.decompress(path.read_bytes()))
    except (OSError, EOFError, ValueError) as e:
        raise ValueError(f"{path}: cannot read tracker artifact ({e})") from None
    for key in ("format", "sources", "companies", "trackers", "domains"):
        if key not in doc:
            raise ValueError(f"{path}: tracker artifact lacks {key!r}")
    if doc["format"] != 1:
        raise ValueError(f"{path}: tracker artifact format {doc['format']!r} is not supported")
    return dict(doc)


def bundled_path() -> Path:
    """The artifact shipped in the package."""
    return Path(__file__).parent.parent / "data" / "trackers.json.gz"


def sources_path() -> Path:
    """The raw sources shipped in the package (for ``trackers update``)."""
    return Path(__file__).parent.parent / "data" / "trackers-sources.json.gz"


def user_dir() -> Path:
    """Where ``trackers update`` keeps its copy: ``$XDG_DATA_HOME/gazeback/trackers``."""
    import os

    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "gazeback" / "trackers"
