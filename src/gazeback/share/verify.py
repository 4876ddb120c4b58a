"""The export verifier: guarantees G1–G8 of design (b), one function each.

``verify(path)`` is the recipient's view (schema, pseudonym form, allowlists, time
buckets, cell sizes, file hygiene). ``verify(path, canaries)`` is the owner's view: it
also searches every byte of the export for every registered identity and promoted
persistent identifier, with the leak detector's own needle generator (G1). Reasons
name identities by id and chain, never by value.
"""

from __future__ import annotations

import codecs
import csv
import hashlib
import io
import re
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import publicsuffix2

from gazeback.leaks.detect import fingerprint, haversine_m
from gazeback.leaks.needles import Profile, build_profile
from gazeback.models import IdentityValue
from gazeback.share.datasheet import sections
from gazeback.share.schema import (
    CHAIN_STEPS,
    DOMAIN,
    E1_TABLES,
    KEY_NAMES,
    LOCATION_KINDS,
    PER_DEVICE_TABLES,
    PLACEHOLDERS,
    README,
    SCHEMA_VERSION,
    SENSITIVE_CLASSES,
    Allowlist,
    Check,
    count,
    create_table_sql,
    flag,
    list_rows,
    require_pyarrow,
)

SQLITE_HEADER = b"SQLite format 3\x00"
_TOKEN = re.compile(rb"[0-9A-Za-z_-]{12,64}")
_DECIMAL = re.compile(r"-?\d{1,3}\.\d{2,}")


@dataclass
class Canaries:
    """The owner's secrets, in memory only: what G1 and G3 search for."""

    profile: Profile
    values: tuple[str, ...] = ()  # identity values (G3 truncated-digest check)
    device_keys: tuple[str, ...] = ()
    persistent: frozenset[int] = frozenset()  # keyed fingerprints of promoted IDs
    key: bytes | None = None
    ips: frozenset[int] = frozenset()


def canaries(
    identities: list[IdentityValue],
    device_keys: list[str],
    persistent: set[int],
    key: bytes | None,
) -> Canaries:
    import ipaddress

    ips = set()
    for i in identities:
        if i.kind == "ip":
            try:
                ips.add(int(ipaddress.ip_address(i.value.strip())))
            except ValueError:
                pass
    return Canaries(
        build_profile(identities),
        tuple(i.value for i in identities if i.kind != "location"),
        tuple(device_keys),
        frozenset(persistent),
        key,
        frozenset(ips),
    )


@dataclass
class Loaded:
    path: Path
    kind: str = "unknown"  # sqlite, csv, parquet
    columns: dict[str, list[str]] = field(default_factory=dict)
    rows: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    blobs: list[tuple[str, bytes]] = field(default_factory=list)
    objects: list[str] = field(default_factory=list)  # views, triggers, indexes
    schema: list[tuple[str, str, str, str | None]] = field(default_factory=list)  # sqlite_master
    hygiene: list[str] = field(default_factory=list)
    problem: str | None = None

    @property
    def meta(self) -> dict[str, Any]:
        rows = self.rows.get("export_meta") or self.rows.get("pool_meta") or [{}]
        return rows[0]


# --- loading ----------------------------------------------------------------------------


