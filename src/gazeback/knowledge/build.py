"""Merge parsed tracker-list layers into one deterministic artifact (``trackers.json.gz``).

Precedence (first source that knows a domain wins): the project overlay, AdGuard companiesdb,
whotracks.me 2022, third-party-web, Disconnect 2020, Blacklight/webXray owners, then the plain
``||host^`` rules of EasyPrivacy and EasyList. Company identity is reconciled by normalised
name; parent chains and countries come from webXray. Same layers in → same bytes out.
"""

from __future__ import annotations

import gzip
import json
import re
import zlib
from collections import defaultdict
from typing import Any

from gazeback.knowledge.trackerlists import NOT_TRACKERS, Layer, slug

PRECEDENCE = (
    "gazeback-overlay",
    "adguard",
    "whotracksme",
    "third-party-web",
    "disconnect",
    "blacklight",
    "webxray",
    "easyprivacy",
    "easylist",
)
ID_KEYED = ("gazeback-overlay", "adguard", "whotracksme")
FILTER_LISTS = {"easyprivacy": "analytics", "easylist": "advertising"}
# Field-specific precedence where one source is known to be better (countries: webXray).
FIELD_ORDER = {
    "country": ("gazeback-overlay", "blacklight", "webxray", "whotracksme"),
    "parent_id": ("gazeback-overlay", "blacklight", "webxray"),
    "privacy_policy_url": ("gazeback-overlay", "whotracksme", "blacklight", "webxray"),
}
COMPANY_FIELDS = ("name", "parent_id", "country", "website_url", "privacy_policy_url")
TRACKER_FIELDS = ("name", "company_id", "category", "website_url")

SOURCES: dict[str, dict[str, str]] = {
    "gazeback-overlay": {
        "name": "gazeback overlay (project-authored corrections, session replay vendors)",
        "licence": "GPL-3.0-or-later",
        "attribution": "The gazeback developers; every entry cites a public source",
        "url": "data/trackers-src/gazeback-overlay/overlay.json",
    },
    "adguard": {
        "name": "AdGuard companiesdb",
        "licence": "CC-BY-SA-4.0",
        "attribution": "AdGuard companiesdb (AdGuard Software Ltd), CC BY-SA 4.0",
        "url": "https://github.com/AdguardTeam/companiesdb",
    },
    "whotracksme": {
        "name": "WhoTracks.Me trackerdb (2022-08-02)",
        "licence": "CC-BY-4.0",
        "attribution": "WhoTracks.Me (Cliqz GmbH / Ghostery GmbH), CC BY 4.0",
        "url": "https://github.com/whotracksme/whotracks.me",
    },
    "third-party-web": {
        "name": "third-party-web",
        "licence": "MIT",
        "attribution": "third-party-web, Copyright (c) 2019 Patrick Hulce, MIT",
        "url": "https://github.com/patrickhulce/third-party-web",
    },
    "disconnect": {
        "name": "Disconnect tracking protection (2020-06-17, last GPL release)",
        "licence": "GPL-3.0-or-later",
        "attribution": "Copyright 2010-2019 Disconnect, Inc., GPL-3.0-or-later",
        "url": "https://github.com/disconnectme/disconnect-tracking-protection",
    },
    "blacklight": {
        "name": "webXray domain owners via The Markup's Blacklight",
        "licence": "GPL-3.0",
        "attribution": "webXray (Timothy Libert) via The Markup's Blacklight, GPL-3.0",
        "url": "https://github.com/the-markup/blacklight-collector",
    },
    "webxray": {
        "name": "webXray domain owners (2020-02-24, last GPL release)",
        "licence": "GPL-3.0",
        "attribution": "webXray (Timothy Libert), GPL-3.0",
        "url": "https://github.com/timlibert/webXray",
    },
    "easyprivacy": {
        "name": "EasyPrivacy",
        "licence": "GPL-3.0-or-later OR CC-BY-SA-3.0+ (used under GPL-3.0-or-later)",
        "attribution": "The EasyList authors (https://easylist.to/)",
        "url": "https://easylist.to/",
    },
    "easylist": {
        "name": "EasyList",
        "licence": "GPL-3.0-or-later OR CC-BY-SA-3.0+ (used under GPL-3.0-or-later)",
        "attribution": "The EasyList authors (https://easylist.to/)",
        "url": "https://easylist.to/",
    },
}
_LEGAL = re.compile(
    r"_(inc|llc|ltd|limited|gmbh|corp|corporation|co|sa|sas|ag|plc|bv|ab|oy|srl|spa|pty|kk)$"
)
_CONSENT = re.compile(r"consent|cookie|trustarc|truste|onetrust|optanon|didomi|iubenda|evidon")
_TAGS = re.compile(r"tag_?man|tealium|ensighten|tag_commander|supertag|relay42|dynamic_tag")


