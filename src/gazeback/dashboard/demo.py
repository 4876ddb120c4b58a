"""A synthetic but realistic trail for trainers, tests and benchmarks (``gazeback demo``).

A made-up person, Alex, owns a phone, a laptop and a smart TV. Apps and web sites call real
tracker hosts from the bundled knowledge; some calls carry Alex's identifiers in the
encodings real SDKs use (plain, URL-encoded, lower-cased then SHA-256, MD5, base64 JSON, a
header); some apps pin their certificates, so those connections could not be decrypted.

Everything goes through the same path as live capture: ``FlowSnapshot`` → ``process`` →
``store.save_records``. Alex's identities are registered with
``store_leaks.add_identity`` first, so the leak detector finds them as it would for a real
person. To make a million requests in a few minutes, each distinct request (same device,
app, call and content) is processed once; its repeats reuse that result with their own
flow id and time, which are the only fields that differ.
"""

from __future__ import annotations

import base64
import hashlib
import json
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import sqlite_utils

from gazeback.db import migrations, store
from gazeback.db.identities import add_identity, load_key, load_profile
from gazeback.db.localfiles import private_file
from gazeback.knowledge.classify import TrackerIndex, load_index
from gazeback.models import DeviceKey, FlowSnapshot, Record
from gazeback.pipeline import Context, process
from gazeback.timestamps import iso

# Alex's identifiers: made up (example.org is reserved; 07700 900xxx is Ofcom's drama range).
PERSONA: dict[str, tuple[str, str]] = {
    "email": ("Alex.Rivera@example.org", "Email address"),
    "phone": ("+44 7700 900123", "Phone number"),
    "name": ("Alex Rivera", "Full name"),
    "ad_id": ("38400000-8cf0-11bd-b23e-10b96e40000d", "Phone advertising ID"),
    "android_id": ("9774d56d682e549c", "Phone device ID"),
    "mac": ("a4:30:7a:3c:5e:91", "TV network address"),
}

DEVICES = {
    "phone": DeviceKey("user:phone", "Alex's phone", "phone"),
    "laptop": DeviceKey("user:laptop", "Alex's laptop", "laptop"),
    "tv": DeviceKey("user:tv", "Living-room TV", "tv"),
}
USER_AGENTS = {
    "phone": "Mozilla/5.0 (Linux; Android 14; Pixel 7) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/124.0 Mobile Safari/537.36",
    "laptop": "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:125.0) Gecko/20100101 Firefox/125.0",
    "tv": "Mozilla/5.0 (SMART-TV; LINUX; Tizen 7.0) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Version/7.0 TV Safari/537.36",
}
# Share of each device's requests per hour of the day (UTC), before noise.
ACTIVE_HOURS = {
    "phone": [1, 0, 0, 0, 0, 1, 3, 6, 8, 6, 5, 5, 7, 6, 5, 5, 6, 7, 8, 8, 9, 9, 7, 4],
    "laptop": [0, 0, 0, 0, 0, 0, 0, 1, 4, 8, 9, 9, 6, 8, 9, 9, 8, 5, 2, 2, 3, 3, 1, 0],
    "tv": [0, 0, 0, 0, 0, 0, 0, 1, 1, 0, 0, 0, 1, 0, 0, 0, 1, 2, 4, 8, 10, 10, 8, 3],
}
DEVICE_SHARE = {"phone": 0.55, "laptop": 0.30, "tv": 0.15}


@dataclass(frozen=True)
class Call:
    """One kind of request an app makes; ``{...}`` fields are filled from the persona."""

    host: str
    path: str
    method: str = "GET"
    body: str | None = None
    ctype: str | None = None
    header: tuple[str, str] | None = None
    weight: float = 1.0
    kind: str = "http"  # tls_failed / tunnel: a pinned connection we could not open


@dataclass(frozen=True)
class App:
    name: str
    device: str
    weight: float
    calls: tuple[Call, ...]
    page: str | None = None  # a web site: calls are made from this page (Referer)


FORM = "application/x-www-form-urlencoded"
JSON = "application/json"

