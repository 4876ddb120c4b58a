"""process(snapshot, context) → Record: capture, classify, detect leaks, in that order (pure)."""

from __future__ import annotations

from dataclasses import dataclass, replace

from .capture import observe
from .classify import TrackerIndex, classify
from .leaks import Profile, detect_safe
from .models import FlowSnapshot, Leak, Observation, Record
from .redact import LEAK_MARK, scrub_path


@dataclass(frozen=True)
class Context:
    """What every stage needs, loaded once by the caller (writer thread or importer).

    :param key: the local key: fingerprints secrets and decoded leaves
    :param index: tracker knowledge; None classifies by registrable domain only
    :param profile: the person's identities; None skips leak detection
    """

    key: bytes
    index: TrackerIndex | None = None
    profile: Profile | None = None


def process(snap: FlowSnapshot, context: Context) -> Record:
    """Turn one captured flow into what the store writes."""
    obs = observe(snap, context.key)
    cls = classify(obs, context.index)
    if context.profile is None:
        return Record(observation=obs, classification=cls)
    det = detect_safe(obs, context.profile, context.key)
    if det.leaks:
        obs = scrub(obs, det.leaks)
    return Record(
        observation=obs,
        classification=cls,
        leaks=det.leaks,
        decode_truncated=det.truncated,
        detection=det,
    )


def scrub(obs: Observation, leaks: tuple[Leak, ...]) -> Observation:
    """Take the person's identifiers out of what will be stored (path, headers).

    The leak rows say that and how an identifier was sent; the stored request must not
    carry it. Bodies are never stored, cookies and secrets are already fingerprinted.
    """
    query: dict[str, str] = {}
    segments: dict[int, str] = {}
    headers: dict[str, str] = {}
    for leak in leaks:
        kind, _, name = leak.location.partition(":")
        if kind == "url.query":
            query[name] = leak.pii_type
        elif kind == "url.path" and name.isdigit():
            segments[int(name)] = leak.pii_type
        elif kind == "header":
            headers[name.lower()] = leak.pii_type
    if not (query or segments or headers):
        return obs
    path = scrub_path(obs.path, query, segments) if obs.path else obs.path
    stored_headers = tuple(
        (n, LEAK_MARK.format(headers[n.lower()]) if n.lower() in headers else v)
        for n, v in obs.request_headers
    )
    fields = [f"url.query:{k}" for k in query] + [f"url.path:{i}" for i in segments]
    fields += [f"header:{h}" for h in headers]
    return replace(
        obs,
        path=path,
        request_headers=stored_headers,
        redacted_fields=tuple(dict.fromkeys((*obs.redacted_fields, *fields))),
    )
