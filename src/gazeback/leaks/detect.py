"""Observation + Profile → the person's identifiers found in it (pure).

Design (a) of the leak detector (``docs/leak-detection.md``): decode the request into leaves
(``decode.py``), run one Aho–Corasick pass over all of them with the profile's
needles (``needles.py``), keep matches that respect token boundaries, match
locations by distance, and name every hit by identity, transform chain and place —
never by value. It also returns keyed fingerprints of the leaves (for identities
added later, see ``store_leaks.rescan``) and ID-shaped values (for unregistered
persistent identifiers, see ``store_leaks.update_persistent_ids``).
"""

from __future__ import annotations

import math
import re
from bisect import bisect_right
from collections.abc import Sequence
from hashlib import blake2b

from gazeback.leaks.decode import MAX_BYTES, Decoder, Leaf, grpc_messages, safe_key
from gazeback.leaks.needles import (
    ID_KEYS,
    NAME_KEYS,
    Needle,
    Place,
    Profile,
    Tier,
    build_profile,
    could_hold_identifier,
)
from gazeback.models import Candidate, Detection, Leak, Observation

__all__ = [
    "Candidate",
    "Detection",
    "build_profile",
    "detect",
    "fingerprint",
    "Profile",
    "scrub_identities",
    "scrub_identities_many",
]

SEP = "\n"  # joins leaves for one automaton pass; never inside a needle
TIER_RANK = {"strong": 3, "medium": 2, "weak": 1}
STRUCTURAL = frozenset({"json", "form"})
SKIP_HEADERS = frozenset(
    "host content-length content-type accept accept-encoding accept-language connection "
    "te upgrade-insecure-requests sec-fetch-site sec-fetch-mode sec-fetch-dest priority "
    "cache-control pragma".split()
)
EPHEMERAL_KEYS = frozenset(
    "nonce ts t timestamp time request_id requestid req_id rid sig signature hash checksum crc "
    "md5 sha1 sha256 event_id eventid message_id msg_id trace_id traceid span_id spanid "
    "x-request-id x-b3-traceid x-b3-spanid x-amzn-trace-id traceparent cb rnd random "
    "cachebuster etag if-none-match insert_id $insert_id content-md5 seq".split()
)
MAX_CANDIDATES = 200
MAX_FINGERPRINTS = 5_000

_UUID = re.compile(
    r"[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}"
)
_HEXID = re.compile(r"[0-9a-fA-F]{16,64}")
_B64ID = re.compile(r"[A-Za-z0-9_-]{16,64}")
_DIGITID = re.compile(r"\d{12,24}")
_NUMBER = re.compile(r"(?<![\d.])-?\d{1,3}\.(\d{2,})(?![\d.])")
_INT = re.compile(r"-?\d{6,10}")
_INDEX = re.compile(r"\[\d+\]")


_HASHER: tuple[bytes, blake2b] | None = None  # one slot: the key in use and its state


def _hasher(key: bytes) -> blake2b:
    """The keyed BLAKE2b state before any data: copying it skips the key block per leaf."""
    global _HASHER
    slot = _HASHER  # read once: another thread may replace it
    if slot is not None and slot[0] == key:
        return slot[1]
    h = blake2b(digest_size=8, key=key[:64], person=b"gazeback-leaf")
    _HASHER = (key, h)
    return h


def fingerprint(key: bytes, text: str) -> int:
    """Keyed 64-bit fingerprint of a leaf or needle (case-folded, trimmed).

    Keyed BLAKE2b, a MAC like HMAC-SHA256 and about four times faster here; without
    the key a fingerprint cannot be tested against guessed values.
    """
    h = _hasher(key).copy()
    h.update(text.strip().lower().encode("utf-8", "surrogatepass"))
    return int.from_bytes(h.digest(), "big", signed=True)


# --- walking the observation -----------------------------------------------------------


