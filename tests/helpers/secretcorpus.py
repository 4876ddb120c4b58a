"""Deterministic corpora for secret redaction (issue #13.5).

``secret_cases()``: requests that each carry one secret in a place and shape seen in real
traffic (≥ 30 shapes); none of the secrets may be stored in clear. ``ordinary_cases()``:
values a trail needs to stay readable (page paths, product ids, slugs, tracker client ids,
timestamps, locales, tracker parameters); few may be fingerprinted needlessly.
"""

from __future__ import annotations

import base64
import hashlib
import json
import random
import string
import uuid
from dataclasses import dataclass
from urllib.parse import quote

B62 = string.ascii_letters + string.digits
B64URL = B62 + "-_"
WORDS = ("blue red green running shoes size women men kids sale summer winter jacket coat "
         "recipe soup bread how to bake best guide review news sport world travel city "
         "garden home kitchen phone case cable charger book music film series").split()  # fmt: skip


@dataclass(frozen=True)
class Case:
    shape: str
    url: str  # https://host/path?query
    headers: tuple[tuple[str, str], ...]
    value: str  # the secret, or the ordinary value that should stay readable


def _rand(rng: random.Random, n: int, alphabet: str = B62) -> str:
    return "".join(rng.choice(alphabet) for _ in range(n))


def _password(rng: random.Random) -> str:
    return rng.choice(WORDS).capitalize() + _rand(rng, 4, string.digits) + rng.choice("!#$%*")


def _jwt(rng: random.Random) -> str:
    def part(obj: object) -> str:
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).decode().rstrip("=")

    header = part({"alg": "HS256", "typ": "JWT"})
    payload = part({"sub": _rand(rng, 10), "iat": rng.randrange(1_600_000_000, 1_800_000_000)})
    return f"{header}.{payload}.{_rand(rng, 43, B64URL)}"


def _hex(rng: random.Random, n: int) -> str:
    return _rand(rng, n, "0123456789abcdef")


SITE = "https://www.shop.example"