def _load_sqlite(path: Path, out: Loaded) -> None:
    data = path.read_bytes()
    out.blobs.append((path.name, data))
    if not data.startswith(SQLITE_HEADER):
        out.problem = f"{path.name} is not a SQLite database or an export folder"
        return
    out.kind = "sqlite"
    conn = sqlite3.connect(f"file:{path}?mode=ro&immutable=1", uri=True)
    conn.row_factory = sqlite3.Row
    try:
        out.schema = [
            (r[0], r[1], r[2], r[3])
            for r in conn.execute("select type, name, tbl_name, sql from sqlite_master")
        ]
        for typ, name in conn.execute("select type, name from sqlite_master"):
            if typ != "table":
                out.objects.append(f"{typ} {name}")
            elif not name.startswith("sqlite_"):
                cols = [r[1] for r in conn.execute(f"pragma table_info([{name}])")]
                out.columns[name] = cols
                out.rows[name] = [dict(r) for r in conn.execute(f"select * from [{name}]")]
        free = conn.execute("pragma freelist_count").fetchone()[0]
        pages = conn.execute("pragma page_count").fetchone()[0]
        size = conn.execute("pragma page_size").fetchone()[0]
        integrity = conn.execute("pragma integrity_check").fetchone()[0]
    except sqlite3.Error as e:
        out.problem = f"{path.name} cannot be read as SQLite ({e})"
        return
    finally:
        conn.close()
    if free:
        out.hygiene.append(f"{free} free pages (deleted data may remain; build with VACUUM INTO)")
    if pages * size != len(data):
        out.hygiene.append("file size does not match its pages")
    if integrity != "ok":
        out.hygiene.append(f"integrity check: {integrity}")
    if data[18:20] != b"\x01\x01":
        out.hygiene.append("file is in WAL mode (not finished with VACUUM INTO)")
    out.hygiene += header_problems(data)
    for suffix in ("-wal", "-journal", "-shm"):
        if path.with_name(path.name + suffix).exists():
            out.hygiene.append(f"sidecar {path.name}{suffix} exists")
    sheet = path.with_name(path.name + ".md")
    if sheet.exists():
        out.blobs.append((sheet.name, sheet.read_bytes()))


# The 100-byte SQLite header as gazeback writes it (VACUUM INTO a fresh file): offset ->
# (size, required value). Any other value could carry hidden bytes (user_version and
# application_id hold 8 bytes a reader never sees).
HEADER_FIXED = {
    16: (2, 4096),  # page size
    20: (1, 0),  # reserved bytes per page
    21: (1, 64),  # payload fractions
    22: (1, 32),
    23: (1, 32),
    32: (4, 0),  # first freelist trunk page
    36: (4, 0),  # freelist pages
    44: (4, 4),  # schema format
    48: (4, 0),  # default page cache size
    52: (4, 0),  # largest root page (auto-vacuum)
    56: (4, 1),  # text encoding UTF-8
    60: (4, 0),  # user_version
    64: (4, 0),  # incremental vacuum
    68: (4, 0),  # application_id
}
HEADER_NAMES = {16: "page size", 20: "reserved bytes", 21: "payload fraction",
                22: "payload fraction", 23: "payload fraction", 32: "freelist trunk",
                36: "freelist count", 44: "schema format", 48: "page cache size",
                52: "auto-vacuum", 56: "text encoding", 60: "user_version",
                64: "incremental vacuum", 68: "application_id"}  # fmt: skip


def header_problems(data: bytes) -> list[str]:
    """What in the file header differs from what gazeback writes (empty when nothing)."""
    if len(data) < 100:
        return ["the file is shorter than a SQLite header"]
    out = []
    for offset, (size, want) in HEADER_FIXED.items():
        got = int.from_bytes(data[offset : offset + size], "big")
        if got != want:
            out.append(f"header {HEADER_NAMES[offset]} is {got}, gazeback writes {want}")
    if data[72:92] != bytes(20):
        out.append("header bytes 72-91 (reserved for expansion) are not zero")
    counter, valid_for = data[24:28], data[92:96]
    if counter != valid_for or int.from_bytes(counter, "big") > 16:
        out.append("header change counter is not that of a fresh file")
    if int.from_bytes(data[28:32], "big") * 4096 != len(data):
        out.append("header page count does not match the file size")
    if int.from_bytes(data[40:44], "big") > 64:
        out.append("header schema cookie is not that of a fresh file")
    if not 3_000_000 <= int.from_bytes(data[96:100], "big") < 4_000_000:
        out.append("header SQLite version number is not a SQLite 3 version")
    return out


def _typed(table: str, col: str, value: str) -> Any:
    rule = E1_TABLES.get(table, {}).get(col)
    if (rule in (count, flag) or col == "schema_version") and re.fullmatch(r"-?\d+", value):
        return int(value)
    return value


