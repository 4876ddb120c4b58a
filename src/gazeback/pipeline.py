"""process(snapshot, context) → Record: capture, classify, detect leaks, in that order (pure)."""

from __future__ import annotations

from dataclasses import dataclass

from .capture import observe
from .classify import TrackerIndex, classify
from .leaks import Profile, detect_safe
from .models import FlowSnapshot, Record


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
    return Record(
        observation=obs,
        classification=cls,
        leaks=det.leaks,
        decode_truncated=det.truncated,
        detection=det,
    )