def _secret_shapes(rng: random.Random) -> list[tuple[str, str, tuple[tuple[str, str], ...], str]]:
    pw, tok, jwt = _password(rng), _rand(rng, rng.randrange(24, 48), B64URL), _jwt(rng)
    digits = _rand(rng, 8, string.digits)
    h = _hex(rng, rng.choice((32, 40, 64)))
    api = "AIza" + _rand(rng, 35, B64URL)
    cas = f"ST-{rng.randrange(10**5, 10**6)}-{_rand(rng, 20)}"
    enc = quote(pw, safe="")
    return [
        ("query pw", f"{SITE}/login?pw={enc}", (), pw),
        ("query passcode", f"{SITE}/verify?passcode={digits}", (), digits),
        ("query pincode", f"{SITE}/card?pincode={digits}", (), digits),
        ("query key", f"https://maps.example.com/api/js?key={api}", (), api),
        ("query ticket", f"{SITE}/cas/validate?ticket={cas}", (), cas),
        ("magic link t", f"{SITE}/magic?t={tok}", (), tok),
        ("oauth state", f"{SITE}/oauth/cb?state={tok}", (), tok),
        ("oauth code", f"{SITE}/oauth/cb?code={tok}&scope=email", (), tok),
        ("path reset token", f"{SITE}/reset-password/{tok}", (), tok),
        ("path hex token", f"{SITE}/unsubscribe/{h}", (), h),
        ("path jwt", f"{SITE}/auth/{jwt}/continue", (), jwt),
        ("matrix password", f"{SITE}/login;password={enc}", (), pw),
        ("matrix jsessionid", f"{SITE}/cart;jsessionid={h}", (), h),
        ("matrix pw mid-path", f"{SITE}/a;pw={enc}/b", (), pw),
        ("referer code", f"{SITE}/pixel", (("Referer", f"{SITE}/cb?code={tok}"),), tok),
        ("referer password", f"{SITE}/pixel", (("Referer", f"{SITE}/login?password={enc}"),), pw),
        (
            "referer path token",
            f"{SITE}/pixel",
            (("Referer", f"{SITE}/reset-password/{tok}"),),
            tok,
        ),
        (
            "referer userinfo",
            f"{SITE}/pixel",
            (("Referer", f"https://bob:{enc}@www.shop.example/"),),
            pw,
        ),
        (
            "origin-like custom url header",
            f"{SITE}/x",
            (("X-Return-To", f"{SITE}/cb?token={tok}"),),
            tok,
        ),
        ("location-like header", f"{SITE}/x", (("Location", f"/welcome?magic={tok}"),), tok),
        ("jwt in custom header", f"{SITE}/api", (("X-Id", jwt),), jwt),
        ("jwt in query under any name", f"{SITE}/api?data={jwt}", (), jwt),
        ("bearer", f"{SITE}/api", (("Authorization", f"Bearer {tok}"),), tok),
        ("cookie", f"{SITE}/", (("Cookie", f"sid={tok}; theme=dark"),), tok),
        ("api key header", f"{SITE}/api", (("X-Api-Key", api),), api),
        ("access_token", f"{SITE}/me?access_token={tok}", (), tok),
        ("client_secret", f"{SITE}/token?client_id=web&client_secret={tok}", (), tok),
        ("refresh_token", f"{SITE}/token?refresh_token={tok}", (), tok),
        ("signature", f"https://cdn.example/file.pdf?Expires=1700000000&Signature={tok}", (), tok),
        (
            "aws presigned",
            f"https://bucket.s3.example/o?X-Amz-Credential=AKIA{_rand(rng, 16, string.ascii_uppercase + string.digits)}%2F20240101&X-Amz-Signature={_hex(rng, 64)}",
            (),
            "AKIA",
        ),
        ("otp", f"{SITE}/2fa?otp={digits}", (), digits),
        ("session", f"{SITE}/app?session={tok}", (), tok),
        ("high entropy under unknown name", f"{SITE}/go?u={tok}", (), tok),
        (
            "nested redirect token",
            f"{SITE}/login?next={quote(f'/reset?token={tok}', safe='')}",
            (),
            tok,
        ),
        (
            "redirect_uri with code",
            f"{SITE}/r?redirect_uri={quote(f'{SITE}/cb?code={tok}', safe='')}",
            (),
            tok,
        ),
        (
            "vendor-prefixed token in header",
            f"{SITE}/ci",
            (("X-Debug", "ghp_" + _rand(rng, 36)),),
            "ghp_",
        ),
        ("csrf", f"{SITE}/form?csrf_token={tok}", (), tok),
        ("password plus-encoded", f"{SITE}/l?user=bob&password={pw.replace(' ', '+')}", (), pw),
    ]


def secret_cases(n: int = 380, seed: int = 13) -> list[Case]:
    """At least ``n`` secret-carrying requests, every shape repeated with fresh values."""
    rng = random.Random(seed)
    out: list[Case] = []
    while len(out) < n:
        for shape, url, headers, value in _secret_shapes(rng):
            if shape == "aws presigned":
                value = url.split("X-Amz-Credential=")[1].split("%2F")[0]
            elif shape == "vendor-prefixed token in header":
                value = headers[0][1]
            out.append(Case(shape, url, headers, value))
    return out


def _slug(rng: random.Random, n: int) -> str:
    return "-".join(rng.choice(WORDS) for _ in range(n))