def norm_name(name: str) -> str:
    """Company name key: slug without legal suffixes ("Google LLC" → "google")."""
    key = slug(name)
    while (shorter := _LEGAL.sub("", key)) != key:
        key = shorter
    return key


def _ordered(layers: dict[str, Layer], fieldname: str | None = None) -> list[Layer]:
    order = FIELD_ORDER.get(fieldname or "", PRECEDENCE)
    return [layers[s] for s in order if s in layers]


def merge(layers: dict[str, Layer]) -> dict[str, Any]:
    """Merge layers (keyed by source) into the artifact document."""
    # 1. Company identity: id-keyed sources define ids; the others resolve by name.
    names: dict[str, str] = {}
    cmap: dict[tuple[str, str], str] = {}  # (source, source's company id) → merged id
    known: dict[str, str] = {}  # domain → company id, from the id-keyed sources
    for layer in _ordered(layers):
        id_keyed = layer.source in ID_KEYED
        owned = _company_domains(layer)
        for c in layer.companies:
            key = (layer.source, c["id"])
            if key in cmap:
                continue
            if id_keyed:
                cid = c["id"]
            else:
                keys = [norm_name(n) for n in [c.get("name") or c["id"], *c.get("aliases", [])]]
                # By domain only for sources without a parent chain: a webXray owner that
                # AdGuard files under its later acquirer would hand that acquirer its old parent.
                guess = layer.source in ("third-party-web", "disconnect")
                by_domain = (_walk(known, d) for d in owned.get(c["id"], []) if guess)
                cid = next((names[k] for k in keys if k in names), None) or ""
                if not cid:
                    cid = next((x for x in by_domain if x), "")
                    if cid:  # a guess: do not let other sources' names resolve to it
                        cmap[key] = cid
                        continue
                    cid = c["id"]
            cmap[key] = cid
            for n in [c["id"], c.get("name") or "", *c.get("aliases", [])]:
                if n:
                    names.setdefault(norm_name(n), cid)
        if id_keyed:
            company_of: dict[str, str] = {
                t["id"]: t["company_id"] for t in layer.trackers if t.get("company_id")
            }
            for d, tid in layer.domains:
                if tid in company_of:
                    cid = company_of[tid]
                    known.setdefault(d, cmap.get((layer.source, cid), cid))
    companies: dict[str, dict[str, Any]] = defaultdict(dict)
    company_sources: dict[str, set[str]] = defaultdict(set)
    for fieldname in COMPANY_FIELDS:
        for layer in _ordered(layers, fieldname):
            for c in layer.companies:
                if set(c) <= {"id", "aliases"}:
                    continue  # an overlay alias, not a statement about the company
                cid = cmap[(layer.source, c["id"])]
                company_sources[cid].add(layer.source)
                value = c.get(fieldname)
                if fieldname == "parent_id" and value:
                    value = cmap.get((layer.source, value), value)
                if value and fieldname not in companies[cid] and value != cid:
                    companies[cid][fieldname] = value

    # 2. Trackers: the first source defining an id wins; name-keyed ones reuse an equal id.
    trackers: dict[str, dict[str, Any]] = {}
    tmap: dict[tuple[str, str], str] = {}
    for layer in _ordered(layers):
        for t in layer.trackers:
            tid = t["id"]
            tmap[(layer.source, tid)] = tid
            row = trackers.setdefault(tid, {})
            for fieldname in TRACKER_FIELDS:
                value = t.get(fieldname)
                if fieldname == "company_id" and value:
                    value = cmap.get((layer.source, value), value)
                if value and fieldname not in row:
                    row[fieldname] = value
            if "upstream" not in row:
                row["upstream"] = (layer.source, t.get("upstream_category"))

    # 3. Domains: the first source in precedence order wins.
    domains: dict[str, tuple[str, str]] = {}
    filter_domains: dict[str, list[str]] = {}
    for layer in _ordered(layers):
        if layer.source in FILTER_LISTS:
            fresh = sorted({d for d, _ in layer.domains if d not in domains})
            filter_domains[layer.source] = fresh
            domains.update((d, ("", layer.source)) for d in fresh)
            continue
        for d, tid in layer.domains:
            domains.setdefault(d, (tmap[(layer.source, tid)], layer.source))
    tracker_sources: dict[str, set[str]] = defaultdict(set)
    by_tracker: dict[str, list[str]] = defaultdict(list)
    for layer in _ordered(layers):
        for d, _ in layer.domains:
            tid = domains[d][0]
            if tid:
                tracker_sources[tid].add(layer.source)
    for d, (tid, _) in domains.items():
        if tid:
            by_tracker[tid].append(d)

    # 4a. The overlay's dated ownership changes, oldest first: who holds each company now.
    changes = sorted(
        (c for layer in _ordered(layers) for c in layer.ownership_changes),
        key=lambda c: (c["date"], c["company"]),
    )
    for change in changes:
        _apply_change(change, companies, company_sources, trackers)

    # 4. Refine AdGuard/whotracks "essential" (tag managers, consent tools, CAs).
    tpw = (
        {d: t for d, t in layers["third-party-web"].domains} if "third-party-web" in layers else {}
    )
    tpw_cat = {
        t["id"]: t["category"] for t in getattr(layers.get("third-party-web"), "trackers", [])
    }
    for tid, row in trackers.items():
        if row["upstream"][1] != "essential":
            continue
        hits = {tpw_cat.get(tpw.get(d, ""), "") for d in by_tracker.get(tid, [])}
        if "tag_manager" in hits or _TAGS.search(tid):
            row["category"] = "tag_manager"
        elif "consent" in hits or _CONSENT.search(tid):
            row["category"] = "consent"

    # 5. Keep what is used, resolve owners, serialise.
    used = sorted(by_tracker)
    out_trackers = {
        tid: {
            "name": trackers[tid].get("name", tid),
            "company_id": trackers[tid].get("company_id"),
            "category": trackers[tid].get("category", "other"),
            "is_tracker": trackers[tid].get("category", "other") not in NOT_TRACKERS,
            "website_url": trackers[tid].get("website_url"),
            "sources": sorted(tracker_sources[tid], key=PRECEDENCE.index),
        }
        for tid in used
    }
    keep: set[str] = set()
    for t in out_trackers.values():
        cid = t["company_id"]
        while cid and cid not in keep:
            keep.add(cid)
            cid = companies.get(cid, {}).get("parent_id")
    out_companies = {}
    for cid in sorted(keep):
        c = companies.get(cid, {})
        out_companies[cid] = {
            "name": c.get("name", cid),
            "parent_id": c.get("parent_id"),
            "owner_id": owner_of(cid, companies),
            "country": c.get("country"),
            "website_url": c.get("website_url"),
            "privacy_policy_url": c.get("privacy_policy_url"),
            "sources": sorted(company_sources[cid], key=PRECEDENCE.index),
        }
        if c.get("history"):
            out_companies[cid]["history"] = c["history"]
    return {
        "format": 1,
        "sources": {
            s: {**SOURCES[s], "version": layers[s].version} for s in PRECEDENCE if s in layers
        },
        "companies": out_companies,
        "trackers": out_trackers,
        "domains": {d: list(v) for d, v in sorted(domains.items()) if v[0]},
        "filter_domains": filter_domains,
        "url_rules": {s: layers[s].url_rules for s in FILTER_LISTS if s in layers},
    }