def _load_folder(path: Path, out: Loaded) -> None:
    files = sorted(p for p in path.iterdir())
    kinds = {p.suffix for p in files if p.name != "datasheet.md"}
    if kinds not in ({".csv"}, {".parquet"}):
        out.problem = f"{path.name} holds neither only .csv nor only .parquet tables"
        return
    out.kind = kinds.pop()[1:]
    for p in files:
        data = p.read_bytes() if p.is_file() else b""
        out.blobs.append((p.name, data))
        if p.name == "datasheet.md":
            continue
        if not p.is_file() or p.name.startswith("."):
            out.hygiene.append(f"unexpected entry {p.name}")
            continue
        name = p.stem
        if out.kind == "csv":
            reader = csv.reader(io.StringIO(data.decode("utf-8", "replace"), newline=""))
            header = next(reader, [])
            out.columns[name] = header
            out.rows[name] = [
                {c: _typed(name, c, v) for c, v in zip(header, row, strict=False)} for row in reader
            ]
        else:
            try:
                require_pyarrow()
            except ImportError as e:
                out.problem = f"{p.name}: {e}"
                return
            import pyarrow.parquet as pq

            if not data.startswith(b"PAR1"):
                out.problem = f"{p.name} is not a Parquet file"
                return
            table = pq.read_table(p)
            out.columns[name] = list(table.column_names)
            out.rows[name] = table.to_pylist()
    if not (path / "datasheet.md").exists():
        out.hygiene.append("datasheet.md is missing")


def load(path: Path) -> Loaded:
    """Read an export (SQLite file, or a folder of CSV or Parquet tables) for checking."""
    out = Loaded(Path(path))
    try:
        if out.path.is_dir():
            _load_folder(out.path, out)
        else:
            _load_sqlite(out.path, out)
    except (OSError, ValueError) as e:
        out.problem = f"cannot read {out.path.name}: {e}"
    return out


# --- the guarantees ---------------------------------------------------------------------


def _texts(data: bytes) -> list[str]:
    # As bytes (latin-1 keeps offsets), as UTF-8, and as UTF-16LE at both alignments; then
    # the bytes and UTF-8 texts ROT13-ed and reversed, so that a value hidden in ROT13 or
    # backwards meets its needle (both transforms are their own inverse).
    texts = [
        data.decode("latin-1"),
        data.decode("utf-8", "replace"),
        data.decode("utf-16-le", "replace"),
        data[1:].decode("utf-16-le", "replace"),
    ]
    return texts + [codecs.encode(t, "rot13") for t in texts[:2]] + [t[::-1] for t in texts[:2]]


def g1_no_canary(exp: Loaded, c: Canaries | None) -> Check:
    """Every registered identity and promoted persistent ID, in every needle form: 0 hits."""
    if c is None:
        return Check(
            "G1", True, "only the owner can check this: add --against YOUR-TRAIL", skipped=True
        )
    hits: list[str] = []
    for name, data in exp.blobs:
        for text in _texts(data):
            for automaton, t in (
                (c.profile.automaton, text),
                (c.profile.ci_automaton, text.lower()),
            ):
                if automaton is None:
                    continue
                for end, (_, needles) in automaton.iter(t):
                    n = needles[0]
                    hits.append(
                        f"identity {n.identity_id} ({n.pii_type}, {n.chain}) in {name} at {end}"
                    )
                    break
        if c.key and c.persistent:
            for m in _TOKEN.finditer(data):
                if fingerprint(c.key, m.group().decode()) in c.persistent:
                    hits.append(f"a persistent identifier in {name} at {m.start()}")
        if c.profile.places:
            nums = [float(m.group()) for m in _DECIMAL.finditer(data.decode("latin-1"))]
            for a, b in zip(nums, nums[1:], strict=False):
                if any(haversine_m(a, b, p.lat, p.lon) <= 5000 for p in c.profile.places):
                    hits.append(f"a coordinate pair near a registered place in {name}")
                    break
    for table, rows in exp.rows.items():
        for row in rows:
            for col, v in row.items():
                if isinstance(v, int) and v in c.ips:
                    hits.append(f"the registered IP address as an integer in {table}.{col}")
                if isinstance(v, str) and c.key and c.persistent:
                    for tok in _TOKEN.findall(v.encode()):
                        if fingerprint(c.key, tok.decode()) in c.persistent:
                            hits.append(f"a persistent identifier in {table}.{col}")
    n = c.profile.needle_count
    if hits:
        return Check("G1", False, f"{len(hits)} hit(s) of {n} needles: " + "; ".join(hits[:3]))
    return Check("G1", True, f"0 hits for {n} needles and {len(c.persistent)} persistent IDs")