def decode_observation(obs: Observation, decoder: Decoder | None = None) -> Decoder:
    """Every leaf of ``obs``: host, path segments, query, headers, cookies and body."""
    d = decoder or Decoder()
    if obs.host:
        d.leaf("url.host", obs.host)
    path = (obs.raw_path or obs.path or "").split("?", 1)[0]
    for i, seg in enumerate(p for p in path.split("/") if p):
        d.leaf(f"url.path:{i}", seg, key=f"path{i}")
    for k, v in obs.query:
        d.leaf(f"url.query:{safe_key(k)}", v, key=k.lower())
    raw = {k.lower(): v for k, v in obs.raw_secret_headers}
    headers = [(k, v) for k, v in obs.request_headers if k.lower() not in raw]
    headers += list(obs.raw_secret_headers)
    encoding = ""
    for name, value in headers:
        lname = name.lower()
        if lname == "content-encoding":
            encoding = value
        if lname in SKIP_HEADERS:
            continue
        if lname == "cookie":
            for pair in value.split(";"):
                k, _, v = pair.strip().partition("=")
                d.leaf(f"cookie:{safe_key(k)}", v, key=k.lower())
        elif lname in ("authorization", "proxy-authorization"):
            d.leaf(f"header:{lname}", value.split(" ", 1)[-1], key=lname)
        else:
            d.leaf(f"header:{safe_key(lname)}", value, key=lname)
    if obs.request_body:
        _decode_body(d, obs.request_body, (obs.content_type or "").lower(), encoding)
    return d


def _decode_body(d: Decoder, body: bytes, ctype: str, encoding: str) -> None:
    if len(body) > MAX_BYTES:
        d._cut()
        body = body[:MAX_BYTES]
    steps: tuple[str, ...] = ()
    if encoding and encoding.strip().lower() != "identity":
        decoded = d.content_decode(body, encoding)
        if decoded is not None:
            body, steps = decoded
    if ctype.startswith("multipart/") and "boundary=" in ctype:
        return _multipart(d, body, ctype, steps)
    if ctype.startswith("application/grpc"):
        for i, (compressed, msg) in enumerate(grpc_messages(body)):
            if compressed:
                msg = d.inflate(msg) or b""
            d.bytes_(msg, "body", steps, "", -1, content_type="application/protobuf")
            if i > 1000 or d.out.truncated:
                break
        return
    d.bytes_(body, "body", steps, "", -1, content_type=ctype)


def _multipart(d: Decoder, body: bytes, ctype: str, steps: tuple[str, ...]) -> None:
    boundary = ctype.split("boundary=", 1)[1].split(";", 1)[0].strip('"')
    for part in body.split(b"--" + boundary.encode())[1:]:
        head, _, content = part.partition(b"\r\n\r\n")
        if not content:
            continue
        text = head.decode("latin-1").lower()
        m = re.search(r'name="([^"]*)"', text)
        name = m.group(1) if m else "part"
        m = re.search(r"content-type:\s*([^\r\n;]+)", text)
        d.bytes_(
            content.removesuffix(b"\r\n"),
            f"body.multipart:{safe_key(name)}",
            steps,
            name,
            -1,
            content_type=m.group(1) if m else "",
        )
        if d.out.truncated:
            return


# --- matching --------------------------------------------------------------------------


def _key_names(key: str) -> set[str]:
    names = {key}
    if key.endswith("]") and "[" in key:
        names.add(key[key.rindex("[") + 1 : -1])
    return names


def _chain(needle: Needle, leaf: Leaf) -> str:
    wire = [s for s in reversed(leaf.steps) if s not in STRUCTURAL]
    return ">".join([needle.chain, *wire])


