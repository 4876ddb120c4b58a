"""What an anonymized export may contain, as data (``docs/guide/share.md``).

The exporter writes only these tables and columns, and the verifier rejects anything
else: every column has a value rule (integer, closed enum, pseudonym, allowlisted
domain, ...). Allowlists of our own (CDN, vendor cloud, websites that the tracker
lists also name, SDK parameter names) live here so that their SHA-256 can be recorded
in each export and checked by the recipient.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from gazeback.knowledge.classify import TrackerIndex, normalize_host
from gazeback.leaks.needles import HASHES, VARIANTS
from gazeback.share.domains import export_domains, is_sensitive, sensitive_domains

SCHEMA_VERSION = 1
INSTALL_HINT = (
    "Parquet needs pyarrow (and DuckDB to query it), which come with gazeback's research "
    "extra: pip install 'gazeback[research]'"
)
OTHER = "(other)"
SITE = "(site)"  # a site the person opened themselves: never named
PLACEHOLDERS = frozenset({OTHER, SITE})

DEVICE_CLASSES = (
    "phone tablet tv speaker camera doorbell lock thermostat plug hub computer console "
    "wearable health other".split()
)
# Device classes whose traffic shows presence or routine: daily buckets at least.
SENSITIVE_CLASSES = frozenset({"camera", "doorbell", "lock", "health", "wearable"})
KIND_TO_CLASS = {
    "laptop": "computer",
    "desktop": "computer",
    "pc": "computer",
    "mac": "computer",
    "watch": "wearable",
    "smartwatch": "wearable",
    "fitness": "wearable",
    "scale": "health",
    "bulb": "plug",
    "light": "plug",
    "switch": "plug",
    "bridge": "hub",
    "router": "hub",
    "smart_speaker": "speaker",
}
OS_FAMILIES = ("android", "ios", "macos", "windows", "linux", "chromeos", "tvos", "other")
OS_TO_FAMILY = {
    "android": "android",
    "ios": "ios",
    "ipados": "ios",
    "macos": "macos",
    "mac os x": "macos",
    "windows": "windows",
    "linux": "linux",
    "ubuntu": "linux",
    "debian": "linux",
    "fedora": "linux",
    "chromeos": "chromeos",
    "chrome os": "chromeos",
    "tvos": "tvos",
}
VENDORS = ("apple", "google", "microsoft", "amazon", "samsung", "lg", "roku", "other")
OS_TO_VENDOR = {"ios": "apple", "macos": "apple", "chromeos": "google", "windows": "microsoft"}
ROLES = ("tracker", "ads", "analytics", "vendor_cloud", "cdn", "other")
# Tracker-list categories that make an eTLD+1 exportable, and the role it is shown under.
CATEGORY_ROLE = {
    "advertising": "ads",
    "analytics": "analytics",
    "audience_measurement": "analytics",
    "session_replay": "analytics",
    "fingerprinting": "tracker",
    "tag_manager": "tracker",
    "consent": "tracker",
}
# Sites people open themselves that the tracker lists also name as trackers: a
# per-device row naming one of them would be browsing history, so they stay (other).
WEBSITES = frozenset(
    "google.com facebook.com yahoo.com bing.com baidu.com yandex.ru yandex.com ebay.com "
    "adobe.com reddit.com twitter.com x.com linkedin.com pinterest.com tiktok.com vk.com "
    "amazon.com instagram.com tumblr.com quora.com aol.com msn.com naver.com qq.com "
    "weibo.com taboola.com outbrain.com weather.com wordpress.com forbes.com huffpost.com "
    "rambler.ru sina.com.cn rakuten.co.jp ebay.de orange.fr".split()
)
CDN_DOMAINS = frozenset(
    "akamaihd.net akamaized.net akamaiedge.net akamai.net edgekey.net edgesuite.net "
    "cloudfront.net fastly.net fastlylb.net cloudflare.net cdnjs.com jsdelivr.net "
    "unpkg.com gstatic.com ggpht.com googleusercontent.com ytimg.com fbcdn.net "
    "twimg.com azureedge.net llnwd.net b-cdn.net stackpathdns.com cdn77.org".split()
)
VENDOR_CLOUD_DOMAINS = frozenset(
    "amazonaws.com googleapis.com icloud.com apple-cloudkit.com samsungcloud.com "
    "samsungapps.com tuya.com tuyaus.com tuyaeu.com ring.com nest.com xiaomi.com "
    "mi.com miui.com roku.com sonos.com philips-hue.com meethue.com tplinkcloud.com "
    "ecobee.com wyze.com arlo.com smartthings.com lgtvcommon.com lgsmartad.com "
    "amazonalexa.com a2z.com fitbit.com garmin.com withings.com azure.com "
    "windows.net".split()
)
# Parameter, JSON-key and header names that public SDK/API documentation defines for
# personal data (Meta advanced matching, Google/Snap conversions, attribution SDKs, ...).
KEY_NAMES = frozenset(
    "em ph fn ln ge db ct st zp country external_id ud[em] ud[ph] ud[fn] ud[ln] ud[ge] "
    "ud[db] ud[ct] ud[st] ud[zp] ud[country] ud[external_id] email email_address "
    "hashed_email u_hem hem sha256_email_address hashed_phone_number phone phone_number "
    "msisdn first_name last_name name user_id userid uid distinct_id $device_id device_id "
    "deviceid anonymous_id anonymousid advertising_id advertiserid advertiser_id "
    "google_advertising_id gaid gps_adid adid aaid idfa idfv rdid android_id androidid "
    "hardware_id imei mac mac_address duid serial serial_number x-device-id "
    "x-braze-device-id x-client-id client_id cid ip ip_address lat lon lng latitude "
    "longitude location ll".split()
)
LOCATION_KINDS = (
    "url.query url.path url.host header cookie body.json body.form body.protobuf body.other".split()
)
PII_TYPES = "email phone name ad_id android_id imei mac location ip other persistent_id".split()
TIERS = ("strong", "medium", "weak")
# The closed vocabulary of transform-chain steps: the detector's variant labels, hash
# and wire forms, and the decoder's steps.
_LABELS = (
    "plain trim lower upper gmail e164 e164digits intl00 national trunk0 fmtnational "
    "fmtintl digits lastfirst plusjoined nospace nodash nodashupper decimal imei14 dashed "
    "colonlower colonupper dashlower dashupper barelower bareupper dotlower dotupper int "
    "hex exploded bytes namepart case-changed e6 e7 decimal2 decimal3 decimal4 decimal5 "
    "decimal6 uuid b64 b64phase pct pct+ pct2 HEX jsonesc html utf16le json jwt form gzip "
    "zstd deflate br xml text protobuf".split()
)
CHAIN_STEPS = frozenset(
    [*_LABELS, *HASHES, *(f"{h}:{f}" for h in HASHES for f in ("hex", "HEX", "b64", "b64url"))]
)
LIST_NAMES = (
    "tracker-lists",
    "gazeback-export-domains",
    "gazeback-sensitive",
    "gazeback-websites",
    "gazeback-cdn",
    "gazeback-vendor-cloud",
    "gazeback-key-names",
    "gazeback-chain-steps",
)
PROFILES = ("E1", "E2")
COUNT_MEASURES = (
    "devices requests requests_exported requests_to_other requests_suppressed leaks "
    "leaks_exported leaks_suppressed third_party_context_requests".split()
)
SOURCES = "proxy har mitm pcap demo logs tracker_control app_privacy_report other".split()

# --- value rules --------------------------------------------------------------------------

Rule = Callable[[Any], bool]
_PID = re.compile(r"[0-9a-f]{16}")
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}")
_DAY = re.compile(r"\d{4}-\d{2}-\d{2}")
_VERSION = re.compile(r"[0-9A-Za-z][0-9A-Za-z.+_-]{0,31}")
_SHA256 = re.compile(r"[0-9a-f]{64}")


def count(v: Any) -> bool:
    return type(v) is int and 0 <= v < 2**53


def flag(v: Any) -> bool:
    return v in (0, 1) and type(v) is int


def enum(values: Any) -> Rule:
    allowed = frozenset(values)
    return lambda v: isinstance(v, str) and v in allowed


def pattern(rx: re.Pattern[str]) -> Rule:
    return lambda v: isinstance(v, str) and rx.fullmatch(v) is not None


def chain_ok(v: Any) -> bool:
    return isinstance(v, str) and (v == OTHER or all(s in CHAIN_STEPS for s in v.split(">")))


def key_name_ok(v: Any) -> bool:
    return isinstance(v, str) and (v == OTHER or v in KEY_NAMES)


pid = pattern(_PID)
# "domain" and "readme" are placeholders: the verifier supplies the allowlist and the
# expected datasheet text.
DOMAIN = "domain"
README = "readme"

E1_TABLES: dict[str, dict[str, Any]] = {
    "export_meta": {
        "export_id": pattern(_UUID),
        "schema_version": lambda v: v == SCHEMA_VERSION,
        "profile": enum(["E1"]),
        "created_day": pattern(_DAY),
        "time_bucket_s": count,
        "sensitive_bucket_s": count,
        "min_cell": count,
        "k": count,
        "is_linkable": flag,
        "needle_count": count,
        "tool_version": pattern(_VERSION),
    },
    "export_lists": {
        "name": enum(LIST_NAMES),
        "version": pattern(_VERSION),
        "sha256": pattern(_SHA256),
        "entries": count,
    },
    "export_counts": {"measure": enum(COUNT_MEASURES), "value": count},
    "provenance": {"source": enum(SOURCES), "tool_version": pattern(_VERSION), "captures": count},
    "devices": {
        "device_pid": pid,
        "device_class": enum(DEVICE_CLASSES),
        "os_family": enum(OS_FAMILIES),
        "vendor": enum(VENDORS),
    },
    "traffic": {
        "device_pid": pid,
        "bucket_start": count,
        "dest_domain": DOMAIN,
        "dest_role": enum(ROLES),
        "encrypted": flag,
        "inspected": flag,
        "requests": count,
        "bytes_up": count,
        "bytes_down": count,
    },
    "leaks": {
        "device_pid": pid,
        "bucket_start": count,
        "dest_domain": DOMAIN,
        "pii_type": enum(PII_TYPES),
        "transform_chain": chain_ok,
        "location_kind": enum([*LOCATION_KINDS, OTHER]),
        "key_name": key_name_ok,
        "tier": enum(TIERS),
        "count": count,
    },
    "id_sharing": {
        "dest_domain_a": DOMAIN,
        "dest_domain_b": DOMAIN,
        "pii_type": enum(PII_TYPES),
        "count": count,
    },
    "readme": {"section": README, "body": README},
}
PER_DEVICE_TABLES = ("traffic", "leaks")


def column_type(name: str, rule: Any) -> str:
    """SQLite type of an export column: INTEGER for counts and flags, else TEXT."""
    return "INTEGER" if rule in (count, flag) or name == "schema_version" else "TEXT"


def create_table_sql(table: str, cols: dict[str, Any]) -> str:
    """The exact ``CREATE TABLE`` text of an export table (as sqlite-utils 3.x/4.x writes it).

    Fixed here, not left to a library, because the recipient's verifier compares the
    file's schema with it byte for byte: a comment or a changed type could carry data.
    """
    body = ",\n".join(f'   "{c}" {column_type(c, r)}' for c, r in cols.items())
    return f'CREATE TABLE "{table}" (\n{body}\n)'


# --- allowlists ---------------------------------------------------------------------------


def list_digest(items: Any) -> str:
    return hashlib.sha256("\n".join(sorted(items)).encode()).hexdigest()


def index_digest(index: TrackerIndex) -> tuple[str, str]:
    """(version, sha256) standing for the tracker lists behind ``index``."""
    versions = index.versions()
    text = json.dumps(versions, sort_keys=True)
    newest = max(versions.values()) if versions else "none"
    return newest, hashlib.sha256(text.encode()).hexdigest()


def list_rows(index: TrackerIndex) -> list[dict[str, Any]]:
    """One row per allowlist: name, version, SHA-256, size."""
    version, digest = index_digest(index)
    ours = {
        "gazeback-export-domains": [f"{r} {d}" for d, r in export_domains().items()],
        "gazeback-sensitive": [f"{c} {d}" for d, c in sensitive_domains().items()],
        "gazeback-websites": WEBSITES,
        "gazeback-cdn": CDN_DOMAINS,
        "gazeback-vendor-cloud": VENDOR_CLOUD_DOMAINS,
        "gazeback-key-names": KEY_NAMES,
        "gazeback-chain-steps": CHAIN_STEPS,
    }
    rows = [{"name": "tracker-lists", "version": version, "sha256": digest, "entries": 0}]
    rows[0]["entries"] = len(index._domains)
    for name, items in ours.items():
        rows.append(
            {"name": name, "version": f"v{SCHEMA_VERSION}", "sha256": list_digest(items),
             "entries": len(items)}
        )  # fmt: skip
    return rows


def exportable_role(index: TrackerIndex, domain: str) -> str | None:
    """The role under which the tracker knowledge would let ``domain`` be named, if any.

    Used by ``scripts/build_export_domains.py`` to propose the reviewed list; exports
    themselves read only that list.
    """
    d = normalize_host(domain or "")
    if not d or d in WEBSITES or d != domain or is_sensitive(d):
        return None
    m = index.lookup(d)
    if m is None or not m.is_tracker or m.matched_domain != d:
        return None  # a tracker on a site's own subdomain would name the site
    return CATEGORY_ROLE.get(m.category)


class Allowlist:
    """eTLD+1 → role for the destinations an export may name (set A of design (b)).

    Reviewed tracker domains (``export-domains.txt``), CDNs and vendor clouds; never a
    website people open themselves, never a sensitive domain.
    """

    def __init__(self, index: TrackerIndex) -> None:
        self.index = index
        self.role = lru_cache(maxsize=65536)(self._role)

    def _role(self, domain: str) -> str | None:
        d = normalize_host(domain or "")
        if not d or d in WEBSITES or d != domain or is_sensitive(d):
            return None
        if d in CDN_DOMAINS:
            return "cdn"
        if d in VENDOR_CLOUD_DOMAINS:
            return "vendor_cloud"
        return export_domains().get(d)

    def destination(
        self, domain: str | None, sites: frozenset[str] = frozenset()
    ) -> tuple[str, str]:
        """``(dest_domain, dest_role)``: ``(site)`` for a site the person opened (``sites``),
        the eTLD+1 if it is in A, else ``("(other)", "other")``."""
        if domain and domain in sites:
            return SITE, "other"
        role = self.role(domain) if domain else None
        return (domain, role) if domain and role else (OTHER, "other")

    def allows(self, domain: Any) -> bool:
        return domain in PLACEHOLDERS or (isinstance(domain, str) and self.role(domain) is not None)


def classify_device(kind: str | None, os_family: str | None) -> tuple[str, str, str]:
    """devices.kind and os_family → (device_class, os_family, vendor), all closed enums."""
    k = (kind or "").strip().lower()
    cls = k if k in DEVICE_CLASSES else KIND_TO_CLASS.get(k, "other")
    osf = OS_TO_FAMILY.get((os_family or "").strip().lower(), "other")
    return cls, osf, OS_TO_VENDOR.get(osf, "other")


def bucket_for(device_class: str, bucket_s: int) -> int:
    """The bucket a device's rows get: daily at least for sensitive device classes."""
    return max(bucket_s, 86_400) if device_class in SENSITIVE_CLASSES else bucket_s


