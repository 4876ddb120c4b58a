"""The datenanfragen.de data, bundled compactly: privacy contacts, authorities, letter templates.

``datenanfragen.json.gz`` is built from a checkout of the datenanfragen/data repository (CC0) by
``scripts/build_datenanfragen.py`` (or ``gazeback request update --from DIR``), keeping only the
fields a letter needs. Same checkout in → same bytes out.
"""

from __future__ import annotations

import json
import os
import zlib
from functools import lru_cache
from pathlib import Path
from typing import Any

from gazeback.knowledge.classify import registrable_domain

LANGUAGES = ("cs", "de", "el", "en", "es", "fr", "hr", "it", "nl", "pt", "ro", "sv")
TEMPLATES = ("access-default", "access-tracking", "admonition", "complaint")
COMPANY_FIELDS = (
    "name", "address", "email", "web", "webform", "runs", "relevant-countries", "quality",
    "custom-access-template", "request-language", "suggested-transport-medium", "sources",
    "required-elements",
)  # fmt: skip
AUTHORITY_FIELDS = ("name", "address", "email", "web", "webform", "relevant-countries",
                    "complaint-language")  # fmt: skip
UPSTREAM = "https://github.com/datenanfragen/data"


class DataError(ValueError):
    """The datenanfragen checkout or artifact is not usable (says which file and why)."""


def _read_json(path: Path) -> dict[str, Any]:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise DataError(f"{path}: not readable JSON ({e})") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("name"), str):
        raise DataError(f"{path}: a record needs a name")
    return doc


def build(src: Path, version: str) -> bytes:
    """A datenanfragen checkout (``companies/``, ``supervisory-authorities/``, ``templates/``)
    → the compact artifact (deterministic gzip of sorted JSON)."""
    for sub in ("companies", "supervisory-authorities", "templates"):
        if not (src / sub).is_dir():
            raise DataError(f"{src}: no {sub}/ folder (is this a datenanfragen/data checkout?)")
    companies = {}
    for path in sorted((src / "companies").glob("*.json")):
        doc = _read_json(path)
        row = {k: doc[k] for k in COMPANY_FIELDS if doc.get(k)}
        if "required-elements" in row:
            row["required-elements"] = [e.get("desc", "") for e in row["required-elements"]]
        companies[path.stem] = row
    authorities = {}
    for path in sorted((src / "supervisory-authorities").glob("*.json")):
        doc = _read_json(path)
        authorities[path.stem] = {k: doc[k] for k in AUTHORITY_FIELDS if doc.get(k)}
    templates: dict[str, dict[str, str]] = {}
    for lang in LANGUAGES:
        for name in TEMPLATES:
            path = src / "templates" / lang / f"{name}.txt"
            if path.exists():  # not every language has every template (letters fall back)
                templates.setdefault(lang, {})[name] = path.read_text(encoding="utf-8")
    if not companies:
        raise DataError(f"{src}/companies: no company records")
    if "access-tracking" not in templates.get("en", {}):
        raise DataError(f"{src}/templates/en/access-tracking.txt: missing (the fallback letter)")
    doc = {
        "format": 1,
        "version": version,
        "licence": "CC0-1.0",
        "url": UPSTREAM,
        "companies": companies,
        "authorities": authorities,
        "templates": templates,
    }
    raw = json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return zlib.compress(raw.encode("utf-8"), 9, wbits=31)


def bundled_path() -> Path:
    return Path(__file__).parent.parent / "data" / "datenanfragen.json.gz"


def user_path() -> Path:
    """Where ``gazeback request update`` keeps a newer copy: ``$XDG_DATA_HOME/gazeback/``."""
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "gazeback" / "datenanfragen.json.gz"


def read(path: Path) -> dict[str, Any]:
    import gzip

    try:
        doc = json.loads(gzip.decompress(path.read_bytes()))
    except (OSError, EOFError, ValueError) as e:
        raise DataError(f"{path}: cannot read the datenanfragen data ({e})") from None
    for key in ("format", "version", "companies", "authorities", "templates"):
        if key not in doc:
            raise DataError(f"{path}: datenanfragen data lacks {key!r}")
    return dict(doc)


class Directory:
    """Company records by slug, web domain and normalised name; authorities by country."""

    def __init__(self, doc: dict[str, Any]) -> None:
        self.version: str = doc["version"]
        self.companies: dict[str, dict[str, Any]] = doc["companies"]
        self.authorities: dict[str, dict[str, Any]] = doc["authorities"]
        self.templates: dict[str, dict[str, str]] = doc["templates"]
        self.by_domain: dict[str, list[str]] = {}
        self.by_label: dict[str, list[str]] = {}  # liveramp: liveramp.com, .de, .uk records
        self.by_name: dict[str, list[str]] = {}
        for slug_, c in sorted(self.companies.items()):
            domain = _domain(c.get("web", ""))
            if domain:
                self.by_domain.setdefault(domain, []).append(slug_)
                self.by_label.setdefault(domain.split(".")[0], []).append(slug_)
            for name in [c["name"], *c.get("runs", [])]:
                self.by_name.setdefault(name_key(name), []).append(slug_)

    def find(self, domains: list[str], names: list[str], country: str = "") -> str | None:
        """The best record for a company known by these web domains and names.

        Domain matches beat name matches; among several records (``liveramp-de``,
        ``liveramp-gb``), the one for ``country``, then a verified one, then the first slug.
        """
        by_domain = [s for d in domains for s in self.by_domain.get(d, [])]
        # the same brand's regional records (liveramp.com → liveramp.de, liveramp.uk)
        regional = [
            r
            for s in by_domain
            for r in self.by_label.get(
                (_domain(self.companies[s].get("web", "")) or ".").split(".")[0], []
            )
            if name_key(self.companies[r]["name"])[:6] == name_key(self.companies[s]["name"])[:6]
        ]
        for candidates in (
            by_domain + regional,
            [s for n in names for s in self.by_name.get(name_key(n), [])],
        ):
            if candidates:
                keys = {name_key(n) for n in names}
                return sorted(set(candidates), key=lambda s: self._rank(s, country, keys))[0]
        return None

    def _rank(self, slug_: str, country: str, keys: set[str]) -> tuple[int, int, int, int, str]:
        c = self.companies[slug_]
        here = country.lower() in c.get("relevant-countries", []) if country else False
        everywhere = "all" in c.get("relevant-countries", [])
        named = name_key(c["name"]) in keys or any(name_key(r) in keys for r in c.get("runs", []))
        return (not here, not named, not everywhere, c.get("quality") != "verified", slug_)

    def authority_for(self, country: str) -> str | None:
        """The supervisory authority for a country (the national one where there are several)."""
        found = [
            s
            for s, a in sorted(self.authorities.items())
            if country.lower() in a.get("relevant-countries", [])
        ]
        national = [s for s in found if s.endswith(("bfdi", "dpc", "cnil", "ico"))]
        return (national or found)[0] if found else None


