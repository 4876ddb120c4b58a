"""A labeled synthetic corpus for the leak detector (§2.6 of ``pii-and-anonymization.md``).

Personas with valid-looking identifiers; request templates shaped after public SDK
documentation (measurement pixels, batch analytics, attribution installs, IoT
telemetry, protobuf crash reports, JWTs, multipart uploads); each flow carries at most
one positive slot, drawn through a transform chain, plus hard negatives of the same
shapes (other personas' values, random UUIDs and hex, Luhn-valid numbers, timestamps,
coordinates 2–50 km away and decoys just outside the radius, the first name inside
other words). Labels are written at generation time. Deterministic for a seed.
"""

from __future__ import annotations

import base64
import hashlib
import json
import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from urllib.parse import quote

from leaktemplates import (
    TEMPLATES,
    Slot,
    Template,
    location_flow,
    make_observation,
    random_uuid,
)

from gazeback.models import IdentityValue, Observation

FIRST = "John Maria Ahmed Lena Kenji Chloe Mateo Aisha Oskar Priya Tomasz Ines Noah Yara".split()
LAST = "Doe Schmidt Okafor Rossi Tanaka Dubois Silva Haddad Nilsson Patel Nowak Costa".split()
WORDS = "Johnsonville Marianne Lenamart Noahs-ark Inesita Costanza Doemax Patelco".split()
DOMAINS = ["gmail.com", "example.org", "mail.example.net", "posteo.example", "googlemail.com"]
OUIS = ["f0:18:98", "3c:22:fb", "b8:27:eb", "44:65:0d", "fc:a6:67", "00:17:88"]
PHONES = [("+1", "{a}{b}{c}"), ("+49", "15{x}"), ("+44", "7700{y}")]
HOME_R = 1000.0

# chain name -> (family, in_scope)
CHAINS: dict[str, tuple[str, bool]] = {
    "plain": ("plain", True),
    "upper": ("case", True),
    "pct": ("percent", True),
    "pct2": ("percent", True),
    "b64": ("base64", True),
    "b64url": ("base64", True),
    "hex": ("hex", True),
    "md5:hex": ("hash", True),
    "sha1:hex": ("hash", True),
    "sha224:hex": ("hash", True),
    "sha256:hex": ("hash", True),
    "sha384:hex": ("hash", True),
    "sha512:hex": ("hash", True),
    "sha256:HEX": ("hash", True),
    "sha256:b64": ("hash", True),
    "md5:b64url": ("hash", True),
    "norm>sha256:hex": ("normalized-hash", True),
    "md5>sha256:hex": ("hash-depth2", True),
    "sha1>md5:hex": ("hash-depth2", True),
    "json>b64": ("nested-base64", True),
    "blob>b64": ("base64-offset", True),
    "xor": ("out-of-scope", False),
    "trunc_sha256": ("out-of-scope", False),
    "salted_sha256": ("out-of-scope", False),
    "reversed": ("out-of-scope", False),
}
IN_SCOPE = [c for c, (_, ok) in CHAINS.items() if ok]
OUT_OF_SCOPE = [c for c, (_, ok) in CHAINS.items() if not ok]
KNOWN_TYPES = ("email", "phone", "ad_id", "android_id", "imei", "mac", "ip")


@dataclass
class Persona:
    identities: list[IdentityValue]
    first: str
    home: tuple[float, float]

    def value(self, kind: str) -> IdentityValue:
        return next(i for i in self.identities if i.kind == kind)


@dataclass
class Flow:
    obs: Observation
    persona: int
    family: str  # request template
    pii_type: str | None = None  # None: a negatives-only flow
    identity_id: int | None = None
    chain: str | None = None
    labels: dict[str, object] = field(default_factory=dict)


def luhn_digit(digits: str) -> str:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2 == 0:
            d = d * 2 - 9 if d * 2 > 9 else d * 2
        total += d
    return str((10 - total % 10) % 10)