def _apply_change(
    change: dict[str, Any],
    companies: dict[str, dict[str, Any]],
    company_sources: dict[str, set[str]],
    trackers: dict[str, dict[str, Any]],
) -> None:
    """Re-attribute ``change["trackers"]`` to ``change["company"]``, re-parent it, note history."""
    cid = change["company"]
    row = companies[cid]
    for key in ("name", "country", "website_url"):
        if change.get(key):
            row[key] = change[key]
    company_sources[cid].add("gazeback-overlay")
    previous = change.get("from") or row.get("parent_id")
    for tid in change.get("trackers", []):
        if tid not in trackers:
            raise ValueError(
                f"gazeback-overlay/overlay.json ownership change {cid}: tracker {tid!r} is in no list"
            )
        trackers[tid]["company_id"] = cid
    if cid not in companies or not row.get("name") and not change.get("trackers"):
        raise ValueError(f"gazeback-overlay/overlay.json ownership change {cid}: unknown company")
    target = change.get("to")
    if target:
        companies[target].setdefault("name", change.get("to_name") or target)
        company_sources[target].add("gazeback-overlay")
        row["parent_id"] = target
    else:
        row.pop("parent_id", None)
    row.setdefault("history", []).append(
        {
            "date": change["date"],
            "date_is_as_of": bool(change.get("date_is_as_of")),
            "previous_owner": companies.get(previous, {}).get("name", previous)
            if previous
            else None,
            "owner": companies[target]["name"] if target else None,
            "event": change.get("event", ""),
            "source_url": change["source_url"],
        }
    )


