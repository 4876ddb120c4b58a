"""Peak memory of `gazeback import` on a HAR file with one very large string field.

    python bench/har_memory.py --mb 200          # make the file, import it, print peak RSS
    python bench/har_memory.py --make big.har --mb 50   # only make the file

The file's response bodies add up to ``--mb`` MB, in ``--entries`` entries (one: a single
huge string field), followed by four small entries. Peak RSS
is the largest of the importing process (VmHWM, not inherited from whoever started it) and
its worker processes (getrusage).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def entry(i: int, text: str) -> dict:
    return {
        "startedDateTime": "2024-05-01T10:00:00.000Z", "time": 1,
        "request": {"method": "GET", "url": f"https://tracker.example/{i}",
                    "httpVersion": "HTTP/1.1", "headers": [], "queryString": [], "cookies": [],
                    "headersSize": -1, "bodySize": 0},
        "response": {"status": 200, "statusText": "OK", "httpVersion": "HTTP/1.1",
                     "headers": [], "cookies": [],
                     "content": {"size": len(text), "mimeType": "text/plain", "text": text},
                     "redirectURL": "", "headersSize": -1, "bodySize": len(text)},
        "cache": {}, "timings": {"send": 0, "wait": 1, "receive": 0},
    }  # fmt: skip


def make(path: Path, mb: int, entries: int = 1) -> None:
    """``mb`` MB of response bodies in ``entries`` entries, then four small entries."""
    body = "x" * (mb * 1_000_000 // entries)
    with open(path, "w") as f:
        f.write('{"log": {"version": "1.2", "creator": {"name": "bench", "version": "1"}, ')
        f.write('"entries": [' + json.dumps(entry(0, body)))
        for i in range(1, entries + 4):
            f.write(", " + json.dumps(entry(i, body if i < entries else "small")))
        f.write("]}}")


# The importing process's own peak is VmHWM, the high-water mark of its address space, which
# starts afresh at exec. getrusage(RUSAGE_SELF).ru_maxrss does not: Linux carries the
# spawning process's peak across fork/vfork + exec, so under a pytest process that has once
# been 400 MB, ru_maxrss said 400 MB however little the import used (#12).
PEAK = (
    "import resource, sys\n"
    "from gazeback.cli import cli\n"
    "try:\n    cli(sys.argv[1:])\n"
    "except SystemExit:\n    pass\n"
    "r = resource.getrusage\n"
    "own = r(resource.RUSAGE_SELF).ru_maxrss // 1024\n"
    "try:\n"
    "    with open('/proc/self/status') as f:\n"
    "        own = next(int(l.split()[1]) for l in f if l.startswith('VmHWM:')) // 1024\n"
    "except (OSError, StopIteration):\n    pass\n"
    "print('PEAK', own, r(resource.RUSAGE_CHILDREN).ru_maxrss // 1024)\n"
)


def measure(har: Path) -> tuple[int, int, float, str]:
    """(peak RSS in MB of the importing process, of its largest worker, seconds, output) of
    `gazeback import` of ``har`` into a new database."""
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "t.db"
        env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
        subprocess.run([sys.executable, "-m", "gazeback", "migrate", str(db)], env=env,
                       check=True, capture_output=True)  # fmt: skip
        started = time.monotonic()
        out = subprocess.run(
            [sys.executable, "-c", PEAK, "import", str(db), str(har), "-s"],
            env=env, capture_output=True, text=True,
        )  # fmt: skip
        took = time.monotonic() - started
    own, workers = (int(n) for n in out.stdout.split("PEAK")[1].split())
    return own, workers, took, out.stdout + out.stderr


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--mb", type=int, default=200)
    ap.add_argument("--entries", type=int, default=1, help="spread the MB over this many")
    ap.add_argument("--make", type=Path, help="only write the HAR file here")
    args = ap.parse_args()
    if args.make:
        make(args.make, args.mb, args.entries)
        return
    with tempfile.TemporaryDirectory() as tmp:
        har = Path(tmp) / "big.har"
        make(har, args.mb, args.entries)
        own, workers, took, out = measure(har)
    print(out.strip().splitlines()[0])
    print(
        f"{args.mb} MB of bodies in {args.entries} entries: peak RSS {max(own, workers)} MB "
        f"(importing process {own} MB, largest worker {workers} MB), {took:.1f} s"
    )


if __name__ == "__main__":
    main()
