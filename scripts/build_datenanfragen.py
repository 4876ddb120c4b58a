"""Build the bundled datenanfragen data from a checkout of datenanfragen/data (CC0).

    python scripts/build_datenanfragen.py [SRC]           # write the artifact
    python scripts/build_datenanfragen.py [SRC] --check   # exit 1 if the shipped artifact is stale

SRC defaults to ../shared/data/datenanfragen (the snapshot named in its SOURCE.md). Writes
src/gazeback/data/datenanfragen.json.gz, licenses/datenanfragen-CC0-1.0.txt and the build
report data/datenanfragen-crosscheck.md (tracker companies against the records).
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

from gazeback.knowledge import datenanfragen

ROOT = Path(__file__).resolve().parent.parent
SRC = ROOT.parent / "shared" / "data" / "datenanfragen"
OUT = ROOT / "src" / "gazeback" / "data"


def version_of(src: Path) -> str:
    """``0a29c3d6 (2026-07-21)`` from SOURCE.md's origin line, else the folder name."""
    try:
        text = (src / "SOURCE.md").read_text(encoding="utf-8")
    except OSError:
        return src.name
    m = re.search(r"commit ([0-9a-f]{8})[0-9a-f]* \((\d{4}-\d{2}-\d{2})\)", text)
    return f"{m[1]} ({m[2]})" if m else src.name


REPORT = ROOT / "data" / "datenanfragen-crosscheck.md"


def outputs(src: Path) -> dict[Path, bytes]:
    import gzip
    import json

    from gazeback.knowledge import trackerlists

    version = version_of(src)
    artifact = datenanfragen.build(src, version)
    directory = datenanfragen.Directory(json.loads(gzip.decompress(artifact)))
    index_doc = trackerlists.read_artifact(trackerlists.bundled_path())
    report = datenanfragen.crosscheck_report(
        datenanfragen.crosscheck(index_doc, directory), version
    )
    return {
        OUT / "datenanfragen.json.gz": artifact,
        OUT / "licenses" / "datenanfragen-CC0-1.0.txt": (src / "LICENSE").read_bytes(),
        REPORT: report.encode("utf-8"),
    }


def main(argv: list[str]) -> int:
    args = [a for a in argv if not a.startswith("--")]
    src = Path(args[0]) if args else SRC
    stale = []
    for path, data in outputs(src).items():
        name = str(path.relative_to(ROOT))
        if "--check" in argv:
            if not path.exists() or path.read_bytes() != data:
                stale.append(name)
        else:
            path.write_bytes(data)
            print(f"wrote {path.relative_to(ROOT)} ({len(data):,} bytes)")
    if stale:
        print(
            "stale: " + ", ".join(stale) + " (run scripts/build_datenanfragen.py)", file=sys.stderr
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