def make_persona(rng: random.Random, index: int) -> Persona:
    first, last = rng.choice(FIRST), rng.choice(LAST)
    sep = rng.choice([".", "", "_"])
    email = f"{first}{sep}{last}{rng.randint(1, 999)}@{rng.choice(DOMAINS)}"
    if rng.random() < 0.5:
        email = email.lower()
    cc, pattern = rng.choice(PHONES)
    national = pattern.format(
        a=rng.choice(["212", "415", "646", "312"]),
        b=rng.randint(200, 999),
        c=rng.randint(1000, 9999),
        x=rng.randint(10**7, 10**8 - 1),
        y=rng.randint(100000, 999999),
    )
    imei14 = "35" + "".join(str(rng.randint(0, 9)) for _ in range(12))
    mac = rng.choice(OUIS) + ":" + ":".join(f"{rng.randint(0, 255):02x}" for _ in range(3))
    base = index * 100
    home = (rng.uniform(-50, 60), rng.uniform(-120, 140))
    kinds = [
        ("email", email),
        ("phone", f"{cc} {national}"),
        ("name", f"{first} {last}"),
        ("ad_id", str(random_uuid(rng))),
        ("android_id", f"{rng.getrandbits(64):016x}"),
        ("imei", imei14 + luhn_digit(imei14)),
        ("mac", mac),
        (
            "ip",
            ".".join(
                str(rng.randint(lo, hi)) for lo, hi in ((11, 223), (0, 255), (0, 255), (1, 254))
            ),
        ),
        ("location", f"{home[0]:.6f},{home[1]:.6f},{HOME_R:.0f}"),
    ]
    ids = [IdentityValue(base + i + 1, k, v, k) for i, (k, v) in enumerate(kinds)]
    return Persona(ids, first, home)


def presentation(rng: random.Random, kind: str, value: str, hashed: bool) -> str:
    """The form an SDK would put on the wire (normalized before hashing)."""
    import phonenumbers

    if kind == "email":
        v = value.strip().lower()
        local, _, dom = v.rpartition("@")
        if hashed and dom in ("gmail.com", "googlemail.com") and rng.random() < 0.5:
            return local.split("+")[0].replace(".", "") + "@gmail.com"
        return v if hashed or rng.random() < 0.5 else value
    if kind == "phone":
        num = phonenumbers.parse(value, None)
        e164 = phonenumbers.format_number(num, phonenumbers.PhoneNumberFormat.E164)
        forms = [e164, e164[1:], str(num.national_number)]
        if not hashed:
            forms.append(
                phonenumbers.format_number(num, phonenumbers.PhoneNumberFormat.INTERNATIONAL)
            )
        return rng.choice(forms)
    if kind == "ad_id":
        return rng.choice([value, value.upper()] + ([] if hashed else [value.replace("-", "")]))
    if kind == "mac":
        return rng.choice(
            [value, value.upper(), value.replace(":", "")]
            + ([] if hashed else [value.replace(":", "-").upper()])
        )
    return value


def apply_chain(rng: random.Random, text: str, chain: str) -> str:
    if chain == "plain":
        return text
    if chain == "upper":
        return text.upper()
    if chain == "pct":
        return quote(text, safe="")
    if chain == "pct2":
        return quote(quote(text, safe=""), safe="")
    if chain in ("b64", "b64url"):
        enc = base64.b64encode(text.encode()).decode()
        return enc.replace("+", "-").replace("/", "_").rstrip("=") if chain == "b64url" else enc
    if chain == "hex":
        return text.encode().hex()
    if chain == "norm>sha256:hex":
        return hashlib.sha256(text.encode()).hexdigest()
    if chain == "md5>sha256:hex":
        return hashlib.sha256(hashlib.md5(text.encode()).hexdigest().encode()).hexdigest()
    if chain == "sha1>md5:hex":
        return hashlib.md5(hashlib.sha1(text.encode()).hexdigest().encode()).hexdigest()
    if ":" in chain:
        name, form = chain.split(":")
        d = hashlib.new(name, text.encode()).digest()
        return {
            "hex": d.hex(),
            "HEX": d.hex().upper(),
            "b64": base64.b64encode(d).decode(),
            "b64url": base64.urlsafe_b64encode(d).decode().rstrip("="),
        }[form]
    if chain == "json>b64":
        doc = {"distinct_id": random_uuid(rng), "props": {"$email": text, "n": rng.randint(1, 99)}}
        return base64.b64encode(json.dumps(doc).encode()).decode()
    if chain == "blob>b64":
        blob = rng.randbytes(rng.randint(1, 40)) + text.encode() + rng.randbytes(rng.randint(1, 40))
        return base64.b64encode(blob).decode()
    if chain == "xor":
        return bytes(b ^ 0x5A for b in text.encode()).hex()
    if chain == "trunc_sha256":
        return hashlib.sha256(text.encode()).hexdigest()[:16]
    if chain == "salted_sha256":
        return hashlib.sha256(b"s3cr3t" + text.encode()).hexdigest()
    if chain == "reversed":
        return text[::-1]
    raise ValueError(chain)


