"""The person's identifiers → every string they may travel as (pure).

Design (a) B and C of the leak detector (``docs/leak-detection.md``): each identity gives normalized
*variants* (Gmail canonical form, E.164, MAC formats, UUID forms, ...); each variant
gives *needles* through a transform closure (md5 ... sha512 → hex, HEX, base64,
base64url, chained to depth 2 through the hex form; percent-encoding single and
double; hex of the UTF-8 bytes; base64 "phase" needles that find the value at any
offset inside a longer base64 blob). All needles go into one Aho–Corasick automaton
(``Matcher``: the Rust ``ahocorasick_rs`` automaton, 4–5× faster per character than
pyahocorasick on these needles, #19).
"""

from __future__ import annotations

import base64
import hashlib
import ipaddress
import re
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Literal
from urllib.parse import quote, quote_plus

import ahocorasick_rs

from gazeback.models import IdentityValue

Tier = Literal["strong", "medium", "weak"]

MIN_NEEDLE = 8  # shorter strings are only matched as a whole leaf under a telling key
MIN_DIGITS = 9  # digit-only needles (phone, IMEI) need at least this many digits
HASHES = ("md5", "sha1", "sha224", "sha256", "sha384", "sha512")
PHASE_HASHES = ("md5", "sha1", "sha256")  # digests also searched inside base64 blobs
# Display formats that nobody hashes: matched as sent, not put through the hash closure.
UNHASHED = frozenset(
    {"fmtnational", "fmtintl", "intl00", "dashed", "dashlower", "dashupper", "dotlower", "dotupper"}
)

# Keys under which a short value (a first name, a 6-letter handle) still counts.
NAME_KEYS = frozenset(
    "fn ln name first_name firstname first given_name givenname last_name lastname last "
    "family_name familyname surname full_name fullname display_name displayname username "
    "user_name nickname".split()
)
ID_KEYS = frozenset(
    "id uid user_id userid email em mail phone ph tel msisdn imei mac adid aaid gaid idfa "
    "android_id device_id deviceid ip external_id".split()
)


# --- which leaves are worth a fingerprint -------------------------------------------------
#
# `gazeback rescan` looks an identity added later up in the stored leaf fingerprints, by
# exact needle (``Profile.exact``: every variant, digest and digest of a digest of every
# kind) or by short value under a name key (``Profile.whole_leaf``). Builder.add keeps no
# needle shorter than MIN_NEEDLE characters, or MIN_DIGITS when it is all digits, so a
# shorter leaf can only ever match a short value under a name key; and a request's own
# host (unless an IP address, kind ``ip``) or the user agent the software sends is no
# value a person registers. Only the leaves that pass are fingerprinted (#19: about half).
NOT_DATA_LOCATIONS = frozenset({"url.host", "header:user-agent"})
_IP_CHARS = frozenset("0123456789abcdef:.[]")


def location_keys(location: str) -> set[str]:
    """The key names of a stored leaf location (``body.json:$.user.first_name`` → first_name)."""
    last = location.rsplit(">", 1)[-1]
    name = last.rsplit(":", 1)[-1].rsplit(".", 1)[-1].lower()
    names = {name}
    if "[" in name and name.endswith("]"):
        names.add(name[name.rindex("[") + 1 : -1])
    return names


@lru_cache(maxsize=4096)
def _name_keyed(location: str) -> bool:
    return bool(location_keys(location) & NAME_KEYS)


def could_hold_identifier(location: str, text: str) -> bool:
    """Whether a leaf's fingerprint could ever be found by ``rescan`` for any identity kind.

    ``text`` is the leaf as sent; it is compared the way fingerprints are (trimmed, lower case).
    """
    t = text.strip()
    n = len(t)
    if n < MIN_NEEDLE or (n < MIN_DIGITS and t.isdigit()):
        return n > 0 and _name_keyed(location)
    if location in NOT_DATA_LOCATIONS:
        return location == "url.host" and set(t.lower()) <= _IP_CHARS
    return True