def _company_domains(layer: Layer) -> dict[str, list[str]]:
    tracker_company = {t["id"]: t.get("company_id") for t in layer.trackers}
    owned: dict[str, list[str]] = defaultdict(list)
    for d, tid in layer.domains:
        cid = tracker_company.get(tid)
        if cid:
            owned[cid].append(d)
    return owned


def _walk(known: dict[str, str], host: str) -> str | None:
    labels = host.split(".")
    for i in range(len(labels) - 1):
        hit = known.get(".".join(labels[i:]))
        if hit:
            return hit
    return None


def owner_of(cid: str, companies: dict[str, dict[str, Any]]) -> str:
    """Top of the parent chain (DoubleClick → Google → Alphabet), cycle-safe."""
    seen = [cid]
    while (parent := companies.get(seen[-1], {}).get("parent_id")) and parent not in seen:
        seen.append(parent)
    return seen[-1]


def serialise(doc: dict[str, Any]) -> bytes:
    """Deterministic gzip of the JSON document (sorted keys, no timestamp).

    zlib writes the gzip header itself (mtime 0, OS byte of this platform): the same bytes on
    every Python. ``gzip.compress`` does not: from Python 3.13 its header says OS "unknown".
    """
    raw = json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return zlib.compress(raw.encode("utf-8"), 9, wbits=31)  # 31: a gzip wrapper


RAW_FILES: dict[str, tuple[str, ...]] = {
    "gazeback-overlay": ("gazeback-overlay/overlay.json",),
    "adguard": ("adguard-companiesdb/trackers.json", "adguard-companiesdb/companies.json"),
    "whotracksme": ("whotracksme-2022/trackerdb.sql",),
    "third-party-web": ("third-party-web/entities-nostats.json", "third-party-web/VERSION"),
    "disconnect": ("disconnect-2020-gpl/services.json", "disconnect-2020-gpl/entities.json"),
    "blacklight": ("blacklight-webxray-owners/domain_owners.json",),
    "webxray": ("webxray-2020-gpl/domain_owners.json",),
    "easyprivacy": ("easylist/easyprivacy.txt",),
    "easylist": ("easylist/easylist.txt",),
}
# Sources with a live, redistributable upstream; the others are frozen snapshots.
UPDATABLE = ("adguard", "third-party-web", "easyprivacy", "easylist")