# --- hard negatives -------------------------------------------------------------------------


def negative_values(rng: random.Random, other: Persona, me: Persona) -> list[str]:
    imei14 = "35" + "".join(str(rng.randint(0, 9)) for _ in range(12))
    return [
        other.value(rng.choice(KNOWN_TYPES)).value,
        hashlib.sha256(other.value("email").value.lower().encode()).hexdigest(),
        random_uuid(rng),
        f"{rng.getrandbits(64):016x}",
        imei14 + luhn_digit(imei14),
        str(rng.randint(1_500_000_000, 1_900_000_000)),
        str(rng.randint(1_500_000_000_000, 1_900_000_000_000)),
        me.value("email").value.rpartition("@")[2],
        rng.choice(WORDS),
        me.first + rng.choice(["son", "ville", "s"]),
        me.value("android_id").value[:7],
        me.value("imei").value[:8],
    ]


SLOT_KEYS = {
    "email": "em",
    "phone": "ph",
    "ad_id": "adid",
    "android_id": "android_id",
    "imei": "imei",
    "mac": "mac",
    "ip": "ip",
    "name": "name",
}


def generate(
    seed: int,
    n: int,
    negatives_share: float = 0.2,
    out_of_scope_share: float = 0.05,
    location_share: float = 0.1,
    personas: int = 12,
) -> Iterator[Flow]:
    """``n`` labeled flows; the same seed always gives the same flows."""
    rng = random.Random(seed)
    people = [make_persona(rng, i) for i in range(personas)]
    types = [*KNOWN_TYPES, "name"]
    for _ in range(n):
        pi = rng.randrange(personas)
        me, other = people[pi], people[(pi + rng.randrange(1, personas)) % personas]
        negs = negative_values(rng, other, me)
        r = rng.random()
        if r < location_share:
            near = rng.random() < 0.7
            dist = (
                rng.uniform(0, 0.8 * HOME_R)
                if near
                else rng.choice([rng.uniform(1.2 * HOME_R, 1.5 * HOME_R), rng.uniform(2000, 50000)])
            )
            ident = me.value("location")
            yield Flow(
                location_flow(rng, me.home, dist),
                pi,
                "location",
                "location" if near else None,
                ident.id if near else None,
                "distance" if near else None,
            )
            continue
        family = rng.choice(list(TEMPLATES))
        if r < location_share + negatives_share:
            yield Flow(_build(TEMPLATES[family], rng, negs, None), pi, family)
            continue
        kind = rng.choice(types)
        chain = rng.choice(
            OUT_OF_SCOPE if rng.random() < out_of_scope_share / (1 - negatives_share) else IN_SCOPE
        )
        ident = me.value(kind)
        hashed = ":" in chain or ">" in chain and "b64" not in chain
        text = presentation(rng, kind, ident.value, hashed)
        if kind == "name" and chain not in ("plain", "upper", "pct", "pct2"):
            chain = rng.choice(["plain", "pct", "b64", "json>b64"])
        slot_key = "path" if family == "iot" and rng.random() < 0.3 else SLOT_KEYS[kind]
        slot = (slot_key, apply_chain(rng, text, chain))
        obs = _build(TEMPLATES[family], rng, negs, slot)
        yield Flow(obs, pi, family, kind, ident.id, chain, {"presentation": text != ident.value})


def _build(t: Template, rng: random.Random, negs: list[str], slot: Slot) -> Observation:
    host, path, query, headers, body, ctype, raw = t(rng, negs, slot)
    return make_observation(host, path, query, headers, body, ctype, raw)


def personas(seed: int, n: int = 12) -> list[Persona]:
    rng = random.Random(seed)
    return [make_persona(rng, i) for i in range(n)]
