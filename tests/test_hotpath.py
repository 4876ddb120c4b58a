"""The #19 hot-path speed-ups keep what they replace: same matches, same detections."""

from __future__ import annotations

import pickle
import random
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent / "helpers"))
from leakcorpus import generate, personas

from gazeback.leaks.detect import detect
from gazeback.leaks.needles import Matcher, build_profile


def test_matcher_reports_overlapping_matches_by_end_longest_first() -> None:
    m = Matcher({"abc": "A", "bc": "B", "c": "C", "é1": "E"})
    assert list(m.iter("xxabcé1 abc")) == [
        (4, "A"), (4, "B"), (4, "C"), (6, "E"), (10, "A"), (10, "B"), (10, "C"),
    ]  # fmt: skip
    assert list(m.iter("nothing here")) == []


def test_profile_pickles_and_detects_the_same() -> None:
    # spawned import workers receive the profile pickled; the Rust automaton is rebuilt
    people = personas(3)
    profile = build_profile(people[0].identities)
    again = pickle.loads(pickle.dumps(profile))
    flows = [f for f in generate(3, 300) if f.persona == 0]
    assert flows
    key = random.Random(3).randbytes(32)
    found = 0
    for f in flows:
        a, b = detect(f.obs, profile, key), detect(f.obs, again, key)
        assert a == b
        found += len(a.leaks)
    assert found > 0


def test_clean_header_cache_changes_no_redaction() -> None:
    # #19: header values found clean are remembered; every header of the secret and ordinary
    # corpora, twice and interleaved, must redact exactly as with nothing remembered
    from secretcorpus import ordinary_cases, secret_cases

    from gazeback.leaks import redact

    key = bytes(32)
    headers = [h for c in [*secret_cases(), *ordinary_cases()] for h in c.headers]
    headers += [("User-Agent", "Mozilla/5.0"), ("X-Api-Key", "Mozilla/5.0")]
    assert len(headers) > 100
    plain = [redact._redact_header(n.lower(), v, key) for n, v in headers]  # nothing remembered
    redact._CLEAN_HEADERS.clear()
    try:
        cached = [redact.redact_header(n, v, key) for n, v in headers + headers]
    finally:
        redact._CLEAN_HEADERS.clear()
    assert cached == plain + plain
    assert any(replaced for _, replaced in plain) and not all(r for _, r in plain)
