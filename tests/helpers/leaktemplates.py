"""Request templates for the labeled leak corpus, shaped after public SDK documentation.

Each template takes a random generator, hard-negative values for its other fields and
at most one positive slot ``(key, text)``, and returns the parts of an Observation.
The shapes follow what SDK documentation shows (pixel query keys, batch analytics JSON,
base64 JSON in a form field, attribution installs, IoT telemetry, protobuf crash reports,
JWT bearer tokens and cookies, multipart uploads), not copied payloads.
"""

from __future__ import annotations

import base64
import gzip
import json
import math
import random
import struct
from collections.abc import Callable
from urllib.parse import quote

from gazeback.models import DeviceKey, Observation


def random_uuid(rng: random.Random) -> str:
    h = f"{rng.getrandbits(128):032x}"
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-a{h[17:20]}-{h[20:]}"


def offset_point(
    rng: random.Random, home: tuple[float, float], dist_m: float
) -> tuple[float, float]:
    bearing = rng.uniform(0, 2 * math.pi)
    dlat = dist_m * math.cos(bearing) / 111_320
    dlon = dist_m * math.sin(bearing) / (111_320 * max(math.cos(math.radians(home[0])), 0.01))
    return home[0] + dlat, home[1] + dlon


# --- templates ------------------------------------------------------------------------------

Slot = tuple[str, str] | None  # (key, text) of the positive slot, or None
Template = Callable[
    [random.Random, list[str], Slot],
    tuple[
        str,
        str,
        list[tuple[str, str]],
        list[tuple[str, str]],
        bytes | None,
        str | None,
        list[tuple[str, str]],
    ],
]


def make_observation(
    host: str,
    path: str = "/",
    query: list[tuple[str, str]] | None = None,
    headers: list[tuple[str, str]] | None = None,
    body: bytes | None = None,
    content_type: str | None = None,
    raw_secret_headers: list[tuple[str, str]] | None = None,
    method: str = "POST",
) -> Observation:
    """An Observation as capture would hand it to detection (tests, corpus, benchmarks)."""
    return Observation(
        flow_id="corpus",
        kind="http",
        started_at="2026-01-01T00:00:00.000Z",
        device=DeviceKey("ip:10.0.0.2", "phone"),
        method=method,
        scheme="https",
        host=host,
        port=443,
        path=path,
        query=tuple(query or ()),
        request_headers=tuple(headers or ()),
        request_body=body,
        content_type=content_type,
        user_agent=None,
        referer=None,
        origin=None,
        sec_fetch_site=None,
        status_code=200,
        request_bytes=len(body or b""),
        response_bytes=0,
        duration_ms=None,
        is_decrypted=True,
        tls_sni=host,
        server_ip=None,
        error=None,
        raw_secret_headers=tuple(raw_secret_headers or ()),
    )


def _pick(rng: random.Random, negs: list[str]) -> str:
    return rng.choice(negs)


def pixel(rng, negs, slot):  # type: ignore[no-untyped-def]
    q = [
        ("id", str(rng.randint(10**14, 10**15))),
        ("ev", "PageView"),
        ("dl", "https://shop.example/p"),
        ("ts", str(rng.randint(1_600_000_000_000, 1_800_000_000_000))),
        ("ud[ct]", _pick(rng, negs)),
        ("cd[value]", f"{rng.uniform(1, 99):.2f}"),
    ]
    if slot:
        q.insert(rng.randint(0, len(q)), (f"ud[{slot[0]}]", slot[1]))
    return "tr.pixel.example", "/tr/", q, [("user-agent", "Mozilla/5.0")], None, None, []