def _match_needles(
    leaves: list[Leaf], profile: Profile
) -> dict[int, list[tuple[int, int, Needle]]]:
    """leaf index → [(start, length, needle)] after boundary and binary filters."""
    hits: dict[int, list[tuple[int, int, Needle]]] = {}
    if profile.automaton is None or not leaves:
        return hits
    # One automaton pass over each distinct leaf text (SDK batches repeat the same values
    # in every event); the hits are then copied to every leaf that carries that text.
    distinct: dict[str | tuple[str, bool], int] = {}  # text, or (text, True) when binary
    of_leaf: list[int] = []
    texts: list[str] = []
    binary: list[bool] = []
    for _, text, _, _, is_binary, _ in leaves:
        k = (text, True) if is_binary else text
        u = distinct.get(k)
        if u is None:
            u = distinct[k] = len(texts)
            texts.append(text)
            binary.append(is_binary)
        of_leaf.append(u)
    starts, pos = [], 0
    for t in texts:
        starts.append(pos)
        pos += len(t) + 1
    big = SEP.join(texts)
    spans: set[tuple[int, int, int]] = set()
    found: dict[int, list[tuple[int, int, Needle]]] = {}
    passes = [(profile.automaton, big)]
    if profile.ci_automaton is not None:
        lowered = big.lower()
        if len(lowered) == len(big):  # offsets must line up (true for ASCII and most text)
            passes.append((profile.ci_automaton, lowered))
    for automaton, text in passes:
        for end, (length, needles) in automaton.iter(text):
            start = end - length + 1
            u = bisect_right(starts, start) - 1
            before = text[start - 1] if start > 0 else SEP
            after = text[end + 1] if end + 1 < len(text) else SEP
            for n in needles:
                if n.binary and not binary[u]:
                    continue
                if n.bounded and (before.isalnum() or after.isalnum()):
                    continue
                span = (start, length, n.identity_id)
                if n.chain == "case-changed" and span in spans:
                    continue  # the exact-case pass already found it
                spans.add(span)
                found.setdefault(u, []).append((start, length, n))
    if found:
        for li, u in enumerate(of_leaf):
            if u in found:
                hits[li] = list(found[u])
    return hits


def _whole_leaf(leaves: list[Leaf], profile: Profile) -> dict[int, list[tuple[int, int, Needle]]]:
    hits: dict[int, list[tuple[int, int, Needle]]] = {}
    if not profile.whole_leaf:
        return hits
    table = profile.whole_leaf
    seen: dict[str, Sequence[Needle] | None] = {}  # distinct texts only: batches repeat values
    for i, (_, text, _, key, binary, _) in enumerate(leaves):
        if binary or len(text) > 40:
            continue
        if text in seen:
            needles = seen[text]
        else:
            needles = seen[text] = table.get(text.strip().lower())
        if not needles:
            continue
        keys = _key_names(key)
        for n in needles:
            allowed = NAME_KEYS if n.pii_type == "name" else NAME_KEYS | ID_KEYS
            if keys & allowed:
                hits.setdefault(i, []).append((0, len(text), n))
    return hits


def _leaks_from_hits(
    leaves: list[Leaf], hits: dict[int, list[tuple[int, int, Needle]]]
) -> dict[tuple[int, str, str], Leak]:
    found: dict[tuple[int, str, str], Leak] = {}
    suppressed: set[tuple[int, int]] = set()  # (leaf, identity) already seen in a decoded child
    for li in hits:
        parent = leaves[li].parent
        ids = {n.identity_id for _, _, n in hits[li]}
        while parent >= 0:
            suppressed.update((parent, i) for i in ids)
            parent = leaves[parent].parent
    for li, matches in hits.items():
        leaf = leaves[li]
        # Longest first; drop matches of the same identity that overlap a kept one.
        matches.sort(key=lambda m: (-m[1], -TIER_RANK[m[2].tier], len(m[2].chain)))
        kept: dict[int, list[tuple[int, int]]] = {}
        for start, length, n in matches:
            if (li, n.identity_id) in suppressed:
                continue
            spans = kept.setdefault(n.identity_id, [])
            if any(start < s + ln and s < start + length for s, ln in spans):
                continue
            spans.append((start, length))
            tier: Tier = "medium" if n.binary and n.tier == "strong" else n.tier
            leak = Leak(n.pii_type, _chain(n, leaf), leaf.location, tier, n.identity_id)
            k = (n.identity_id, leak.transform_chain, leak.location)
            if k not in found or TIER_RANK[tier] > TIER_RANK[found[k].tier]:
                found[k] = leak
    return found


