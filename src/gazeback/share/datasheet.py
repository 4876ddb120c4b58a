"""The datasheet every export carries: a ``readme`` table inside the file and a .md beside it.

Generated only from the export's own tables (meta, lists, counts), so the verifier can
regenerate it and require the stored text to be exactly this: the one place an export
holds prose, and it cannot carry anything else.
"""

from __future__ import annotations

from typing import Any

from gazeback.share.schema import E1_TABLES, OTHER

COLUMNS = {
    "export_meta": "one row: random export id, schema version, profile, day made, parameters, "
    "number of search strings the verifier used (G1), whether exports are linkable",
    "export_lists": "every allowlist used, with version and SHA-256",
    "export_counts": "export-level totals, including what was merged away",
    "provenance": "how many recordings of each kind (proxy, har, ...) went in, and tool versions",
    "devices": "device_pid (keyed pseudonym), device_class, os_family, vendor (closed lists)",
    "traffic": "requests and bytes per device, time bucket and destination; destinations "
    f"outside the allowlists are {OTHER}, sites the household opened itself (site)",
    "leaks": "what kind of personal data left, how it was encoded (transform_chain), where "
    "in the request (location_kind), under which documented parameter name (key_name) — "
    "never the value",
    "id_sharing": "pairs of allowlisted destinations that received the same identifier "
    "(count of identifiers), never the identifier",
    "readme": "this datasheet",
}

RISKS = [
    "The set of device classes and trackers, and traffic volume over time, can still be "
    "unusual enough to single out a household.",
    "A tracking company that receives this file can compare the request counts per time "
    "bucket with its own server logs. Use --bucket 86400, or share only pooled data "
    "(gazeback merge), with anyone who may run a tracker.",
    "A niche tracker or vendor domain (used by few sites or few device models) can hint at "
    "what was visited or owned. Pooled merges release a domain only when enough households "
    "have it.",
    "Identifiers hidden with encodings the detector does not know (custom ciphers, unknown "
    "salts) cannot be searched for. That is why the export holds no values at all: only "
    "counts, closed lists and allowlisted names.",
    "Short values (a first name, a postal code) are not searched byte by byte; the schema "
    "rules keep them out because no column takes free text.",
    "Unregistered persistent identifiers are known only by keyed fingerprints; the verifier "
    "finds them in the plain form they were seen in.",
]


def sections(
    meta: dict[str, Any], lists: list[dict[str, Any]], counts: dict[str, int]
) -> list[tuple[str, str]]:
    """The datasheet as (section, body) pairs, from the export's own tables."""
    linkable = (
        "Device pseudonyms use a long-lived key kept on the exporting computer, so several "
        "exports from this household can be linked to each other."
        if meta["is_linkable"]
        else "Device pseudonyms use a key made for this export and then forgotten: two exports "
        "of the same household share no pseudonym."
    )
    tables = "\n".join(
        f"- {name} ({', '.join(cols)}): {COLUMNS[name]}" for name, cols in E1_TABLES.items()
    )
    params = (
        f"- profile {meta['profile']}, schema version {meta['schema_version']}, made "
        f"{meta['created_day']} with gazeback {meta['tool_version']}\n"
        f"- time buckets of {meta['time_bucket_s']} s; {meta['sensitive_bucket_s']} s for "
        "cameras, doorbells, locks, health devices and wearables\n"
        f"- cells with fewer than {meta['min_cell']} requests (or leaks) merged into "
        f"{OTHER} or dropped\n"
        f"- {meta['needle_count']} search strings checked against every byte (G1)\n- " + linkable
    )
    listed = "\n".join(
        f"- {r['name']} {r['version']} ({r['entries']} entries), sha256 {r['sha256']}"
        for r in sorted(lists, key=lambda r: str(r["name"]))
    )
    totals = "\n".join(f"- {k}: {counts[k]}" for k in sorted(counts))
    protected = (
        "No email, phone, name, advertising or device ID, address, IP, MAC, host name, URL, "
        "path, header value, user agent, user label or exact time is in this file. "
        f"Destinations are named only when they are on the tracker, CDN or vendor-cloud "
        f"allowlists (eTLD+1 only); a website the household opened itself is (site), any "
        f"other destination {OTHER}, and no health, sexuality, religion, politics or finance "
        "site is ever named. The verifier (gazeback verify-export) checks guarantees G1-G8 "
        "before the file was written."
    )
    return [
        ("What this is", "An anonymized gazeback export (design (b), profile E1): what one "
         "household's devices sent to tracking companies, without the household's data."),
        ("Tables", tables),
        ("Parameters", params),
        ("Allowlists", listed),
        ("Totals", totals),
        ("What is protected", protected),
        ("Residual risks", "\n".join(f"- {r}" for r in RISKS)),
        ("How to check", "gazeback verify-export FILE (recipient); gazeback verify-export "
         "FILE --against TRAIL.db (owner, also searches every byte for the owner's "
         "identifiers)."),
    ]  # fmt: skip


def markdown(rows: list[tuple[str, str]]) -> str:
    return "# gazeback export datasheet\n\n" + "\n\n".join(f"## {s}\n\n{b}" for s, b in rows) + "\n"
