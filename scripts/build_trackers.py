"""Build the bundled tracker knowledge from data/trackers-src/ (reproducible).

    python scripts/build_trackers.py            # write the artifacts
    python scripts/build_trackers.py --check    # exit 1 if the shipped artifacts are stale

Writes src/gazeback/data/trackers.json.gz (the merged index), trackers-sources.json.gz (the
raw sources, so `gazeback trackers update` can rebuild offline) and ATTRIBUTION.md.
"""

from __future__ import annotations

import sys
from pathlib import Path

from gazeback.knowledge import build as trackerbuild

ROOT = Path(__file__).resolve().parent.parent
SRC = ROOT / "data" / "trackers-src"
OUT = ROOT / "src" / "gazeback" / "data"


def read_sources(src: Path = SRC) -> dict[str, bytes]:
    return {p: (src / p).read_bytes() for ps in trackerbuild.RAW_FILES.values() for p in ps}


def outputs(src: Path = SRC) -> dict[str, bytes]:
    files = read_sources(src)
    artifact = trackerbuild.build(files)
    return {
        "trackers.json.gz": artifact,
        "trackers-sources.json.gz": trackerbuild.sources_bundle(files),
        "ATTRIBUTION.md": trackerbuild.attribution(artifact).encode("utf-8"),
    }


def main(argv: list[str]) -> int:
    stale = []
    for name, data in outputs().items():
        path = OUT / name
        if "--check" in argv:
            if not path.exists() or path.read_bytes() != data:
                stale.append(name)
        else:
            path.write_bytes(data)
            print(f"wrote {path.relative_to(ROOT)} ({len(data):,} bytes)")
    if stale:
        print("stale: " + ", ".join(stale) + " (run scripts/build_trackers.py)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
