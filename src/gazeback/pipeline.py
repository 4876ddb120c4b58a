"""process(snapshot, context) → Record: observe, classify, detect leaks, learn, in that order (pure)."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from urllib.parse import parse_qsl

from gazeback.knowledge import learn
from gazeback.knowledge.apps import infer_app
from gazeback.knowledge.classify import TrackerIndex, classify
from gazeback.knowledge.hostnames import normalize_host
from gazeback.knowledge.properties import (
    COORDINATES,
    IDENTIFIERS,
    MAX_VALUE_CHARS,
    Group,
    group_of,
)
from gazeback.leaks.detect import Profile, detect_safe, fingerprint, scrub_identities_many
from gazeback.leaks.needles import identity_in
from gazeback.leaks.redact import redact_header, redact_url, scrub_request, scrub_text
from gazeback.models import (
    MAX_TEXT,
    TRUNCATION_MARKER,
    Classification,
    FlowSnapshot,
    Leak,
    Learned,
    Observation,
    Record,
)
from gazeback.timestamps import iso

MAX_HEADERS = 200  # headers kept per request; the rest are counted in a marker entry
MAX_HEADER_VALUE = 2048
MAX_QUERY_PAIRS = 20_000  # decoded pairs handed to leak detection (its budget marks more)


@dataclass(frozen=True)
class Context:
    """What every stage needs, loaded once by the caller (writer thread or importer).

    :param key: the local key: fingerprints secrets and decoded leaves
    :param index: tracker knowledge; None classifies by registrable domain only
    :param profile: the person's identities; None skips leak detection
    :param adapters: what each tracker endpoint carries (knowledge/adapters); None learns nothing
    """

    key: bytes
    index: TrackerIndex | None = None
    profile: Profile | None = None
    adapters: learn.AdapterIndex | None = field(default_factory=learn.load_index)


def process(snap: FlowSnapshot, context: Context) -> Record:
    """Turn one captured flow into what the store writes."""
    obs = observe(snap, context.key)
    cls = classify(obs, context.index)
    if obs.app is None and (app := infer_app(obs.user_agent, obs.request_headers, obs.query,
                                               obs.request_body)):  # fmt: skip
        obs = replace(obs, app=app, app_source="inferred")
    if obs.app is not None and (safe := safe_app(obs.app, context)) != obs.app:
        obs = replace(obs, app=safe, app_source=obs.app_source if safe else None)
    if obs.user_agent and (kind := identity_in(obs.user_agent, context.profile)):
        # the device's browser family is read from it (devices.user_agent_family)
        obs = replace(obs, user_agent=f"[leak:{kind}]")
    learned = learn_from(obs, context) if context.adapters is not None else ()
    if context.profile is None:
        return Record(observation=obs, classification=cls, learned=learned)
    det = detect_safe(obs, context.profile, context.key)
    if det.leaks:
        obs = scrub(obs, det.leaks)
    return Record(
        observation=obs,
        classification=cls,
        leaks=det.leaks,
        decode_truncated=det.truncated,
        detection=det,
        learned=learned,
    )


def learn_from(obs: Observation, context: Context) -> tuple[Learned, ...]:
    """What the adapters find in ``obs``, in the form it may be stored (see ``safe_learned``).

    A request to a host no adapter knows costs one or two dictionary lookups. An adapter that
    raises on an odd request (a bug) yields nothing for that request rather than stopping the
    writer."""
    index = context.adapters
    if index is None or obs.kind != "http" or not obs.host:
        return ()
    candidates = index.candidates(obs.host)
    if candidates is None:
        return ()
    path = obs.raw_path or obs.path or "/"
    if "?" in path:
        path = path.partition("?")[0]
    method = obs.method or ""
    adapters = [a for a in candidates if a.matches(method, path)]
    if not adapters:
        return ()
    headers = {name.lower(): value for name, value in obs.request_headers}
    headers.update(obs.raw_secret_headers)  # the values as sent (cookie, authorization)
    request = learn.Request(
        method=obs.method or "",
        host=obs.host,
        path=path,
        query=obs.query,
        headers=headers,
        body=obs.request_body,
    )
    try:
        found = learn.apply(adapters, request)
    except Exception:  # noqa: BLE001 - one odd request must not stop the writer
        return ()
    companies = {a.id: a.company for a in adapters}
    return tuple(x for x in safe_learned_many(found, companies, context) if x is not None)


def safe_learned(found: learn.Found, company: str, context: Context) -> Learned | None:
    """Turn a finding into what may be stored: identifiers as keyed fingerprint + masked preview,
    coordinates rounded to 2 decimals, other values secret- and identity-scrubbed and short."""
    return safe_learned_many([found], {found.adapter: company}, context)[0]


def safe_learned_many(
    found: Sequence[learn.Found], companies: Mapping[str, str], context: Context
) -> list[Learned | None]:
    """:func:`safe_learned` of each finding (``companies``: adapter id → company), the person's
    identities searched for in all of their values at once."""
    out: list[Learned | None] = []
    pending: list[tuple[int, learn.Found, str, Group]] = []  # (out index, finding, location, group)
    texts: list[str] = []
    key = context.key
    for f in found:
        prop, value = f.property, f.value
        location = f.location.replace(".", ":", 1)
        group = group_of(prop)
        if prop in IDENTIFIERS:
            out.append(
                Learned(
                    f.adapter,
                    companies[f.adapter],
                    prop,
                    location,
                    group,
                    None,
                    fingerprint(key, value),
                    mask_identifier(value),
                )
            )
            continue
        if prop in COORDINATES:
            try:
                number = float(value)
            except ValueError:
                out.append(None)
                continue
            if number != number or abs(number) > 180:  # NaN or not a coordinate
                out.append(None)
                continue
            text = f"{round(number, 2):.2f}"
            out.append(Learned(f.adapter, companies[f.adapter], prop, location, group, text, None, text))  # fmt: skip
            continue
        if "://" in value[:12]:
            text = redact_url(value, key)[0]
        elif len(value) >= 16:
            text = scrub_text(value, key)
        else:
            text = value
        pending.append((len(out), f, location, group))
        texts.append(text)
        out.append(None)
    profile = context.profile
    if texts and profile is not None and (profile.automaton is not None or profile.whole_leaf):
        texts = scrub_identities_many(texts, profile)
    for (i, f, where, kind), text in zip(pending, texts, strict=True):
        if len(text) > MAX_VALUE_CHARS:
            text = text[: MAX_VALUE_CHARS - 1] + "…"
        out[i] = Learned(f.adapter, companies[f.adapter], f.property, where, kind, text, None, text)
    return out


def learn_stored(
    method: str,
    host: str,
    path: str,
    headers: list[tuple[str, str]],
    leaves: dict[str, list[int]],
    context: Context,
) -> tuple[Learned, ...]:
    """What the adapters find in a request recorded earlier, from what gazeback stored of it.

    Reads the stored path and query and the stored (redacted) headers, as live capture would,
    skipping values redaction replaced; identifier properties elsewhere (the body, redacted
    cookies) come from the stored leaf fingerprints (``leaves``: location → fingerprints), whose
    preview the caller fills from live findings of the same fingerprint. Bodies are not stored:
    descriptive values inside a body, values under a list index, and anything behind a transform
    other than JSON inside a form field cannot be recovered."""
    index = context.adapters
    if index is None or not host:
        return ()
    path_only, _, qs = (path or "/").partition("?")
    adapters = index.match(method, host, path_only)
    if not adapters:
        return ()
    request = learn.Request(
        method=method,
        host=host,
        path=path_only,
        query=tuple(parse_qsl(qs, keep_blank_values=True)),
        headers={name.lower(): value for name, value in headers},
    )
    companies = {a.id: a.company for a in adapters}
    out: dict[tuple[str, str, str, object], Learned] = {}
    kept = [
        f
        for f in learn.apply(adapters, request)
        if "[secret:" not in f.value and "[leak:" not in f.value
    ]
    for x in safe_learned_many(kept, companies, context):
        if x is not None:
            out.setdefault((x.adapter, x.property, x.location, x.fingerprint or x.value), x)
    for a in adapters:
        for rule in a.rules:
            if rule.property not in IDENTIFIERS:
                continue
            skip = {fingerprint(context.key, v) for v in rule.not_if}
            container, _, rest = rule.path.text.partition(".")
            location = f"{container}:{rest}" if rest else container
            location = location.split("|")[0]
            for loc in learn.leaf_locations(rule.path, a.body):
                for fp in leaves.get(loc, ()):
                    if fp in skip:
                        continue
                    x = Learned(
                        adapter=a.id,
                        company=a.company,
                        property=rule.property,
                        location=location,
                        group="identifier",
                        value=None,
                        fingerprint=fp,
                        preview="",
                    )
                    out.setdefault((x.adapter, x.property, x.location, fp), x)
    return tuple(out.values())


def mask_identifier(value: str) -> str:
    """A hint that tells the person which identifier it is, and nobody else much."""
    v = value.strip()
    if len(v) >= 12:
        return f"{v[:2]}…{v[-2:]}"
    return "…"


def unprocessed(snap: FlowSnapshot) -> Record:
    """The least we can store for a flow our code could not process: where and when only."""
    obs = Observation(
        flow_id=snap.flow_id,
        kind=snap.kind,
        started_at=iso(snap.started_at),
        device=snap.device,
        method=None,
        scheme=None,
        host=str(snap.host)[:1024] or "(unknown)",
        port=snap.port or None,
        path=None,
        query=(),
        request_headers=(),
        request_body=None,
        content_type=None,
        user_agent=None,
        referer=None,
        origin=None,
        sec_fetch_site=None,
        status_code=None,
        request_bytes=0,
        response_bytes=0,
        duration_ms=None,
        is_decrypted=snap.is_decrypted,
        tls_sni=None,
        server_ip=None,
        error="gazeback could not process this request (see the proxy log)",
    )
    return Record(observation=obs, classification=Classification(None, None))


APP_MAX = 120  # characters: the longest package names and bundle IDs are about 100
# A package, bundle ID or app name: starts with a letter or digit (never = + - @, which
# spreadsheets run as formulas), then letters, digits, spaces and the punctuation names use.
_APP_SHAPE = re.compile(r"[^\W_][\w .,:;'’&()+/#!?~-]*")


def app_problem(app: str) -> str | None:
    """Why ``app`` (an app name a capture or file gives) is not stored, or None when it is
    a sane package, bundle ID or app name."""
    if len(app) > APP_MAX:
        return f"an app name longer than {APP_MAX} characters"
    if not _APP_SHAPE.fullmatch(app):
        return "not an app name (a package, bundle ID or name starts with a letter or digit)"
    return None


def safe_app(app: str | None, context: Context) -> str | None:
    """``app`` as it may be stored in ``requests.app``: None when it is not app-shaped,
    ``[leak:KIND]`` when it holds one of the person's registered identities (a User-Agent
    that starts with an e-mail address), ``[leak:secret]`` when it holds a secret-shaped run.

    Every app name passes here, inferred (live capture, HAR, mitm) or reported (PCAPdroid,
    TrackerControl, App Privacy Report), like the other stored text."""
    if app is None:
        return None
    app = app[: APP_MAX * 4]
    if kind := identity_in(app, context.profile):
        return f"[leak:{kind}]"
    if scrub_text(app, context.key) != app:
        return "[leak:secret]"
    return None if app_problem(app) else app


def stored_only(record: Record) -> Record:
    """``record`` without what is never stored (body, decoded query, values as sent):
    for records that wait in memory or cross to another process."""
    obs = record.observation
    if not (obs.request_body is not None or obs.query or obs.raw_secret_headers or obs.raw_path):
        return record
    lean = replace(obs, request_body=None, query=(), raw_secret_headers=(), raw_path=None)
    return replace(record, observation=lean)


def scrub(obs: Observation, leaks: tuple[Leak, ...]) -> Observation:
    """Take the person's identifiers out of what will be stored (path, headers).

    The leak rows say that and how an identifier was sent; the stored request must not
    carry it. Bodies are never stored, cookies and secrets are already fingerprinted.
    """
    path, headers, fields = scrub_request(
        obs.path, obs.request_headers, [(leak.location, leak.pii_type) for leak in leaks]
    )
    if not fields:
        return obs
    return replace(
        obs,
        path=path,
        request_headers=tuple(headers),
        redacted_fields=tuple(dict.fromkeys((*obs.redacted_fields, *fields))),
    )


def clip(text: str, limit: int = MAX_TEXT) -> str:
    if len(text) <= limit:
        return text
    return text[: limit - len(TRUNCATION_MARKER)] + TRUNCATION_MARKER


def _text(b: bytes) -> str:
    # backslashreplace keeps non-UTF-8 bytes visible and storable
    return b.decode("utf-8", "backslashreplace")


def observe(snap: FlowSnapshot, key: bytes) -> Observation:
    """Redact secrets and normalise text; the result is what gazeback may store (plus body)."""
    redacted: list[str] = []
    raw_secrets: list[tuple[str, str]] = []
    headers: list[tuple[str, str]] = []
    first: dict[str, str] = {}
    for i, (bname, bvalue) in enumerate(snap.request_headers):
        name, value = _text(bname), _text(bvalue)
        lname = name.lower()
        first.setdefault(lname, value)
        if i >= MAX_HEADERS:
            continue
        redacted_value, was_secret = redact_header(name, value, key)
        if was_secret:
            redacted.append(f"header:{lname}")
            raw_secrets.append((lname, clip(value, MAX_HEADER_VALUE * 4)))
            value = redacted_value
        headers.append((name, clip(value, MAX_HEADER_VALUE)))
    if len(snap.request_headers) > MAX_HEADERS:
        headers.append(("x-gazeback-truncated", f"{len(snap.request_headers) - MAX_HEADERS} more"))
    raw_path = path = snap.path or None
    query: list[tuple[str, str]] = []
    if path:
        if "?" in path:
            qs = path.partition("?")[2]
            query = parse_qsl(qs, keep_blank_values=True, max_num_fields=None)[:MAX_QUERY_PAIRS]
        path, places = redact_url(path, key)
        redacted += places
    referer = first.get("referer")
    if referer:
        referer = redact_url(referer, key)[0]
    return Observation(
        flow_id=snap.flow_id,
        kind=snap.kind,
        started_at=iso(snap.started_at),
        device=snap.device,
        method=snap.method or None,
        scheme=snap.scheme or None,
        host=clip(normalize_host(snap.host), 1024),
        port=snap.port or None,
        path=clip(path) if path else None,
        query=tuple(query),
        request_headers=tuple(headers),
        request_body=snap.request_body,
        content_type=first.get("content-type"),
        user_agent=first.get("user-agent"),
        referer=referer,
        origin=first.get("origin"),
        sec_fetch_site=first.get("sec-fetch-site"),
        status_code=snap.status_code,
        request_bytes=snap.request_bytes,
        response_bytes=snap.response_bytes,
        duration_ms=round(snap.duration_ms, 3) if snap.duration_ms is not None else None,
        is_decrypted=snap.is_decrypted,
        tls_sni=snap.tls_sni,
        server_ip=snap.server_ip,
        error=clip(snap.error, 1024) if snap.error else None,
        websocket_messages=snap.websocket_messages,
        websocket_bytes=snap.websocket_bytes,
        redacted_fields=tuple(dict.fromkeys(redacted)),
        raw_secret_headers=tuple(raw_secrets),
        raw_path=raw_path if raw_path != path else None,
    )