APPS: tuple[App, ...] = (
    App("Photo sharing app", "phone", 3, (
        Call("i.instagram.com", "", kind="tls_failed", weight=1),
        Call("i.instagram.com", "", kind="tunnel", weight=6),
        Call("graph.instagram.com", "", kind="tunnel", weight=2),
        Call("graph.facebook.com", "/v17.0/1234567/activities", "POST",
             "event=CUSTOM_APP_EVENTS&advertiser_id={ad_id}&ud[em]={email_sha256}", FORM, weight=2),
        Call("app-measurement.com", "/a?gaid={ad_id}&app=com.example.photos", weight=2),
    )),
    App("Weather app", "phone", 2, (
        Call("api.mixpanel.com", "/track", "POST", "data={mixpanel_b64}", FORM, weight=2),
        Call("googleads.g.doubleclick.net",
             "/pagead/conversion/?rdid={ad_id}&idtype=advertisingid&bundleid=com.example.weather"),
        Call("t.appsflyer.com", "/api/v6.3/androidevent?app_id=com.example.weather", "POST",
             '{{"advertiserId":"{ad_id}","android_id":"{android_id}","eventName":"open"}}', JSON),
        Call("app-measurement.com", "/a?gaid={ad_id}&app=com.example.weather", weight=2),
    )),
    App("Shopping app", "phone", 2, (
        Call("api2.amplitude.com", "/2/httpapi", "POST",
             '{{"events":[{{"user_id":"{email}","device_id":"{android_id}","event_type":"view"}}]}}',
             JSON, weight=2),
        Call("api.branch.io", "/v1/open", "POST",
             '{{"hardware_id":"{android_id}","google_advertising_id":"{ad_id}"}}', JSON),
        Call("app.adjust.com", "/session?gps_adid={ad_id}&android_id={android_id}", "POST"),
        Call("analytics.tiktok.com", "/api/v2/pixel", "POST",
             '{{"context":{{"user":{{"email":"{email_sha256}","phone_number":"{phone_sha256}"}}}}}}',
             JSON),
        Call("sdk.iad-01.braze.com", "/api/v3/data", "POST",
             '{{"attributes":[{{"email":"{email}","first_name":"Alex"}}]}}', JSON,
             header=("x-braze-device-id", "{android_id}")),
    )),
    App("Messaging app", "phone", 1.5, (
        Call("api.twitter.com", "", kind="tls_failed", weight=1),
        Call("api.twitter.com", "", kind="tunnel", weight=4),
        Call("settings.crashlytics.com", "/spi/v2/platforms/android/apps/com.example.chat/settings"),
        Call("firebaseinstallations.googleapis.com", "/v1/projects/chat/installations", "POST",
             '{{"fid":"f1x2","appId":"1:123:android:abc","authVersion":"FIS_v2"}}', JSON),
    )),
    App("News site", "laptop", 2, (
        Call("www.nytimes.com", "/section/world", weight=3),
        Call("www.googletagmanager.com", "/gtm.js?id=GTM-ABC123"),
        Call("www.google-analytics.com", "/g/collect?v=2&tid=G-NEWS1&uid={email_md5}&en=page_view",
             "POST", weight=2),
        Call("sb.scorecardresearch.com", "/b?c1=2&c2=3005086&ns_site=news"),
        Call("c.amazon-adsystem.com", "/aax2/apstag.js"),
        Call("ib.adnxs.com", "/ut/v3/prebid", "POST", '{{"tags":[{{"id":1}}]}}', JSON),
        Call("static.criteo.net", "/js/ld/publishertag.js"),
        Call("cdn.cookielaw.org", "/consent/abc/otSDKStub.js"),
    ), page="https://www.nytimes.com/"),
    App("Online shop", "laptop", 1.5, (
        Call("www.theguardian.com", "/shop/checkout", weight=2),
        Call("www.facebook.com", "/tr/?id=998877&ev=Purchase&ud[em]={email_sha256}&ud[ph]={phone_sha256}",
             weight=2),
        Call("connect.facebook.net", "/en_US/fbevents.js"),
        Call("bat.bing.com", "/action/0?ti=5555&evt=purchase&em={email_urlenc}"),
        Call("in.hotjar.com", "/api/v2/client/sites/123/visit-data", "POST",
             '{{"fields":{{"email":"{email}","name":"{name}"}}}}', JSON),
        Call("tr.snapchat.com", "/p", "POST", "u_hem={email_sha256}&e_desc=purchase", FORM),
        Call("px.ads.linkedin.com", "/collect?pid=12&conversionId=34"),
    ), page="https://www.theguardian.com/"),
    App("Encyclopedia", "laptop", 1, (
        Call("en.wikipedia.org", "/wiki/Privacy", weight=4),
    ), page="https://en.wikipedia.org/"),
    App("Recipe site", "laptop", 1, (
        Call("weather.com", "/recipes/soup", weight=2),
        Call("pagead2.googlesyndication.com", "/pagead/js/adsbygoogle.js"),
        Call("api.segment.io", "/v1/t", "POST",
             '{{"userId":"{email_sha256}","traits":{{"phone":"{phone_e164}"}}}}', JSON),
        Call("www.clarity.ms", "/collect", "POST", '{{"envelope":{{"sessionId":"s1"}}}}', JSON),
        Call("trc.taboola.com", "/example/trc/3/json?tim=1"),
    ), page="https://weather.com/"),
    App("TV system", "tv", 2, (
        Call("log-config.samsungacr.com", "/api/v1/config?mac={mac_upper}&model=UE55", weight=2),
        Call("acr-eu-prd.samsungcloud.tv", "/acr/v2/fingerprint", "POST",
             '{{"duid":"{mac_plain}","content":"ch5","ts":1}}', JSON, weight=4),
        Call("samsungads.com", "/v1/ad?uid={mac_upper}&slot=home"),
    )),
    App("Streaming app", "tv", 2, (
        Call("nrdp.nccp.netflix.com", "", kind="tunnel", weight=4),
        Call("ichnaea.netflix.com", "/cl2", "POST", '{{"event":"play"}}', JSON, weight=2),
        Call("api.mixpanel.com", "/track", "POST", "data={mixpanel_tv_b64}", FORM),
    )),
)  # fmt: skip


