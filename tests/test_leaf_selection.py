"""Only leaves that could hold an identifier are fingerprinted (#19), and `rescan` still finds
every leak it found when every leaf was fingerprinted: on the labeled corpus (realistic SDK
requests carrying each kind of identifier in its encodings and digests), for every kind."""

from __future__ import annotations

import re

import pytest
from leakcorpus import generate, make_observation, personas
from sqlite_utils import Database

from gazeback.db import identities as store_leaks
from gazeback.db import migrations
from gazeback.leaks.detect import decode_observation, detect, fingerprint
from gazeback.leaks.needles import (
    NAME_KEYS,
    VARIANTS,
    build_profile,
    could_hold_identifier,
    location_keys,
)
from gazeback.models import IdentityValue

KEY = b"s" * 32
SEED = 11
INDEX = re.compile(r"\[\d+\]")


def every_leaf(obs):  # the selection before #19: every text leaf of 6 to 256 characters
    out = set()
    for location, text, _, lkey, binary, _ in decode_observation(obs).out.leaves:
        size = len(text)
        if binary or size < 2 or size > 256 or (size < 6 and lkey not in NAME_KEYS):
            continue
        out.add((fingerprint(KEY, text), INDEX.sub("[*]", location)))
    return out


def identities():
    # four of the corpus' twelve people register theirs (the others' values are in the trail)
    out = [i for p in personas(SEED)[:4] for i in p.identities if i.kind != "location"]
    # an `other` identifier: a customer number the person knows an app sends
    out += [IdentityValue(1000 + n, "other", i.value.upper(), "other")
            for n, i in enumerate(out) if i.kind == "android_id"]  # fmt: skip
    return out


def trail():
    flows = [f.obs for f in generate(SEED, 700, negatives_share=0.1, location_share=0.0)]
    for p in personas(SEED)[:4]:  # a home server reached by its IP address, and a named account
        ip, name = p.value("ip").value, p.value("name").value
        flows.append(make_observation(ip, "/status", [("first_name", name.split()[0])],
                                      [("user-agent", "okhttp/4.12.0")], method="GET"))  # fmt: skip
    return flows


def rescanned(tmp_path, name, fingerprints):
    db = Database(tmp_path / f"{name}.db")
    migrations.apply(db)
    db.execute("pragma synchronous = off")  # a scratch file: no fsync per commit
    with db.atomic():
        for rid, fps in enumerate(fingerprints, 1):
            db["requests"].insert({"id": rid, "flow_id": f"f{rid}", "kind": "http", "host": "h",
                                   "started_at": "2026-01-01T00:00:00Z"})  # fmt: skip
            store_leaks.save_leaf_fingerprints(db, rid, sorted(fps))
    for ident in identities():
        store_leaks.add_identity(db, KEY, ident.kind, ident.value, ident.label)
    store_leaks.rescan(db, KEY)
    rows = db.execute(
        "select l.request_id, i.kind, l.pii_type, l.transform_chain, l.location "
        "from leaks l join identities i on i.id = l.identity_id"
    ).fetchall()
    stored = db["leaf_fingerprints"].count
    db.close()
    return set(rows), stored


def test_rescan_finds_every_leak_it_found_when_every_leaf_was_kept(tmp_path):
    obs = trail()
    empty = build_profile([])
    selected = [set(detect(o, empty, KEY).leaf_fingerprints) for o in obs]
    every = [every_leaf(o) for o in obs]
    assert all(s <= e for s, e in zip(selected, every, strict=True))
    before, kept_before = rescanned(tmp_path, "every", every)
    after, kept_after = rescanned(tmp_path, "selected", selected)
    assert {kind for _, kind, *_ in before} == set(VARIANTS)  # every kind but location
    assert after == before
    assert kept_after < 0.8 * kept_before  # and fewer fingerprints are stored


@pytest.mark.parametrize("ident", identities()[:10] + identities()[-1:], ids=lambda i: i.kind)
def test_every_needle_rescan_looks_up_passes_the_selection(ident):
    profile = build_profile([ident])
    for needle in profile.exact:
        assert could_hold_identifier("body.json:$.x", needle), needle
    for value in profile.whole_leaf:  # short values count only under a name key (rescan)
        assert could_hold_identifier("url.query:first_name", value), value


@pytest.mark.parametrize(
    ("location", "text", "kept"),
    [
        ("url.query:ev", "PageView", True),  # could be an `other` value: kept
        ("url.query:n", "1", False),  # counters and flags: no needle is that short
        ("url.query:id", "12345678", False),  # 8 digits: no phone, IMEI or IP integer
        ("url.query:id", "123456789", True),
        ("url.query:first_name", "Lena", True),  # a name part, under a name key
        ("url.query:fn", "ab", True),
        ("url.host", "tr.pixel.example", False),  # the destination itself
        ("url.host", "192.0.2.7", True),  # kind ip
        ("url.host", "2001:db8::7", True),
        ("header:user-agent", "Mozilla/5.0 (X11; Linux x86_64)", False),
        ("header:x-device-id", "a3f9c2e17b4d8e6f", True),
        ("body.json:$.u", "5d41402abc4b2a76b9719d911017c592", True),  # an md5 hex digest
    ],
)
def test_could_hold_identifier(location, text, kept):
    assert could_hold_identifier(location, text) is kept


def test_location_keys():
    assert location_keys("body.form:data>$.properties.first_name") == {"first_name"}
    assert location_keys("url.query:ud[fn]") == {"ud[fn]", "fn"}