def ordinary_cases(n: int = 600, seed: int = 13) -> list[Case]:
    """Values a trail needs readable; each case's ``value`` should be stored as sent."""
    rng = random.Random(seed)
    out: list[Case] = []
    while len(out) < n:
        slug = _slug(rng, rng.randrange(2, 6))
        year = rng.randrange(2015, 2027)
        cid = f"{rng.randrange(10**8, 10**10)}.{rng.randrange(1_600_000_000, 1_800_000_000)}"
        ts = str(rng.randrange(1_600_000_000_000, 1_800_000_000_000))
        client = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        sku = "".join(rng.choice(string.ascii_uppercase + string.digits) for _ in range(10))
        pid = str(rng.randrange(10**5, 10**9))
        locale = rng.choice(("en-US", "de-DE", "pt_BR", "fr", "ja-JP", "es-419", "zh-Hans-CN"))
        title = quote(f"{slug.replace('-', ' ').title()} | Shop", safe="")
        asset = f"/static/js/main.{_hex(rng, 8)}.chunk.js"
        fbp = f"fb.1.{ts}.{rng.randrange(10**9, 10**10)}"
        ga4 = "G-" + "".join(rng.choice(string.ascii_uppercase + string.digits) for _ in range(10))
        out += [
            Case("page path", f"{SITE}/blog/{year}/{slug}", (), f"/blog/{year}/{slug}"),
            Case("product slug", f"{SITE}/products/{slug}-{pid}", (), f"{slug}-{pid}"),
            Case(
                "category page",
                f"{SITE}/c/{slug}?page={rng.randrange(1, 40)}&sort=price_asc",
                (),
                slug,
            ),
            Case("product id", f"{SITE}/item?pid={pid}", (), pid),
            Case("sku", f"{SITE}/p/{sku}", (), sku),
            Case(
                "ga cid",
                f"https://www.google-analytics.com/collect?v=1&tid=UA-{pid}-1&cid={cid}&t=pageview",
                (),
                cid,
            ),
            Case(
                "ga4 measurement id",
                f"https://www.google-analytics.com/g/collect?v=2&tid={ga4}&cid={cid}&en=page_view&dt={title}",
                (),
                ga4,
            ),
            Case(
                "uuid client id",
                f"https://api2.amplitude.com/2/httpapi?device_id={client}",
                (),
                client,
            ),
            Case("uuid in path", f"{SITE}/orders/{client}", (), client),
            Case("timestamp", f"{SITE}/api/poll?_={ts}", (), ts),
            Case("fbp", f"https://www.facebook.com/tr/?id={pid}&ev=PageView&fbp={fbp}", (), fbp),
            Case("locale", f"{SITE}/?hl={locale}", (), locale),
            Case("asset", f"{SITE}{asset}", (), asset),
            Case(
                "utm",
                f"{SITE}/?utm_source=newsletter&utm_campaign={slug.replace('-', '_')}_{year}",
                (),
                f"{slug.replace('-', '_')}_{year}",
            ),
            Case("search", f"{SITE}/search?q={slug.replace('-', '+')}", (), slug.replace("-", "+")),
            Case(
                "referer page",
                f"{SITE}/pixel",
                (("Referer", f"{SITE}/products/{slug}"),),
                f"/products/{slug}",
            ),
            Case(
                "user agent",
                f"{SITE}/",
                (
                    (
                        "User-Agent",
                        f"Mozilla/5.0 (Linux; Android 14; Pixel {rng.randrange(5, 9)}) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/{rng.randrange(100, 130)}.0.0.0 Mobile Safari/537.36",
                    ),
                ),
                "AppleWebKit/537.36",
            ),
            Case(
                "accept-language",
                f"{SITE}/",
                (("Accept-Language", f"{locale},en;q=0.8"),),
                f"{locale},en;q=0.8",
            ),
            Case("content id header", f"{SITE}/api", (("X-Request-Id", client),), client),
            Case(
                "page url param",
                f"https://www.google-analytics.com/g/collect?v=2&dl={quote(f'{SITE}/products/{slug}', safe='')}",
                (),
                f"/products/{slug}",
            ),
        ]
    return out[:n]


def md5(text: str) -> str:
    return hashlib.md5(text.encode()).hexdigest()