def persona_values() -> dict[str, str]:
    """The strings the call templates put on the wire, derived from Alex's identifiers."""
    email, phone = PERSONA["email"][0], PERSONA["phone"][0]
    e164 = "+" + "".join(c for c in phone if c.isdigit())
    mac = PERSONA["mac"][0]

    def sha256(s: str) -> str:
        return hashlib.sha256(s.encode()).hexdigest()

    return {
        "email": email,
        "email_urlenc": quote(email, safe=""),
        "email_sha256": sha256(email.strip().lower()),
        "email_md5": hashlib.md5(email.strip().lower().encode()).hexdigest(),
        "phone_e164": e164,
        "phone_sha256": sha256(e164),
        "name": PERSONA["name"][0],
        "ad_id": PERSONA["ad_id"][0],
        "android_id": PERSONA["android_id"][0],
        "mac_upper": mac.replace(":", "-").upper(),
        "mac_plain": mac,
        "mixpanel_b64": base64.b64encode(
            json.dumps({"event": "open", "properties": {"distinct_id": email}}).encode()
        ).decode(),
        "mixpanel_tv_b64": base64.b64encode(
            json.dumps({"event": "play", "properties": {"$device_id": mac}}).encode()
        ).decode(),
    }


def snapshot(app: App, call: Call, flow_id: str, at: float, values: dict[str, str]) -> FlowSnapshot:
    """The FlowSnapshot the proxy hook would have copied for this call."""
    device = DEVICES[app.device]
    if call.kind != "http":
        return FlowSnapshot(
            flow_id=flow_id,
            kind=call.kind,  # type: ignore[arg-type]
            started_at=at,
            device=device,
            host=call.host,
            port=443,
            is_decrypted=False,
            tls_sni=call.host,
            error="the app refused our certificate (it pins its own)"
            if call.kind == "tls_failed"
            else None,
            request_bytes=1200,
            response_bytes=5400,
        )
    headers = [(b"host", call.host.encode()), (b"user-agent", USER_AGENTS[app.device].encode())]
    if app.page and not call.host.endswith(app.page.split("/")[2].removeprefix("www.")):
        headers.append((b"referer", app.page.encode()))
        headers.append((b"sec-fetch-site", b"cross-site"))
    body = call.body.format(**values).encode() if call.body else None
    if call.ctype:
        headers.append((b"content-type", call.ctype.encode()))
    if call.header:
        headers.append((call.header[0].encode(), call.header[1].format(**values).encode()))
    return FlowSnapshot(
        flow_id=flow_id,
        kind="http",
        started_at=at,
        device=device,
        method=call.method,
        scheme="https",
        host=call.host,
        port=443,
        path=call.path.format(**values),
        http_version="HTTP/2.0",
        request_headers=tuple(headers),
        request_body=body,
        status_code=204 if call.method == "POST" else 200,
        request_bytes=len(body or b"") + 400,
        response_bytes=300 if call.method == "POST" else 12000,
        duration_ms=80.0,
        is_decrypted=True,
        tls_sni=call.host,
    )