def batch_json(rng, negs, slot):  # type: ignore[no-untyped-def]
    props: dict[str, object] = {"plan": "free", "ref": _pick(rng, negs), "n": rng.randint(1, 9)}
    ctx: dict[str, object] = {
        "device": {"id": _pick(rng, negs), "model": "Pixel 7"},
        "locale": "en-US",
    }
    if slot:
        target = rng.choice([props, ctx, ctx["device"]])
        target[slot[0]] = slot[1]
    doc = {
        "batch": [
            {"event": "Opened", "properties": props, "context": ctx, "messageId": random_uuid(rng)}
        ],
        "sentAt": "2026-01-01T00:00:00Z",
    }
    body, headers = json.dumps(doc).encode(), [("content-type", "application/json")]
    enc = rng.choice(["", "", "gzip", "br", "zstd"])
    if enc:
        body = _compress(body, enc)
        headers.append(("content-encoding", enc))
    return "api.segment.example", "/v1/batch", [], headers, body, "application/json", []


def form_b64(rng, negs, slot):  # type: ignore[no-untyped-def]
    props = {
        "token": f"{rng.getrandbits(64):x}",
        "distinct_id": _pick(rng, negs),
        "time": rng.randint(1, 10**9),
    }
    if slot:
        props[slot[0]] = slot[1]
    data = base64.b64encode(json.dumps([{"event": "open", "properties": props}]).encode()).decode()
    body = f"data={quote(data, safe='')}&ip=1&verbose=0".encode()
    ctype = "application/x-www-form-urlencoded"
    return "api.mixpanel.example", "/track", [], [("content-type", ctype)], body, ctype, []


def attribution(rng, negs, slot):  # type: ignore[no-untyped-def]
    doc: dict[str, object] = {
        "app_token": f"{rng.getrandbits(48):x}",
        "event_token": "abc123",
        "created_at": "2026-01-01T00:00:00Z",
        "tracking_enabled": 1,
        "gps_adid": random_uuid(rng),
        "installed_at": rng.randint(1, 10**10),
    }
    if slot:
        doc[slot[0]] = slot[1]
    body = "&".join(f"{k}={quote(str(v), safe='')}" for k, v in doc.items()).encode()
    ctype = "application/x-www-form-urlencoded"
    return "app.adjust.example", "/session", [], [("content-type", ctype)], body, ctype, []


def iot(rng, negs, slot):  # type: ignore[no-untyped-def]
    seg = slot[1] if slot and slot[0] == "path" else f"{rng.getrandbits(48):012x}"
    headers = [("x-firmware", "2.4.1"), ("x-request-id", random_uuid(rng))]
    if slot and slot[0] != "path":
        headers.append((f"x-device-{slot[0]}", slot[1]))
    body = _proto_str(1, _pick(rng, negs)) + _proto_varint(2, rng.randint(1, 10**6))
    ctype = "application/x-protobuf"
    return (
        "telemetry.iot.example",
        f"/v2/devices/{quote(seg, safe='')}/telemetry",
        [],
        headers,
        body,
        ctype,
        [],
    )


def crash_proto(rng, negs, slot):  # type: ignore[no-untyped-def]
    inner = _proto_str(1, "java.lang.NullPointerException") + _proto_str(2, _pick(rng, negs))
    if slot:
        inner += _proto_str(7, slot[1])
    body = _proto_bytes(3, inner) + _proto_varint(4, rng.randint(1, 10**12))
    ctype = "application/x-protobuf"
    return "crash.firebase.example", "/v1/reports", [], [("content-type", ctype)], body, ctype, []


def jwt_cookie(rng, negs, slot):  # type: ignore[no-untyped-def]
    payload: dict[str, object] = {
        "iss": "auth.example",
        "iat": rng.randint(1, 10**9),
        "jti": random_uuid(rng),
    }
    cookie = f"_ga=GA1.2.{rng.randint(10**8, 10**9)}.{rng.randint(10**9, 2 * 10**9)}; lang=en"
    if slot and rng.random() < 0.5:
        payload["sub"] = slot[1]
    elif slot:
        cookie += f"; uid={slot[1]}"
    jwt = (
        ".".join(
            base64.urlsafe_b64encode(json.dumps(p).encode()).decode().rstrip("=")
            for p in ({"alg": "HS256", "typ": "JWT"}, payload)
        )
        + ".c2lnbmF0dXJl"
    )
    raw = [("authorization", f"Bearer {jwt}"), ("cookie", cookie)]
    return "api.app.example", "/v1/me", [("client", _pick(rng, negs))], [], None, None, raw