def name_key(name: str) -> str:
    """``"LiveRamp Holdings, Inc."`` → ``"liveramp"``: lower case, legal forms dropped."""
    import re

    words = re.findall(r"[a-z0-9]+", name.lower())
    legal = {"inc", "llc", "ltd", "limited", "gmbh", "corp", "corporation", "co", "sa", "sas",
             "ag", "plc", "bv", "ab", "oy", "srl", "spa", "pty", "kk", "holdings", "the", "se",
             "group", "emea", "europe", "international", "technologies", "media"}  # fmt: skip
    kept = [w for w in words if w not in legal]
    return "".join(kept or words)


def _domain(url: str) -> str | None:
    from urllib.parse import urlsplit

    try:
        host = urlsplit(url if "//" in url else f"https://{url}").hostname
    except ValueError:
        return None
    return registrable_domain(host) if host else None


@lru_cache(maxsize=2)
def load(path: Path | None = None) -> Directory:
    """``path``, else the user's updated copy, else the bundled data."""
    if path is not None:
        return Directory(read(path))
    user = user_path()
    if user.exists():
        try:
            return Directory(read(user))
        except DataError:
            pass
    return Directory(read(bundled_path()))


def crosscheck(index_doc: dict[str, Any], directory: Directory) -> dict[str, Any]:
    """Every tracker company whose own web domains lead to datenanfragen records, checked
    against those records' names: ``agree`` (same name or group) and ``differ`` rows."""
    from collections import defaultdict

    by_company: dict[str, set[str]] = defaultdict(set)
    for domain, (tid, _) in index_doc["domains"].items():
        cid = index_doc["trackers"][tid]["company_id"]
        if cid:
            by_company[cid].add(registrable_domain(domain) or domain)
    agree, differ = 0, []
    for cid in sorted(by_company):
        c = index_doc["companies"].get(cid)
        if not c:
            continue
        records = sorted({r for d in by_company[cid] for r in directory.by_domain.get(d, [])})
        if not records:
            continue
        owner = index_doc["companies"].get(c.get("owner_id") or "", {}).get("name")
        keys = {name_key(c["name"])} | ({name_key(owner)} if owner else set())
        names = [directory.companies[r]["name"] for r in records]
        runs = {name_key(x) for r in records for x in directory.companies[r].get("runs", [])}
        if runs & keys or any(
            k and (k in name_key(n) or name_key(n) in k) for k in keys for n in names
        ):
            agree += 1
            continue
        shared = sorted(d for d in by_company[cid] for r in records if d in directory.by_domain
                        and r in directory.by_domain[d])  # fmt: skip
        differ.append(
            {"company": cid, "name": c["name"].strip(), "owner": owner, "records": records,
             "record_names": names, "domains": sorted(set(shared))}
        )  # fmt: skip
    return {"agree": agree, "differ": differ}


def crosscheck_report(result: dict[str, Any], version: str) -> str:
    lines = [
        "# Tracker companies against datenanfragen records (build report)",
        "",
        f"Generated by `scripts/build_datenanfragen.py` (datenanfragen {version}); see",
        "`docs/guide/ask-them.md`. A tracker company is joined to the records whose `web` domain",
        "is one of the company's own tracker domains.",
        "",
        f"- {result['agree']} companies agree with their record (same name, same group, or the",
        "  record `runs` the brand).",
        f"- {len(result['differ'])} differ, listed below. Resolution: a letter is addressed to the",
        "  record's legal entity, because the record was reached through the company's own web",
        "  domain and datenanfragen names the controller answering for that domain (brand names",
        "  such as MailChimp → The Rocket Science Group LLC, Pocket → Read It Later, Inc.). The",
        "  tracker lists' name stays the name shown in the dashboard. Where the difference is a",
        "  change of owner, it is fixed in the ownership-changes overlay instead",
        "  (`data/trackers-src/gazeback-overlay/overlay.json`), and the row disappears here.",
        "",
        "| company (tracker lists) | owner (after overlay) | datenanfragen record | record's legal entity | via domain |",
        "|---|---|---|---|---|",
    ]
    for row in result["differ"]:
        lines.append(
            f"| {row['name']} | {row['owner'] or ''} | {', '.join(row['records'])} | "
            f"{'; '.join(row['record_names'])} | {', '.join(row['domains'])} |"
        )
    return "\n".join(lines) + "\n"
