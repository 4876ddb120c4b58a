"""Full run of the labeled leak corpus: the table in docs/leak-detection.md.

python bench/eval_leaks.py [FLOWS] [SEED] > /tmp/table.md
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "helpers"))
from leakcorpus import generate
from leakeval import score, table


def main(flows: int = 50_000, seed: int = 1) -> None:
    started = time.perf_counter()
    scores = score(generate(seed, flows), seed)
    print(table(scores))
    print(f"\n{flows} flows, seed {seed}, scored in {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main(*(int(a) for a in sys.argv[1:3]))
