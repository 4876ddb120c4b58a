"""Regenerate tests/data/*.expected.json from the importer fixtures; review the diff.

PYTHONPATH=src python scripts/regen_import_goldens.py
"""

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "helpers"))

from importgolden import describe, fixtures, fresh_db, golden_for, import_path  # noqa: E402

for path in fixtures():
    db = fresh_db()
    import_path(db, path)
    golden_for(path).write_text(json.dumps(describe(db), indent=1, ensure_ascii=False) + "\n")
    print(golden_for(path).name)