def _readme_expected(exp: Loaded) -> list[tuple[str, str]] | None:
    try:
        counts = {r["measure"]: r["value"] for r in exp.rows["export_counts"]}
        return sections(exp.meta, exp.rows["export_lists"], counts)
    except (KeyError, TypeError):
        return None


def g2_schema(exp: Loaded, allow: Allowlist) -> Check:
    """Only the whitelisted tables and columns, and every value obeys its column's rule."""
    if exp.problem:
        return Check("G2", False, exp.problem)
    if exp.meta.get("profile") == "E2":
        from gazeback.share.merge import E2_TABLES

        spec = E2_TABLES
    else:
        spec = E1_TABLES
    if not {"export_meta", "pool_meta"} & set(exp.columns):
        return Check("G2", False, "not a gazeback export (no export_meta table)")
    version = exp.meta.get("schema_version")
    if version != SCHEMA_VERSION:
        return Check(
            "G2", False, f"schema version {version!r}; this gazeback reads {SCHEMA_VERSION}"
        )
    if exp.objects:
        return Check("G2", False, f"unexpected schema objects: {', '.join(exp.objects)}")
    if exp.kind == "sqlite":
        ddl = {name: create_table_sql(name, cols) for name, cols in spec.items()}
        for typ, name, tbl, sql in exp.schema:
            if typ != "table" or name != tbl or ddl.get(name) != sql:
                return Check(
                    "G2",
                    False,
                    f"schema of {typ} {name} differs from the expected DDL byte for byte",
                )
    if set(exp.columns) != set(spec):
        extra, missing = set(exp.columns) - set(spec), set(spec) - set(exp.columns)
        return Check(
            "G2", False, f"tables not in the spec: {sorted(extra)}; missing: {sorted(missing)}"
        )
    for table, cols in spec.items():
        if sorted(exp.columns[table]) != sorted(cols):
            extra = set(exp.columns[table]) - set(cols)
            return Check(
                "G2", False, f"{table}: columns not in the spec: {sorted(extra) or 'order/missing'}"
            )
    if len(exp.rows.get("export_meta", exp.rows.get("pool_meta", []))) != 1:
        return Check("G2", False, "the meta table must hold exactly one row")
    expected = _readme_expected(exp) if "readme" in spec else []
    for table, cols in spec.items():
        for i, row in enumerate(exp.rows[table]):
            for col, rule in cols.items():
                v = row[col]
                if rule == README:
                    want = expected[i] if expected and i < len(expected) else None
                    ok = want is not None and v == want[0 if col == "section" else 1]
                elif rule == DOMAIN:
                    ok = allow.allows(v)
                else:
                    ok = bool(rule(v))
                if not ok:
                    return Check("G2", False, f"{table}.{col} row {i + 1}: value outside its rule")
        if table == "readme" and expected is not None and len(exp.rows[table]) != len(expected):
            return Check("G2", False, "readme differs from the datasheet this export implies")
    n = sum(len(r) for r in exp.rows.values())
    return Check("G2", True, f"{len(spec)} tables, {n} rows, every value within its rule")


def _truncated_digests(values: tuple[str, ...]) -> set[str]:
    out = set()
    for v in values:
        for form in {v, v.strip().lower(), f"device:{v}"}:
            for h in ("md5", "sha1", "sha256"):
                out.add(hashlib.new(h, form.encode()).hexdigest()[:16])
    return out