def check_bucket(bucket_s: int) -> None:
    """Raise ValueError unless ``bucket_s`` is whole hours and tiles the day (or whole days)."""
    if bucket_s < 3600 or bucket_s % 3600 or (86_400 % bucket_s and bucket_s % 86_400):
        raise ValueError(
            f"--bucket {bucket_s}: use whole hours that divide a day (3600, 7200, 10800, "
            "14400, 21600, 43200) or whole days (86400, 604800)"
        )


assert set(VARIANTS) <= set(PII_TYPES)


# The guarantees a verifier checks (G1-G8) and the result of one check: shared by the
# verifier and the pool merge (G4 for pools), so that neither imports the other.
TITLES = {
    "G1": "no identifier in any byte",
    "G2": "whitelist schema",
    "G3": "keyed, fresh pseudonyms",
    "G4": "allowlists and k-threshold",
    "G5": "time buckets and cell sizes",
    "G6": "no first-party browsing per device",
    "G7": "file hygiene",
    "G8": "no domain off the allowlist",
}


@dataclass(frozen=True)
class Check:
    guarantee: str
    ok: bool
    reason: str
    skipped: bool = False  # not checked in this view (it does not fail the file)

    @property
    def line(self) -> str:
        word = "skip" if self.skipped else ("pass" if self.ok else "FAIL")
        # plain words first; the guarantee's number (docs/security.md) for who looks it up
        return f"{word}  {TITLES[self.guarantee]} (check {self.guarantee}): {self.reason}"


def require_pyarrow() -> None:
    """Raise ImportError saying how to install the research extra when pyarrow is missing."""
    try:
        import pyarrow  # noqa: F401
        import pyarrow.parquet  # noqa: F401
    except ImportError as e:
        raise ImportError(INSTALL_HINT) from e
