"""process(snapshot, context) → Record: capture, classify, detect leaks, in that order (pure)."""

from __future__ import annotations

from dataclasses import dataclass, replace

from gazeback.capture.snapshot import observe
from gazeback.knowledge.classify import TrackerIndex, classify
from gazeback.leaks.detect import Profile, detect_safe
from gazeback.leaks.redact import scrub_request
from gazeback.models import FlowSnapshot, Leak, Observation, Record


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
