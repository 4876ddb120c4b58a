"""Accuracy of the adapters on the hand-labeled real requests: the table in docs/what-they-learned-accuracy.md.

python bench/eval_learned.py > /tmp/table.md
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "helpers"))
from learnedeval import load, score, summary, table


def main() -> None:
    res = score(load())
    print(table(res))
    print()
    print(summary(res))


if __name__ == "__main__":
    main()