def g3_pseudonyms(exp: Loaded, c: Canaries | None) -> Check:
    """Pseudonyms are 64-bit hex, unique per device, and no unkeyed digest of a known value."""
    if exp.problem:
        return Check("G3", False, exp.problem)
    if exp.meta.get("profile") == "E2":
        return Check("G3", True, "pooled profile: no device pseudonyms")
    pids = [r.get("device_pid") for r in exp.rows.get("devices", [])]
    if len(set(pids)) != len(pids):
        return Check("G3", False, "two devices share a pseudonym")
    if not all(isinstance(p, str) and re.fullmatch(r"[0-9a-f]{16}", p) for p in pids):
        return Check("G3", False, "a device pseudonym is not 16 hex characters")
    for t in PER_DEVICE_TABLES:
        if any(r.get("device_pid") not in set(pids) for r in exp.rows.get(t, [])):
            return Check("G3", False, f"{t} names a device that is not in devices")
    if c is not None:
        bad = set(pids) & _truncated_digests(c.values + c.device_keys)
        if bad:
            return Check(
                "G3", False, "a pseudonym is an unkeyed hash of a device key or identifier"
            )
    linkable = "linkable (--link-key)" if exp.meta.get("is_linkable") else "fresh key per export"
    return Check("G3", True, f"{len(pids)} keyed pseudonyms, {linkable}")


def g4_allowlists(exp: Loaded, allow: Allowlist) -> Check:
    """E1: domains, key names and vendors on their pinned lists; E2: every value in ≥ k households."""
    if exp.problem:
        return Check("G4", False, exp.problem)
    if exp.meta.get("profile") == "E2":
        from gazeback.share.merge import check_threshold

        return check_threshold(exp.rows, exp.meta)
    ours = {r["name"]: r["sha256"] for r in list_rows(allow.index)}
    for r in exp.rows.get("export_lists", []):
        if r["name"] != "tracker-lists" and ours.get(r["name"]) != r["sha256"]:
            return Check("G4", False, f"list {r['name']} differs from this gazeback's (sha256)")
    for t in ("traffic", "leaks"):
        for r in exp.rows.get(t, []):
            if not allow.allows(r.get("dest_domain")):
                return Check("G4", False, f"{t}: a destination outside the allowlists")
    for r in exp.rows.get("id_sharing", []):
        if PLACEHOLDERS & {r["dest_domain_a"], r["dest_domain_b"]}:
            return Check("G4", False, "id_sharing names (other) or (site)")
    return Check("G4", True, "every destination, key name and vendor is on its pinned list")


def g5_time_and_cells(exp: Loaded) -> Check:
    """Buckets are multiples of the declared size (daily for sensitive classes); cells ≥ min_cell."""
    if exp.problem:
        return Check("G5", False, exp.problem)
    meta = exp.meta
    if meta.get("profile") == "E2":
        return Check("G5", True, "pooled profile: no time columns")
    size, daily, min_cell = (
        meta.get(k) for k in ("time_bucket_s", "sensitive_bucket_s", "min_cell")
    )
    if not (isinstance(size, int) and size >= 3600 and isinstance(daily, int) and daily >= 86_400
            and isinstance(min_cell, int) and min_cell >= 1):  # fmt: skip
        return Check("G5", False, "declared bucket sizes or min_cell are missing or too fine")
    sensitive = {r["device_pid"] for r in exp.rows.get("devices", [])
                 if r.get("device_class") in SENSITIVE_CLASSES}  # fmt: skip
    for t, n in (("traffic", "requests"), ("leaks", "count")):
        for r in exp.rows.get(t, []):
            b = r.get("bucket_start")
            step = daily if r.get("device_pid") in sensitive else size
            if not isinstance(b, int) or b % step:
                return Check("G5", False, f"{t}: bucket_start not a multiple of {step} s")
            if not isinstance(r.get(n), int) or r[n] < min_cell:
                return Check("G5", False, f"{t}: a cell below min_cell {min_cell}")
    return Check(
        "G5", True, f"{size} s buckets ({daily} s for sensitive devices), cells ≥ {min_cell}"
    )


