"""A synthetic household for export tests: the demo trail plus 20 seeded identities of
every type, and requests that carry some of them (plain, hashed, base64, in a path, in a
header, in a host)."""

from __future__ import annotations

import base64
import hashlib
import json
import random
import uuid
from pathlib import Path

import sqlite_utils

from gazeback.dashboard.demo import generate
from gazeback.db.header_sets import with_header_set
from gazeback.db.identities import add_identity, load_key

FIRST = "Ada Grace Alan Edsger Barbara Donald Frances Ken Radia Tim Margaret Linus Guido Hedy Katherine Dennis Leslie Niklaus John Shafi".split()
LAST = "Lovelace Hopper Turing Dijkstra Liskov Knuth Allen Thompson Perlman Berners Hamilton Torvalds Rossum Lamarr Johnson Ritchie Lamport Wirth Backus Goldwasser".split()


def _luhn(body: str) -> str:
    total = 0
    for i, d in enumerate(reversed(body)):
        n = int(d) * (2 if i % 2 == 0 else 1)
        total += n - 9 if n > 9 else n
    return body + str((10 - total % 10) % 10)


def identities(n: int = 20, seed: int = 7) -> dict[str, list[str]]:
    rnd = random.Random(seed)
    out: dict[str, list[str]] = {k: [] for k in
           ("email", "phone", "name", "ad_id", "android_id", "imei", "mac", "ip", "other")}  # fmt: skip
    for i in range(n):
        out["email"].append(f"{FIRST[i].lower()}.{LAST[i].lower()}{i}@example.org")
        out["phone"].append(f"+1 202 555 {1000 + i:04d}")
        out["name"].append(f"{FIRST[i]} {LAST[i]}")
        out["ad_id"].append(str(uuid.UUID(int=rnd.getrandbits(128), version=4)))
        out["android_id"].append(f"{rnd.getrandbits(64):016x}")
        out["imei"].append(_luhn(f"35{rnd.randrange(10**12):012d}"))
        out["mac"].append(":".join(f"{rnd.randrange(256):02x}" for _ in range(6)))
        out["ip"].append(f"203.0.113.{i + 1}")
        out["other"].append(f"serial-{rnd.getrandbits(48):012x}")
    return out


def plants(ids: dict[str, list[str]]) -> list[tuple[str, dict[str, object]]]:
    """(planted string, request fields) pairs: identifiers where an export might copy them."""
    email, mac, aid = ids["email"][0], ids["mac"][1], ids["android_id"][2]
    sha = hashlib.sha256(email.lower().encode()).hexdigest()
    b64 = base64.b64encode(email.encode()).decode()
    return [
        (email, {"host": "www.google-analytics.com", "path": f"/collect?uid={email}"}),
        (sha, {"host": "connect.facebook.net", "path": f"/tr?ud[em]={sha}"}),
        (b64, {"host": "api.mixpanel.com", "path": f"/track?data={b64}"}),
        (aid, {"host": "app-measurement.com", "path": f"/u/{aid}/config"}),
        (
            mac,
            {
                "host": "api.example-vendor.com",
                "request_headers": json.dumps([["x-device-id", mac]]),
            },
        ),  # fmt: skip
        (aid, {"host": f"{aid}.devices.doubleclick.net", "path": "/ping"}),
        (ids["imei"][3], {"host": f"{ids['imei'][3]}.home.example.net", "path": "/"}),
    ]


def make_household(
    path: Path, seed: int = 1, scale: int = 600, n: int = 20
) -> dict[str, list[str]]:
    """Write the household trail to ``path``; return the registered identities by kind."""
    generate(path, days=2, seed=seed, scale=scale)
    db = sqlite_utils.Database(path)
    key = load_key(path)
    ids = identities(n, seed=seed)
    for kind, values in ids.items():
        for v in values:
            add_identity(db, key, kind, v)
    add_identity(db, key, "location", "52.5200,13.4050,500")
    rows = []
    for i, (_, fields) in enumerate(plants(ids) * 4):
        rows.append({"flow_id": f"plant-{seed}-{i}", "started_at": "2026-11-20T10:15:00.000Z",
                     "kind": "http", "method": "GET", "scheme": "https", "device_id": 1,
                     "registrable_domain": ".".join(str(fields["host"]).split(".")[-2:]),
                     **fields})  # fmt: skip
    db.table("requests").insert_all(with_header_set(db, row) for row in rows)
    db.close()
    return ids