@dataclass(frozen=True)
class Needle:
    """What a matched string means: whose value, through which chain, how sure."""

    identity_id: int
    pii_type: str
    chain: str  # e.g. "lower>sha256:hex", "plain>b64phase"
    tier: Tier
    bounded: bool = True  # alphanumeric neighbours disqualify the match
    binary: bool = False  # raw-byte form: only meaningful in binary leaves


@dataclass(frozen=True)
class Place:
    identity_id: int
    lat: float
    lon: float
    radius_m: float


@dataclass
class Profile:
    """Everything detection needs for one set of identities. Build with ``build_profile``."""

    automaton: Matcher | None  # None when there is nothing to search
    whole_leaf: dict[str, tuple[Needle, ...]]  # lower-cased short values, key context only
    places: tuple[Place, ...]
    needle_count: int
    identity_ids: tuple[int, ...]
    # needle string -> meanings, for whole-leaf (retroactive) matching: no wire or phase forms
    exact: dict[str, tuple[Needle, ...]] = field(default_factory=dict)
    # lower-cased text forms of case-insensitive values, run over the lower-cased request:
    # finds "Jane.Doe@Example.org" when "jane.doe@example.org" was registered
    ci_automaton: Matcher | None = None


class Matcher:
    """Every occurrence of any of ``words`` in a text (overlapping), as pyahocorasick reports them.

    ``iter(text)`` yields ``(end, value)`` — ``end`` the index of a match's last character,
    ``value`` the word's value — ordered by end, longer matches first at the same end. The
    automaton is ``ahocorasick_rs`` (Rust); it cannot be pickled, so a Matcher pickles as its
    words and rebuilds (spawned import workers)."""

    __slots__ = ("_ac", "_values", "_words")

    def __init__(self, words: dict[str, Any]) -> None:
        self._words = words
        self._values = list(words.values())
        self._ac = ahocorasick_rs.AhoCorasick(list(words))

    def iter(self, text: str) -> Iterator[tuple[int, Any]]:
        values = self._values
        for i, _, end in self._ac.find_matches_as_indexes(text, overlapping=True):
            yield end - 1, values[i]

    def __len__(self) -> int:
        return len(self._values)

    def __getstate__(self) -> dict[str, Any]:
        return {"words": self._words}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["words"])  # type: ignore[misc]


# --- variants -----------------------------------------------------------------------------


def _email_variants(value: str) -> Iterator[tuple[str, str]]:
    yield "plain", value
    v = value.strip()
    yield "trim", v
    yield "lower", v.lower()
    yield "upper", v.upper()
    local, _, domain = v.lower().rpartition("@")
    if domain in ("gmail.com", "googlemail.com") and local:
        canonical = local.split("+", 1)[0].replace(".", "") + "@gmail.com"
        yield "gmail", canonical


def _phone_variants(value: str) -> Iterator[tuple[str, str]]:
    import phonenumbers

    yield "plain", value
    try:
        num = phonenumbers.parse(value, None if value.strip().startswith("+") else "US")
    except phonenumbers.NumberParseException:
        digits = re.sub(r"\D", "", value)
        yield "digits", digits
        return
    e164 = phonenumbers.format_number(num, phonenumbers.PhoneNumberFormat.E164)
    national = str(num.national_number)
    yield "e164", e164
    yield "e164digits", e164[1:]
    yield "intl00", "00" + e164[1:]
    yield "national", national
    yield "trunk0", "0" + national
    yield "fmtnational", phonenumbers.format_number(num, phonenumbers.PhoneNumberFormat.NATIONAL)
    yield "fmtintl", phonenumbers.format_number(num, phonenumbers.PhoneNumberFormat.INTERNATIONAL)
    yield "digits", re.sub(r"\D", "", phonenumbers.format_number(num, 1))


def _name_variants(value: str) -> Iterator[tuple[str, str]]:
    v = " ".join(value.split())
    parts = v.split(" ")
    yield "plain", v
    yield "lower", v.lower()
    yield "upper", v.upper()
    if len(parts) >= 2:
        first, last = parts[0], parts[-1]
        yield "lastfirst", f"{last}, {first}"
        yield "plusjoined", f"{first}+{last}".lower()
        yield "nospace", re.sub(r"[^a-z]", "", v.lower())