# --- location --------------------------------------------------------------------------


def _scrub_location(leak: Leak, profile: Profile) -> Leak:
    """Last guard: a location that contains one of the person's needles loses that part."""
    if profile.automaton is None:
        return leak
    loc = leak.location
    for end, (length, _) in profile.automaton.iter(loc):
        loc = loc[: end - length + 1] + "*" * length + loc[end + 1 :]
    if loc == leak.location:
        return leak
    return Leak(
        leak.pii_type, leak.transform_chain, re.sub(r"\*+", "*", loc), leak.tier, leak.identity_id
    )


def haversine_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * 6_371_000 * math.asin(min(1.0, math.sqrt(a)))


def _numbers(leaves: list[Leaf]) -> list[tuple[int, float, int, str]]:
    """(leaf index, value, decimals, form) of every coordinate-like number, in order."""
    out: list[tuple[int, float, int, str]] = []
    parents = {leaf[5] for leaf in leaves}  # Leaf.parent
    decimals: dict[str, list[tuple[float, int]]] = {}  # distinct texts only
    for i, (_, text, _, key, binary, _) in enumerate(leaves):
        if binary or len(text) > 4096 or i in parents:
            continue
        if "." in text:
            found = decimals.get(text)
            if found is None:
                found = decimals[text] = [
                    (float(m.group(0)), len(m.group(1).rstrip("0")) or 1)
                    for m in _NUMBER.finditer(text)
                ]
            for value, places in found:
                out.append((i, value, places, "decimal"))
            continue
        if ("lat" in key or "lon" in key or "lng" in key) and _INT.fullmatch(text):
            v = int(text)
            out.append((i, v / 1e7, 7, "e7") if abs(v) > 18_000_000 else (i, v / 1e6, 6, "e6"))
    return out


def _location_leaks(leaves: list[Leaf], places: Sequence[Place]) -> list[Leak]:
    nums = _numbers(leaves)
    found: dict[tuple[int, str], Leak] = {}
    for (i1, a, da, fa), (_, b, db, _) in zip(nums, nums[1:], strict=False):
        decimals = min(da, db)
        if decimals < 2:
            continue
        for lat, lon in ((a, b), (b, a)):
            if not (-90 <= lat <= 90 and -180 <= lon <= 180):
                continue
            for place in places:
                if haversine_m(lat, lon, place.lat, place.lon) <= place.radius_m:
                    tier: Tier = (
                        "strong" if decimals >= 4 else "medium" if decimals == 3 else "weak"
                    )
                    form = fa if fa != "decimal" else f"decimal{min(decimals, 6)}"
                    leak = Leak(
                        "location",
                        _chain_steps(form, leaves[i1]),
                        leaves[i1].location,
                        tier,
                        place.identity_id,
                    )
                    key = (place.identity_id, leak.location)
                    if key not in found or TIER_RANK[tier] > TIER_RANK[found[key].tier]:
                        found[key] = leak
    return list(found.values())


def _chain_steps(form: str, leaf: Leaf) -> str:
    return ">".join([form, *(s for s in reversed(leaf.steps) if s not in STRUCTURAL)])


# --- persistent-ID candidates and fingerprints -----------------------------------------


