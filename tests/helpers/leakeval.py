"""Score the leak detector on the labeled synthetic corpus (``leakcorpus``)."""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field

from leakcorpus import CHAINS, KNOWN_TYPES, Flow, personas

from gazeback.leaks.detect import detect
from gazeback.leaks.needles import build_profile


def wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """Wilson 95 % interval for k successes out of n."""
    if n == 0:
        return (0.0, 1.0)
    p = k / n
    d = 1 + z * z / n
    c = p + z * z / (2 * n)
    r = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return (max(0.0, (c - r) / d), min(1.0, (c + r) / d))


@dataclass
class Scores:
    cells: dict[tuple[str, str], list[int]] = field(
        default_factory=lambda: defaultdict(lambda: [0, 0])
    )
    families: dict[str, list[int]] = field(default_factory=lambda: defaultdict(lambda: [0, 0]))
    strong_tp: int = 0
    strong_fp: int = 0
    name_tp: int = 0
    name_fp: int = 0
    negative_flows: int = 0
    negative_strong: int = 0
    flows: int = 0

    def recall(self, types: Iterable[str], in_scope: bool = True) -> tuple[int, int]:
        k = n = 0
        for (t, chain), (hit, total) in self.cells.items():
            if t in types and CHAINS.get(chain, ("", True))[1] == in_scope:
                k, n = k + hit, n + total
        return k, n

    @property
    def strong_precision(self) -> float:
        total = self.strong_tp + self.strong_fp
        return self.strong_tp / total if total else 1.0


def score(flows: Iterable[Flow], seed: int, n_personas: int = 12) -> Scores:
    people = personas(seed, n_personas)
    profiles = [build_profile(p.identities) for p in people]
    s = Scores()
    for flow in flows:
        s.flows += 1
        det = detect(flow.obs, profiles[flow.persona])
        if flow.identity_id is not None and flow.pii_type and flow.chain:
            found = any(leak.identity_id == flow.identity_id for leak in det.leaks)
            cell = s.cells[(flow.pii_type, flow.chain)]
            cell[0] += found
            cell[1] += 1
            if CHAINS.get(flow.chain, ("", True))[1]:
                fam = s.families[flow.family]
                fam[0] += found
                fam[1] += 1
        for leak in det.leaks:
            right = leak.identity_id == flow.identity_id
            if leak.tier == "strong":
                s.strong_tp += right
                s.strong_fp += not right
            if leak.pii_type == "name":
                s.name_tp += right
                s.name_fp += not right
        if flow.pii_type is None:
            s.negative_flows += 1
            s.negative_strong += any(leak.tier == "strong" for leak in det.leaks)
    return s


def table(s: Scores) -> str:
    """Markdown: recall per PII type × chain, then the summary figures."""
    lines = [
        "| PII type | chain | family | found / flows | recall | 95 % CI |",
        "|---|---|---|---|---|---|",
    ]
    for (t, chain), (k, n) in sorted(s.cells.items()):
        lo, hi = wilson(k, n)
        fam = CHAINS.get(chain, ("location", True))[0]
        lines.append(f"| {t} | `{chain}` | {fam} | {k} / {n} | {k / n:.3f} | {lo:.3f}–{hi:.3f} |")
    k, n = s.recall(KNOWN_TYPES)
    lk, ln = s.recall(["location"])
    ok, on = s.recall([*KNOWN_TYPES, "name"], in_scope=False)
    nk, nn = s.recall(["name"])
    lines += [
        "",
        "| summary | value |",
        "|---|---|",
        f"| flows | {s.flows} |",
        f"| known identifiers, in-scope chains: recall | {k}/{n} = {k / max(n, 1):.4f} "
        f"(95 % LB {wilson(k, n)[0]:.4f}) |",
        f"| strong-tier precision | {s.strong_tp}/{s.strong_tp + s.strong_fp} = "
        f"{s.strong_precision:.4f} |",
        f"| location recall (R = 1 km) | {lk}/{ln} = {lk / max(ln, 1):.4f} |",
        f"| names: recall, precision | {nk}/{nn}, {s.name_tp}/{s.name_tp + s.name_fp} |",
        f"| negatives-only flows with a strong hit | {s.negative_strong} / {s.negative_flows} |",
        f"| out-of-scope bucket recall (no target) | {ok}/{on} |",
    ]
    lines += ["", "| template family (in-scope positives) | recall |", "|---|---|"]
    for fam, (fk, fn) in sorted(s.families.items()):
        lines.append(f"| {fam} | {fk}/{fn} = {fk / max(fn, 1):.4f} |")
    return "\n".join(lines)