def _uuid_variants(value: str) -> Iterator[tuple[str, str]]:
    yield "plain", value
    try:
        u = uuid.UUID(value.strip())
    except ValueError:
        yield "lower", value.strip().lower()
        yield "upper", value.strip().upper()
        return
    yield "lower", str(u)
    yield "upper", str(u).upper()
    yield "nodash", u.hex
    yield "nodashupper", u.hex.upper()


def _android_id_variants(value: str) -> Iterator[tuple[str, str]]:
    v = value.strip()
    yield "plain", v
    yield "lower", v.lower()
    yield "upper", v.upper()
    if re.fullmatch(r"[0-9a-fA-F]{1,16}", v):
        yield "decimal", str(int(v, 16))


def _imei_variants(value: str) -> Iterator[tuple[str, str]]:
    digits = re.sub(r"\D", "", value)
    yield "plain", digits
    if len(digits) == 15:
        yield "imei14", digits[:14]
        yield "dashed", f"{digits[:2]}-{digits[2:8]}-{digits[8:14]}-{digits[14]}"


def _mac_variants(value: str) -> Iterator[tuple[str, str]]:
    h = re.sub(r"[^0-9a-fA-F]", "", value).lower()
    if len(h) != 12:
        yield "plain", value.strip()
        return
    pairs = [h[i : i + 2] for i in range(0, 12, 2)]
    for case, f in (("lower", str.lower), ("upper", str.upper)):
        yield f"colon{case}", f(":".join(pairs))
        yield f"dash{case}", f("-".join(pairs))
        yield f"bare{case}", f(h)
        yield f"dot{case}", f(".".join(h[i : i + 4] for i in range(0, 12, 4)))


def _ip_variants(value: str) -> Iterator[tuple[str, str]]:
    try:
        ip = ipaddress.ip_address(value.strip())
    except ValueError:
        yield "plain", value.strip()
        return
    yield "plain", str(ip)
    if ip.version == 4:
        yield "int", str(int(ip))
        yield "hex", f"{int(ip):08x}"
    else:
        yield "exploded", ip.exploded


def _other_variants(value: str) -> Iterator[tuple[str, str]]:
    yield "plain", value
    yield "lower", value.strip().lower()
    yield "upper", value.strip().upper()


VARIANTS = {
    "email": _email_variants,
    "phone": _phone_variants,
    "name": _name_variants,
    "ad_id": _uuid_variants,
    "android_id": _android_id_variants,
    "imei": _imei_variants,
    "mac": _mac_variants,
    "ip": _ip_variants,
    "other": _other_variants,
}


def raw_byte_forms(kind: str, value: str) -> list[tuple[str, bytes]]:
    """Binary forms of an identifier (UUID as 16 bytes, MAC as 6 bytes)."""
    if kind == "ad_id":
        try:
            return [("bytes", uuid.UUID(value.strip()).bytes)]
        except ValueError:
            return []
    if kind == "mac":
        h = re.sub(r"[^0-9a-fA-F]", "", value)
        return [("bytes", bytes.fromhex(h))] if len(h) == 12 else []
    return []


def parse_location(value: str) -> tuple[float, float, float]:
    """``"lat,lon"`` or ``"lat,lon,radius_m"`` → (lat, lon, radius_m); raises ValueError."""
    parts = [p.strip() for p in value.split(",")]
    if len(parts) not in (2, 3):
        raise ValueError("a location is 'lat,lon' or 'lat,lon,radius_m', e.g. 52.52,13.405,1000")
    lat, lon = float(parts[0]), float(parts[1])
    radius = float(parts[2]) if len(parts) == 3 else 1000.0
    if not (-90 <= lat <= 90 and -180 <= lon <= 180 and 0 < radius <= 50_000):
        raise ValueError("latitude must be within ±90, longitude ±180, radius 1..50000 m")
    return lat, lon, radius