def id_shape(text: str) -> str | None:
    """``uuid``, ``hex``, ``b64`` or ``digits`` when ``text`` looks like an identifier."""
    n = len(text)
    if n == 36 or n == 32:
        if _UUID.fullmatch(text):
            return "uuid"
    if 16 <= n <= 64 and _HEXID.fullmatch(text):
        return None if len(set(text)) < 6 else "hex"
    if _DIGITID.fullmatch(text):
        scale = {10: 1, 13: 10**3, 16: 10**6, 19: 10**9}.get(n)
        if scale and 9 * 10**8 <= int(text) // scale <= 25 * 10**8:
            return None  # a Unix timestamp in s/ms/µs/ns
        return "digits"
    if 16 <= n <= 64 and _B64ID.fullmatch(text) and _entropy(text) >= 3.5:
        has = sum(1 for f in (str.isupper, str.islower, str.isdigit) if any(f(c) for c in text))
        return "b64" if has >= 2 else None
    return None


def _entropy(text: str) -> float:
    counts: dict[str, int] = {}
    for c in text:
        counts[c] = counts.get(c, 0) + 1
    n = len(text)
    return -sum(c / n * math.log2(c / n) for c in counts.values())


_STARRED: dict[str, str] = {}  # location → location with [*]: shapes repeat across requests
_EPHEMERAL: dict[str, bool] = {}  # key name → it names a nonce, timestamp, signature...


def _starred(loc: str) -> str:
    out = _STARRED.get(loc)
    if out is None:
        if len(_STARRED) >= 20_000:
            _STARRED.clear()
        out = _STARRED[loc] = _INDEX.sub("[*]", loc)
    return out


def _ephemeral(key: str) -> bool:
    out = _EPHEMERAL.get(key)
    if out is None:
        if len(_EPHEMERAL) >= 20_000:
            _EPHEMERAL.clear()
        out = _EPHEMERAL[key] = bool(_key_names(key) & EPHEMERAL_KEYS)
    return out


def _keyed(
    leaves: list[Leaf], key: bytes, matched: set[int]
) -> tuple[tuple[tuple[int, str], ...], tuple[Candidate, ...]]:
    """Leaf fingerprints (retroactive matching) and ID-shaped candidates, in one pass."""
    # Per distinct text (SDK batches repeat the same values in every event):
    # (fingerprint, ID shape or None when it cannot be a candidate)
    info: dict[str, tuple[int, str | None]] = {}
    fps: dict[tuple[int, str], None] = {}
    cands: dict[tuple[int, str], str] = {}  # → shape; Candidate objects are made at the end
    starred, ephemeral = _STARRED, _EPHEMERAL
    base = _hasher(key)
    for i, (location, text, _, lkey, binary, _) in enumerate(leaves):
        size = len(text)
        if binary or size < 2 or size > 256 or (size < 6 and lkey not in NAME_KEYS):
            continue
        loc = location
        if "[" in loc:
            loc = starred.get(loc) or _starred(loc)
        keep = len(fps) < MAX_FINGERPRINTS and could_hold_identifier(loc, text)
        if not keep and size < 12:  # neither a fingerprint nor an ID-shaped candidate
            continue
        got = info.get(text)
        if got is None:
            h = base.copy()
            h.update(text.strip().lower().encode("utf-8", "surrogatepass"))
            fp = int.from_bytes(h.digest(), "big", signed=True)
            got = info[text] = (fp, None if size < 12 else id_shape(text))
        fp, shape = got
        if keep:
            fps[(fp, loc)] = None
        if shape is None or i in matched or loc == "url.host" or len(cands) >= MAX_CANDIDATES:
            continue
        eph = ephemeral.get(lkey)
        if eph is None:
            eph = _ephemeral(lkey)
        if not eph:
            cands[(fp, loc)] = shape
    return tuple(fps), tuple(Candidate(fp, loc, shape) for (fp, loc), shape in cands.items())