def g6_no_browsing(exp: Loaded, allow: Allowlist) -> Check:
    """No per-device row names a domain outside A; roles agree with the lists."""
    if exp.problem:
        return Check("G6", False, exp.problem)
    if exp.meta.get("profile") == "E2":
        return Check("G6", True, "pooled profile: no per-device rows")
    for t in PER_DEVICE_TABLES:
        for r in exp.rows.get(t, []):
            d = r.get("dest_domain")
            if not allow.allows(d):
                return Check(
                    "G6", False, f"{t}: a per-device row names a site outside the allowlists"
                )
            if t == "traffic":
                want = "other" if d in PLACEHOLDERS else allow.role(d)
                if r.get("dest_role") != want:
                    return Check("G6", False, "traffic: dest_role disagrees with the lists")
    return Check(
        "G6", True, "per-device rows name allowlisted trackers, CDNs and vendor clouds only"
    )


def g7_hygiene(exp: Loaded) -> Check:
    """A fresh, vacuumed file: no free pages, no sidecars, no stray files."""
    if exp.problem:
        return Check("G7", False, exp.problem)
    if exp.hygiene:
        return Check("G7", False, "; ".join(exp.hygiene))
    return Check("G7", True, f"{exp.kind}: no free pages, no sidecars, nothing stray")


# Words of the closed vocabularies that look like domain names (url.host: .host is a TLD).
VOCABULARY = frozenset([*LOCATION_KINDS, *KEY_NAMES, *CHAIN_STEPS])
_DOMAIN_LIKE = re.compile(
    r"(?<![a-z0-9-])((?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z][a-z0-9-]{1,23})(?![a-z0-9-])"
)


def g8_domains(exp: Loaded, allow: Allowlist) -> Check:
    """No domain that is not on the allowlist, in any column of any table.

    Domain columns hold an allowlisted tracker, CDN or vendor cloud, ``(site)`` or
    ``(other)``; no other text names a registrable domain at all. Sensitive sites and
    websites people open are never on the allowlist.
    """
    if exp.problem:
        return Check("G8", False, exp.problem)
    # Values repeat (a few hundred domains, closed vocabularies): each distinct value is
    # checked once per kind of column; only values that passed are remembered.
    passed: set[tuple[bool, str]] = set()
    for table, rows in exp.rows.items():
        domain_cols = {c for c, r in {**E1_TABLES, **_e2_tables()}.get(table, {}).items()
                       if r == DOMAIN}  # fmt: skip
        for i, row in enumerate(rows):
            for col, v in row.items():
                if not isinstance(v, str):
                    continue
                key = (col in domain_cols, v)
                if key in passed:
                    continue
                if key[0]:
                    if not allow.allows(v):
                        return Check("G8", False, f"{table}.{col} row {i + 1} names a domain "
                                     "that is not on the allowlist")  # fmt: skip
                    passed.add(key)
                    continue
                for token in _DOMAIN_LIKE.findall(v.lower()):
                    if token in VOCABULARY or allow.role(token) is not None:
                        continue
                    if publicsuffix2.get_tld(token, strict=True):
                        return Check("G8", False, f"{table}.{col} row {i + 1} names a domain "
                                     "that is not on the allowlist")  # fmt: skip
                passed.add(key)
    return Check(
        "G8", True, "only allowlisted trackers, CDNs and vendor clouds are named; "
        "sites are (site), the rest (other)",
    )  # fmt: skip


def _e2_tables() -> dict[str, dict[str, Any]]:
    from gazeback.share.merge import E2_TABLES

    return E2_TABLES


def verify(path: Path, allow: Allowlist, c: Canaries | None = None) -> list[Check]:
    """Run G1–G8 on the export at ``path``; pass ``c`` for the owner's view."""
    return check(load(path), allow, c)


def check(exp: Loaded, allow: Allowlist, c: Canaries | None = None) -> list[Check]:
    """G1–G8 on an export already read with ``load`` (read once, checked once)."""
    return [
        g1_no_canary(exp, c),
        g2_schema(exp, allow),
        g3_pseudonyms(exp, c),
        g4_allowlists(exp, allow),
        g5_time_and_cells(exp),
        g6_no_browsing(exp, allow),
        g7_hygiene(exp),
        g8_domains(exp, allow),
    ]
