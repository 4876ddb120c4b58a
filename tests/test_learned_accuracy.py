"""Adapters (#14) on real, hand-labeled requests (tests/data/learned-labeled/, see its SOURCE.md).

Targets from the issue: precision ≥ 0.98 and recall ≥ 0.85 over (request, property, value) on
requests to covered endpoints; nothing claimed on static downloads or on tracker endpoints no adapter
covers. bench/eval_learned.py prints the per-property table of docs/what-they-learned-accuracy.md.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent / "helpers"))
from learnedeval import load, request_of, score  # noqa: E402

from gazeback.knowledge import learn  # noqa: E402


def test_labeled_set_meets_the_targets() -> None:
    entries = load()
    res = score(entries)
    assert (
        res.requests["covered"] >= 10 and res.requests["static"] >= 10 and res.requests["uncovered"]
    )
    assert not res.off_endpoint, (
        "claimed on a static download or an uncovered endpoint: " + "; ".join(res.off_endpoint)
    )
    t = res.total
    assert t.precision >= 0.98, f"precision {t.precision:.3f}; wrong: {res.wrong}"
    assert t.recall >= 0.85, f"recall {t.recall:.3f}; missed: {res.misses}"


def test_labels_use_the_vocabulary_and_every_covered_request_is_matched() -> None:
    vocab = learn.vocabulary()
    index = learn.load_index()
    for e in load():
        assert set(e["labels"]) <= vocab, (
            f"{e['id']}: not TrackHAR names: {set(e['labels']) - vocab}"
        )
        r = request_of(e)
        matched = index.match(r.method, r.host, r.path)
        if e["kind"] == "covered":
            assert matched, f"{e['id']}: labeled as covered but no adapter matches {r.host}{r.path}"
        else:
            assert not matched, (
                f"{e['id']}: labeled {e['kind']} but {[a.id for a in matched]} match"
            )


def test_scoring_counts_a_wrong_and_a_missed_value() -> None:
    entry = {
        "id": "t",
        "kind": "covered",
        "request": {"method": "GET", "url": "https://www.facebook.com/tr/?id=42&sw=1440"},
        "labels": {"propertyId": ["42"], "screenHeight": ["900"]},
    }
    res = score([entry])
    assert (res.total.tp, res.total.fp, res.total.fn) == (1, 1, 1)
    assert res.wrong == ["t: screenWidth='1440'"] and res.misses == ["t: screenHeight='900'"]
    static = {**entry, "kind": "static", "labels": {}}
    assert score([static]).off_endpoint == ["t: propertyId='42'", "t: screenWidth='1440'"]


def test_the_docs_show_the_current_figures() -> None:
    from learnedeval import table

    docs = Path(__file__).parents[1] / "docs" / "what-they-learned-accuracy.md"
    res = score(load())
    assert table(res) in docs.read_text("utf-8"), (
        "docs/what-they-learned-accuracy.md: the table differs from `python bench/eval_learned.py`"
    )
    t = res.total
    assert f"precision **{t.precision:.3f}**" in docs.read_text("utf-8")
    assert f"recall **{t.recall:.3f}**" in docs.read_text("utf-8")