def detect(obs: Observation, profile: Profile, key: bytes | None = None) -> Detection:
    """Find the profile's identities in ``obs``; never raises on malformed input.

    :param key: the local 32-byte key; without it no fingerprints or candidates are made.
    """
    decoder = decode_observation(obs)
    leaves = decoder.out.leaves
    hits = _match_needles(leaves, profile)
    for li, more in _whole_leaf(leaves, profile).items():
        hits.setdefault(li, []).extend(more)
    leaks = list(_leaks_from_hits(leaves, hits).values())
    if profile.places:
        leaks += _location_leaks(leaves, profile.places)
    leaks = [_scrub_location(leak, profile) for leak in leaks]
    leaks.sort(key=lambda x: (x.identity_id or 0, x.location, x.transform_chain))
    fps: tuple[tuple[int, str], ...] = ()
    cands: tuple[Candidate, ...] = ()
    if key is not None:
        fps, cands = _keyed(leaves, key, set(hits))
    return Detection(tuple(leaks), decoder.out.truncated, fps, cands)


def detect_safe(obs: Observation, profile: Profile, key: bytes | None = None) -> Detection:
    """``detect`` for the writer thread: a bug in a decoder marks the flow instead of raising.

    A missing module is not an odd request but a broken install: it raises, so the writer logs
    it, instead of every such body being skipped as if it carried nothing."""
    try:
        return detect(obs, profile, key)
    except ImportError:
        raise
    except Exception:  # noqa: BLE001 - one odd request must not stop the writer
        return Detection(truncated=True)


def scrub_identities(text: str, profile: Profile | None) -> str:
    """``text`` with every registered identity in it replaced by ``[your <kind>]``.

    For values gazeback stores outside the request row (what adapters learned): the same
    needles as leak detection (every registered form, encoding and digest), plus a value that is
    exactly one of the person's short values. Locations are not text: callers round coordinates."""
    return scrub_identities_many([text], profile)[0]


def scrub_identities_many(texts: Sequence[str], profile: Profile | None) -> list[str]:
    """:func:`scrub_identities` of each text, the texts searched in one automaton pass (what one
    request's adapters learned)."""
    out = list(texts)
    if profile is None:
        return out
    batch: list[int] = []  # one pass over these; a text whose lower case changes length alone
    alone: list[int] = []
    for i, text in enumerate(texts):
        if not text:
            continue
        key = text.strip()
        whole = profile.whole_leaf.get(key.lower()) or profile.exact.get(key)
        if whole:
            out[i] = f"[your {whole[0].pii_type}]"
        elif text.isascii() or len(text.lower()) == len(text):
            batch.append(i)
        else:
            alone.append(i)
    if not alone and len(batch) <= 1:  # nothing to search, or one value: no joining
        if batch:
            i = batch[0]
            one = _match_needles([Leaf("learned", texts[i])], profile).get(0)
            if one:
                out[i] = _replaced(texts[i], one)
        return out
    for group in [batch] + [[i] for i in alone] if alone else [batch]:
        distinct = list(dict.fromkeys(texts[i] for i in group))
        if not distinct:
            continue
        starts, pos = [], 0  # where each text begins in the joined pass (offsets are absolute)
        for text in distinct:
            starts.append(pos)
            pos += len(text) + len(SEP)
        hits = _match_needles([Leaf("learned", text) for text in distinct], profile)
        scrubbed = {
            distinct[u]: _replaced(distinct[u], [(a - starts[u], n, x) for a, n, x in found])
            for u, found in hits.items()
        }
        for i in group:
            if texts[i] in scrubbed:
                out[i] = scrubbed[texts[i]]
    return out


def _replaced(text: str, hits: list[tuple[int, int, Needle]]) -> str:
    out, end = [], 0
    for start, length, needle in sorted(hits, key=lambda h: (h[0], -h[1])):
        if start < end:
            continue
        out.append(text[end:start])
        out.append(f"[your {needle.pii_type}]")
        end = start + length
    out.append(text[end:])
    return "".join(out)
