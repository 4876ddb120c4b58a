"""Score the adapters against the hand-labeled real requests in tests/data/learned-labeled/.

A finding is a (request, property, value) triple. For requests to covered endpoints, a finding the
adapters make that the labels have is a true positive, one they do not have a false positive, and a
labeled triple the adapters miss a false negative. Static downloads and requests to tracker hosts
with no adapter for the endpoint must yield nothing: every finding there counts as a false positive
(and is listed separately).
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from gazeback.knowledge import learn

LABELED = Path(__file__).resolve().parents[1] / "data" / "learned-labeled" / "requests.yaml"
KINDS = ("covered", "static", "uncovered")


@dataclass
class Score:
    tp: int = 0
    fp: int = 0
    fn: int = 0

    @property
    def precision(self) -> float:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else 1.0

    @property
    def recall(self) -> float:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else 1.0


@dataclass
class Result:
    per_property: dict[str, Score] = field(default_factory=lambda: defaultdict(Score))
    requests: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    off_endpoint: list[str] = field(default_factory=list)  # findings on static/uncovered requests
    misses: list[str] = field(default_factory=list)
    wrong: list[str] = field(default_factory=list)

    @property
    def total(self) -> Score:
        s = Score()
        for p in self.per_property.values():
            s.tp, s.fp, s.fn = s.tp + p.tp, s.fp + p.fp, s.fn + p.fn
        return s


def load(path: Path = LABELED) -> list[dict[str, Any]]:
    entries = yaml.safe_load(path.read_text("utf-8"))
    for e in entries:
        assert e["kind"] in KINDS, f"{path.name}: {e['id']}: kind must be one of {KINDS}"
    return entries


def request_of(entry: dict[str, Any]) -> learn.Request:
    r = entry["request"]
    body = r["body"].encode() if r.get("body") else None
    return learn.request_from_url(r["method"], r["url"], r.get("headers") or {}, body)


def score(entries: list[dict[str, Any]], index: learn.AdapterIndex | None = None) -> Result:
    index = index or learn.load_index()
    res = Result()
    for e in entries:
        res.requests[e["kind"]] += 1
        found = {(f.property, f.value) for f in index.learn(request_of(e))}
        if e["kind"] != "covered":
            for prop, value in sorted(found):
                res.per_property[prop].fp += 1
                res.off_endpoint.append(f"{e['id']}: {prop}={value!r}")
            continue
        labels = {(p, learn.value_text(v)) for p, vs in e["labels"].items() for v in vs}
        for prop, _value in found & labels:
            res.per_property[prop].tp += 1
        for prop, value in sorted(found - labels):
            res.per_property[prop].fp += 1
            res.wrong.append(f"{e['id']}: {prop}={value!r}")
        for prop, value in sorted(labels - found):
            res.per_property[prop].fn += 1
            res.misses.append(f"{e['id']}: {prop}={value!r}")
    return res


def table(res: Result) -> str:
    """The Markdown table in docs/what-they-learned-accuracy.md."""
    lines = [
        "| property | labeled | found | correct | precision | recall |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for prop in sorted(res.per_property):
        s = res.per_property[prop]
        lines.append(
            f"| `{prop}` | {s.tp + s.fn} | {s.tp + s.fp} | {s.tp} | {s.precision:.2f} | {s.recall:.2f} |"
        )
    t = res.total
    lines.append(
        f"| **all** | **{t.tp + t.fn}** | **{t.tp + t.fp}** | **{t.tp}** "
        f"| **{t.precision:.3f}** | **{t.recall:.3f}** |"
    )
    return "\n".join(lines)


def summary(res: Result) -> str:
    return json.dumps(
        {
            "requests": dict(res.requests),
            "precision": round(res.total.precision, 4),
            "recall": round(res.total.recall, 4),
            "findings_off_endpoint": len(res.off_endpoint),
            "misses": res.misses,
            "wrong": res.wrong,
        },
        indent=2,
    )