def multipart(rng, negs, slot):  # type: ignore[no-untyped-def]
    meta: dict[str, object] = {"file": "log.txt", "ref": _pick(rng, negs)}
    if slot:
        meta[slot[0]] = slot[1]
    b = f"----b{rng.getrandbits(32):x}"
    body = (
        (
            f'--{b}\r\nContent-Disposition: form-data; name="meta"\r\n'
            "Content-Type: application/json\r\n\r\n"
            f"{json.dumps(meta)}\r\n--{b}\r\n"
            'Content-Disposition: form-data; name="file"; filename="x.bin"\r\n'
            f"Content-Type: application/octet-stream\r\n\r\n"
        ).encode()
        + rng.randbytes(64)
        + f"\r\n--{b}--\r\n".encode()
    )
    ctype = f"multipart/form-data; boundary={b}"
    return (
        "upload.sentry.example",
        "/api/1/envelope/",
        [],
        [("content-type", ctype)],
        body,
        ctype,
        [],
    )


TEMPLATES: dict[str, Template] = {
    "pixel": pixel,
    "batch_json": batch_json,
    "form_b64": form_b64,
    "attribution": attribution,
    "iot": iot,
    "crash_proto": crash_proto,
    "jwt_cookie": jwt_cookie,
    "multipart": multipart,
}
HELD_OUT = ("jwt_cookie", "multipart", "crash_proto")  # not looked at while tuning


def _compress(body: bytes, enc: str) -> bytes:
    if enc == "gzip":
        return gzip.compress(body)
    if enc == "br":
        import brotli

        return bytes(brotli.compress(body))
    import zstandard

    return bytes(zstandard.ZstdCompressor().compress(body))


def _proto_key(n: int, wire: int) -> bytes:
    return _varint((n << 3) | wire)


def _varint(v: int) -> bytes:
    out = bytearray()
    while True:
        b = v & 0x7F
        v >>= 7
        out.append(b | (0x80 if v else 0))
        if not v:
            return bytes(out)


def _proto_varint(n: int, v: int) -> bytes:
    return _proto_key(n, 0) + _varint(v)


def _proto_bytes(n: int, data: bytes) -> bytes:
    return _proto_key(n, 2) + _varint(len(data)) + data


def _proto_str(n: int, s: str) -> bytes:
    return _proto_bytes(n, s.encode())


def _proto_double(n: int, x: float) -> bytes:
    return _proto_key(n, 1) + struct.pack("<d", x)


def location_flow(rng: random.Random, home: tuple[float, float], dist_m: float) -> Observation:
    """A request that carries a point ``dist_m`` away from ``home``, in one of five forms."""
    lat, lon = offset_point(rng, home, dist_m)
    form = rng.choice(["query", "json", "proto", "e7", "pair"])
    if form == "query":
        return make_observation(
            "geo.ads.example", "/v1/ad", [("ll", f"{lat:.5f},{lon:.5f}"), ("z", "12")], method="GET"
        )
    if form == "pair":
        return make_observation(
            "geo.ads.example", "/bid", [("lat", f"{lat:.4f}"), ("lon", f"{lon:.4f}")], method="GET"
        )
    if form == "json":
        body = json.dumps(
            {"device": {"geo": {"lat": round(lat, 6), "lon": round(lon, 6), "type": 1}}}
        ).encode()
        return make_observation(
            "rtb.ads.example", "/openrtb", body=body, content_type="application/json"
        )
    if form == "e7":
        body = json.dumps({"latE7": int(lat * 1e7), "lngE7": int(lon * 1e7)}).encode()
        return make_observation("maps.example", "/loc", body=body, content_type="application/json")
    body = _proto_bytes(4, _proto_double(1, lat) + _proto_double(2, lon))
    return make_observation(
        "telemetry.iot.example", "/v2/loc", body=body, content_type="application/x-protobuf"
    )
