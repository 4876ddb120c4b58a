"""process(snapshot) → Record: capture, classify, detect leaks, in that order (pure)."""

from __future__ import annotations

from .capture import observe
from .classify import classify
from .models import FlowSnapshot, Record


def process(snap: FlowSnapshot, key: bytes) -> Record:
    """Turn one captured flow into what the store writes.

    :param key: the local HMAC key that fingerprints secrets before storage
    """
    obs = observe(snap, key)
    return Record(observation=obs, classification=classify(obs))