def register_persona(db: sqlite_utils.Database, db_path: Path) -> dict[str, int]:
    """Add Alex's identities (once) so the leak detector looks for them."""
    key = load_key(db_path, create=True)
    have = {r["label"]: r["id"] for r in db.query("select id, label from identities")}
    ids = {}
    for kind, (value, label) in PERSONA.items():
        ids[kind] = have.get(label) or add_identity(db, key, kind, value, label)
    return ids


def _hour_weights(days: int, end: datetime) -> dict[str, tuple[list[float], list[float]]]:
    start = end - timedelta(days=days)
    out = {}
    for dev, profile in ACTIVE_HOURS.items():
        times, weights = [], []
        t = start
        while t < end:
            times.append(t.timestamp())
            weekend = 0.7 if dev == "laptop" and t.weekday() >= 5 else 1.0
            weights.append(profile[t.hour] * weekend + 0.05)
            t += timedelta(hours=1)
        out[dev] = (times, weights)
    return out


def plan(n: int, days: int, seed: int, end: datetime) -> Iterator[tuple[int, App, Call, float]]:
    """``n`` (index, app, call, epoch seconds) picks, deterministic for a seed."""
    rng = random.Random(seed)
    devs = list(DEVICE_SHARE)
    hours = _hour_weights(days, end)
    by_dev = {d: [a for a in APPS if a.device == d] for d in devs}
    dev_picks = rng.choices(devs, [DEVICE_SHARE[d] for d in devs], k=n)
    for i, dev in enumerate(dev_picks):
        app = rng.choices(by_dev[dev], [a.weight for a in by_dev[dev]])[0]
        call = rng.choices(app.calls, [c.weight for c in app.calls])[0]
        times, weights = hours[dev]
        slot = rng.choices(times, weights)[0]
        at = slot + rng.random() * min(3600.0, end.timestamp() - slot)  # never after end
        yield i, app, call, at


def generate(
    db_path: Path,
    *,
    days: int = 7,
    seed: int = 1,
    scale: int = 20_000,
    end: datetime | None = None,
    batch: int = 20_000,
    index: TrackerIndex | None = None,
    progress: Callable[[int], None] | None = None,
) -> dict[str, Any]:
    """Fill ``db_path`` with ``scale`` synthetic requests over ``days`` days; return counts."""
    end = end or datetime.now(UTC).replace(microsecond=0)  # nothing in the future
    private_file(db_path)  # 0600 like a real trail (SQLite gives its -wal the same mode)
    db = sqlite_utils.Database(db_path)
    db.enable_wal()
    db.execute("PRAGMA synchronous=OFF")
    migrations.apply(db)
    register_persona(db, db_path)
    index = index or load_index()
    context = Context(load_key(db_path), index, load_profile(db_path))
    capture_id = store.start_capture(db, "demo", index.versions())
    values = persona_values()
    cache: dict[tuple[str, str, int], Record] = {}
    device_cache: dict[str, int] = {}
    known: set[str] = set()
    pinned: set[str] = set()
    pending: list[Record] = []
    saved = 0
    for i, app, call, at in plan(scale, days, seed, end):
        flow_id = f"demo-{seed}-{i}"
        key = (app.name, call.host, app.calls.index(call))
        tmpl = cache.get(key)
        if tmpl is None:
            tmpl = cache[key] = process(snapshot(app, call, flow_id, at, values), context)
        obs = replace(tmpl.observation, flow_id=flow_id, started_at=iso(at))
        pending.append(replace(tmpl, observation=obs))
        if call.kind == "tls_failed" and call.host not in pinned:
            store.save_pinned(db, call.host, "the app refused our certificate")
            pinned.add(call.host)
        if len(pending) >= batch:
            saved += _flush(db, capture_id, pending, index, device_cache, known)
            pending = []
            if progress:
                progress(saved)
    saved += _flush(db, capture_id, pending, index, device_cache, known)
    store.end_capture(db, capture_id, saved, 0)
    db.execute("PRAGMA optimize")
    counts = {
        "requests": db["requests"].count,
        "leaks": db["leaks"].count,
        "devices": db["devices"].count,
        "distinct_requests_processed": len(cache),
    }
    db.close()
    return counts


def _flush(
    db: sqlite_utils.Database,
    capture_id: int,
    records: list[Record],
    index: TrackerIndex,
    device_cache: dict[str, int],
    known: set[str],
) -> int:
    records.sort(key=lambda r: r.observation.started_at)
    return store.save_records(
        db, capture_id, records, index=index, device_cache=device_cache, known_trackers=known
    )
