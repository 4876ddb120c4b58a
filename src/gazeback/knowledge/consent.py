"""Consent signals a page gives vendors (#16): the IAB TCF v2 consent string and Google
Consent Mode's ``gcs`` / ``gcd`` request parameters, decoded to "granted" / "denied"."""

from __future__ import annotations

import base64
from typing import Any
from urllib.parse import parse_qsl, urlsplit


class _Bits:
    def __init__(self, data: bytes) -> None:
        self.bits = "".join(f"{b:08b}" for b in data)
        self.pos = 0

    def num(self, n: int) -> int:
        if self.pos + n > len(self.bits):
            raise ValueError("the consent string ends too early")
        v = int(self.bits[self.pos : self.pos + n], 2)
        self.pos += n
        return v

    def flags(self, n: int) -> list[int]:
        return [i + 1 for i in range(n) if self.num(1)]


def decode_tcf(tc_string: str) -> dict[str, Any]:
    """The core segment of a TCF v2 string: which purposes and how many vendors got
    consent. ValueError when it is not one."""
    core = tc_string.strip().split(".")[0]
    try:
        data = base64.urlsafe_b64decode(core + "=" * (-len(core) % 4))
    except (ValueError, TypeError):
        raise ValueError("not a TCF consent string (not base64url)") from None
    b = _Bits(data)
    version = b.num(6)
    if version != 2:
        raise ValueError(f"not a TCF v2 consent string (version {version})")
    b.num(36), b.num(36)  # created, last updated
    cmp_id = b.num(12)
    b.num(12), b.num(6), b.num(12)  # cmp version, consent screen, language
    vendor_list = b.num(12)
    b.num(6), b.num(1), b.num(1)  # policy version, service specific, non-standard texts
    b.flags(12)  # special feature opt-ins
    purposes = b.flags(24)
    b.flags(24)  # legitimate-interest transparency
    b.num(1), b.num(12)  # purpose one treatment, publisher country
    max_vendor = b.num(16)
    vendors: set[int] = set()
    if b.num(1):  # ranges
        for _ in range(b.num(12)):
            if b.num(1):
                start, end = b.num(16), b.num(16)
                vendors.update(range(start, end + 1))
            else:
                vendors.add(b.num(16))
    else:
        vendors.update(b.flags(max_vendor))
    return {
        "cmp_id": cmp_id,
        "vendor_list_version": vendor_list,
        "purposes_consented": purposes,
        "vendors_consented": len(vendors),
        "says": "granted" if purposes else "denied",
    }


# gcd letters (Google's consent-mode "diagnostic" parameter), one per signal:
# ad_storage, analytics_storage, ad_user_data, ad_personalization.
GCD_GRANTED = set("tnrv")
GCD_DENIED = set("pqmu")


def consent_mode(url_or_path: str) -> dict[str, str] | None:
    """Google Consent Mode in a request's query: {"ad_storage": "granted", ...}, or None
    when the request carries neither ``gcs`` nor ``gcd``."""
    query = dict(parse_qsl(urlsplit(url_or_path).query, keep_blank_values=True))
    out: dict[str, str] = {}
    gcd = query.get("gcd")
    if gcd:
        letters = [c for c in gcd[1:] if c.isalpha()]
        for name, c in zip(
            ("ad_storage", "analytics_storage", "ad_user_data", "ad_personalization"),
            letters,
            strict=False,
        ):
            if c in GCD_GRANTED:
                out[name] = "granted"
            elif c in GCD_DENIED:
                out[name] = "denied"
    gcs = query.get("gcs")
    if gcs and len(gcs) == 4 and gcs.startswith("G1"):
        out["ad_storage"] = "granted" if gcs[2] == "1" else "denied"
        out["analytics_storage"] = "granted" if gcs[3] == "1" else "denied"
    return out or None


def says(signals: dict[str, str]) -> str:
    """One word for a request's consent-mode signals: granted (any), denied (all)."""
    return "granted" if "granted" in signals.values() else "denied"