def validate(kind: str, value: str) -> None:
    """Raise ValueError when ``value`` cannot be searched for as a ``kind``."""
    if kind == "location":
        parse_location(value)
        return
    if kind not in VARIANTS:
        raise ValueError(f"unknown kind {kind!r}")
    if not value.strip():
        raise ValueError("the value is empty")
    if kind == "phone" and len(re.sub(r"\D", "", value)) < 7:
        raise ValueError("a phone number needs at least 7 digits; include the country code")
    if kind == "mac" and len(re.sub(r"[^0-9a-fA-F]", "", value)) != 12:
        raise ValueError("a MAC address has 12 hex digits, e.g. aa:bb:cc:dd:ee:ff")


# --- transforms ---------------------------------------------------------------------------


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode().rstrip("=")


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def phase_needles(data: bytes) -> Iterator[str]:
    """Cores of base64(data) that appear in the base64 of any byte string containing data.

    For phase p, encode p filler bytes + data and keep only the characters fully
    determined by data's own bits.
    """
    for p, skip in ((0, 0), (1, 2), (2, 3)):
        enc = base64.b64encode(b"\0" * p + data).decode()
        core = enc[skip : (8 * (p + len(data))) // 6]
        yield core
        yield core.replace("+", "-").replace("/", "_")


def digest_forms(name: str, data: bytes) -> Iterator[tuple[str, str, bytes]]:
    """(chain suffix, needle, raw digest) for each output form of one hash."""
    d = hashlib.new(name, data).digest()
    h = d.hex()
    yield f"{name}:hex", h, d
    yield f"{name}:HEX", h.upper(), d
    yield f"{name}:b64", _b64(d), d
    yield f"{name}:b64url", _b64url(d), d


def wire_forms(text: str) -> Iterator[tuple[str, str]]:
    """How a plain string may be escaped on the wire."""
    raw = text.encode()
    yield "pct", quote(text, safe="")
    yield "pct+", quote_plus(text, safe="")
    yield "pct2", quote(quote(text, safe=""), safe="")
    yield "hex", raw.hex()
    yield "HEX", raw.hex().upper()
    yield "jsonesc", "".join(c if c.isalnum() or c in "._-" else f"\\u{ord(c):04x}" for c in text)
    yield "html", "".join(c if c.isalnum() or c in "._-" else f"&#{ord(c)};" for c in text)
    yield "utf16le", text.encode("utf-16-le").decode("latin-1")


@dataclass
class _Builder:
    pool: dict[str, list[Needle]] = field(default_factory=dict)
    exact: dict[str, list[Needle]] = field(default_factory=dict)
    whole_leaf: dict[str, list[Needle]] = field(default_factory=dict)

    def add(self, s: str, n: Needle, exact: bool = False) -> None:
        if n.binary:  # 6 raw bytes of a MAC are as specific as 12 hex digits
            pass
        elif s.isdigit():
            if len(s) < MIN_DIGITS:
                return
        elif len(s) < MIN_NEEDLE:
            return
        self.pool.setdefault(s, []).append(n)
        if exact:
            self.exact.setdefault(s, []).append(n)


def _needles_for(ident: IdentityValue, b: _Builder) -> None:
    kind, iid = ident.kind, ident.id
    full_tier: Tier = "medium" if kind == "name" else "strong"
    variants: dict[str, str] = {}
    for label, text in VARIANTS[kind](ident.value):
        variants.setdefault(text, label)  # first (simplest) label wins for equal strings
    if kind == "name":
        for part in ident.value.split()[:1] + ident.value.split()[-1:]:
            low = part.lower()
            n = Needle(iid, kind, "namepart", "weak")
            b.whole_leaf.setdefault(low, []).append(n)
            for hname in HASHES:
                for suffix, s, _ in digest_forms(hname, low.encode()):
                    b.add(s, Needle(iid, kind, f"namepart>{suffix}", "weak"), exact=True)
    for text, label in variants.items():
        if len(text) < MIN_NEEDLE and not (text.isdigit() and len(text) >= MIN_DIGITS):
            b.whole_leaf.setdefault(text.lower(), []).append(Needle(iid, kind, label, "medium"))
        b.add(text, Needle(iid, kind, label, full_tier), exact=True)
        for wire, s in wire_forms(text):
            if s != text:
                b.add(s, Needle(iid, kind, f"{label}>{wire}", full_tier, bounded=wire != "utf16le"))
        if label != "nospace":  # a name run together also sits inside e-mail addresses
            for s in phase_needles(text.encode()):
                b.add(s, Needle(iid, kind, f"{label}>b64phase", full_tier, bounded=False))
        if label in UNHASHED:
            continue
        for h1 in HASHES:
            for suffix, s, raw in digest_forms(h1, text.encode()):
                b.add(s, Needle(iid, kind, f"{label}>{suffix}", full_tier), exact=True)
                if suffix.endswith(":hex"):
                    if h1 in PHASE_HASHES:
                        for p in phase_needles(s.encode()):
                            n = Needle(iid, kind, f"{label}>{suffix}>b64phase", full_tier, False)
                            b.add(p, n)
                    for h2 in HASHES:
                        for suffix2, s2, _ in list(digest_forms(h2, s.encode()))[:2]:
                            chain = f"{label}>{suffix}>{suffix2}"
                            b.add(s2, Needle(iid, kind, chain, full_tier), exact=True)
                if suffix == "sha256:hex":
                    for p in phase_needles(raw):
                        b.add(p, Needle(iid, kind, f"{label}>sha256>b64phase", full_tier, False))
    for label, raw in raw_byte_forms(kind, ident.value):
        b.add(raw.decode("latin-1"), Needle(iid, kind, label, "medium", False, True))
        for s in phase_needles(raw):
            b.add(s, Needle(iid, kind, f"{label}>b64phase", full_tier, bounded=False))


CASE_INSENSITIVE = frozenset({"email", "name", "mac", "ad_id", "android_id", "imei", "other"})
TEXT_CHAINS = frozenset({"plain", "lower", "upper"})


def _case_insensitive(pool: dict[str, list[Needle]]) -> Matcher | None:
    words: dict[str, list[Needle]] = {}
    for s, meanings in pool.items():
        for n in meanings:
            if n.pii_type in CASE_INSENSITIVE and n.chain in TEXT_CHAINS and not n.binary:
                lowered = Needle(n.identity_id, n.pii_type, "case-changed", n.tier, n.bounded)
                words.setdefault(s.lower(), []).append(lowered)
    if not words:
        return None
    return Matcher({s: (len(s), tuple(dict.fromkeys(meanings))) for s, meanings in words.items()})


def build_profile(identities: Sequence[IdentityValue]) -> Profile:
    """Precompute every needle for ``identities`` and build one Aho–Corasick automaton."""
    b = _Builder()
    places: list[Place] = []
    for ident in identities:
        if ident.kind == "location":
            lat, lon, radius = parse_location(ident.value)
            places.append(Place(ident.id, lat, lon, radius))
        elif ident.kind in VARIANTS:
            _needles_for(ident, b)
    automaton = None
    if b.pool:
        automaton = Matcher({s: (len(s), tuple(meanings)) for s, meanings in b.pool.items()})
    return Profile(
        ci_automaton=_case_insensitive(b.pool),
        automaton=automaton,
        whole_leaf={k: tuple(dict.fromkeys(v)) for k, v in b.whole_leaf.items()},
        places=tuple(places),
        needle_count=len(b.pool),
        identity_ids=tuple(i.id for i in identities),
        exact={k: tuple(v) for k, v in b.exact.items()},
    )


def identity_in(text: str, profile: Profile | None) -> str | None:
    """The kind of the first registered identity anywhere in ``text`` (any needle form, any
    case for case-insensitive kinds, neighbours not checked: the summary's check), or None.

    For short stored names (an app name) where any trace of an identity is too much."""
    if profile is None or not text:
        return None
    for automaton, t in ((profile.automaton, text), (profile.ci_automaton, text.lower())):
        if automaton is None:
            continue
        for _, (_, needles) in automaton.iter(t):
            return str(needles[0].pii_type)
    return None