def parse_source(source: str, files: dict[str, bytes]) -> Layer:
    """Parse one source from its raw files (keyed by the paths in ``RAW_FILES``)."""
    from gazeback.knowledge import trackerlists as tl

    f = [files[p] for p in RAW_FILES[source]]
    if source == "adguard":
        layer = tl.parse_adguard_trackers(f[0])
        layer.companies = tl.parse_adguard_companies(f[1]).companies
        return layer
    if source == "third-party-web":
        layer = tl.parse_third_party_web(f[0])
        layer.version = f[1].decode("ascii", "replace").strip() or "unknown"
        return layer
    if source == "disconnect":
        return tl.parse_disconnect(f[0], f[1])
    if source in ("blacklight", "webxray"):
        return tl.parse_webxray(f[0], source)
    if source in FILTER_LISTS:
        return tl.parse_filter_list(f[0], source)
    if source == "whotracksme":
        return tl.parse_whotracksme(f[0])
    return tl.parse_overlay(f[0])


def build(files: dict[str, bytes]) -> bytes:
    """Raw source files → artifact bytes (deterministic)."""
    return serialise(merge({s: parse_source(s, files) for s in RAW_FILES}))


def sources_bundle(files: dict[str, bytes]) -> bytes:
    """Every raw source file, shipped so ``trackers update`` can rebuild with what it did not fetch."""
    return serialise({p: files[p].decode("utf-8") for ps in RAW_FILES.values() for p in ps})


def read_sources_bundle(data: bytes) -> dict[str, bytes]:
    """Inverse of :func:`sources_bundle`."""
    try:
        doc = json.loads(gzip.decompress(data))
    except (OSError, EOFError, ValueError) as e:
        raise ValueError(f"tracker sources bundle: unreadable ({e})") from None
    return {p: text.encode("utf-8") for p, text in doc.items()}


def attribution(artifact: bytes) -> str:
    """ATTRIBUTION.md text: every bundled source with its licence and version."""
    doc = json.loads(gzip.decompress(artifact))
    lines = [
        "# Tracker knowledge: sources and licences",
        "",
        "gazeback's tracker index (`trackers.json.gz`) is an adaptation of the sources below,",
        "merged by `scripts/build_trackers.py` and distributed under GPL-3.0-or-later as each",
        "licence allows. Full licence texts ship in `licenses/` beside this file (EasyList: GPL-3.0-or-later,\nsee gazeback's own licence); sources with origins in `data/trackers-src/<source>/SOURCE.md`.",
        "",
        "| source | version | licence | attribution | upstream |",
        "|---|---|---|---|---|",
    ]
    for s, meta in doc["sources"].items():
        lines.append(
            f"| {s} | {meta['version']} | {meta['licence']} | {meta['attribution']} | {meta['url']} |"
        )
    lines += [
        "",
        f"{len(doc['companies']):,} companies, {len(doc['trackers']):,} trackers, "
        f"{len(doc['domains']):,} attributed domains, "
        + ", ".join(f"{len(v):,} {k} domain rules" for k, v in doc["filter_domains"].items())
        + ".",
        "",
        "## Privacy contacts and letter templates",
        "",
        "`datenanfragen.json.gz` (used by `gazeback request`): company privacy contacts, data",
        "protection authorities and request templates from datenanfragen.de",
        "(https://github.com/datenanfragen/data; its commit is the file's `version`), CC0 1.0",
        "(`licenses/datenanfragen-CC0-1.0.txt`), reduced to the fields a letter needs by",
        "`scripts/build_datenanfragen.py`. No attribution is required; we credit it anyway.",
        "",
        "## Names of what trackers learned, in letters",
        "",
        "`property-names.json` (used by the annex of `gazeback request`): the TrackHAR property names in",
        "English and German, copied from `i18n/en.json` and `i18n/de.json` of tweaselORG/TrackHAR, commit",
        "b0189485f73b6abc117c43096e73b6759a7a3a1b (2025-10-22), CC0 1.0 (`licenses/trackhar-cc0.txt`); the",
        "French names are gazeback's own translation. Letters use these neutral names (a letter speaks to the",
        "company), not the dashboard's words (which speak to the person).",
        "",
    ]
    return "\n".join(lines)
