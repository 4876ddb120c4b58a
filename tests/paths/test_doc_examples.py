"""Every shell example in README.md and docs/ runs, as a person would type it (issue #12).

Each document's ```bash blocks run in order, in one sandbox per document: a temporary HOME
(so ``~/.local/share/gazeback/trail.db`` and ``~/.mitmproxy`` start empty), a working folder
holding the files the examples name (``session.har``, ``router.pcapng``, ...) and nothing else.

- Commands that serve until Ctrl-C (``gazeback run``, ``dashboard``, ``workshop``, ``demo``
  without ``--no-serve``, ``export --preview``) are started, must print the address they serve
  on, that address must answer 200, then they get Ctrl-C and must exit 0
  (``tests/helpers/doc_serve.py``).
- A block right after ``<!-- doc-example: with-proxy -->`` runs while ``gazeback run`` records
  in the same sandbox, with every server connection sent to a local stand-in for the internet
  (``tests/helpers/hostmap.py``); the requests it makes must land in the trail.
- A block right after ``<!-- doc-example: skip REASON -->`` is not run. The skipped blocks are
  listed in ``SKIPPED`` below, so adding one is a reviewed change.
- The README starts from nothing, as a newcomer does. The pages under ``docs/`` assume a trail
  has been recorded: their sandbox starts with a small made-up one at the default path.
"""

from __future__ import annotations

import re
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import sqlite_utils

ROOT = Path(__file__).resolve().parent.parent.parent
HELPERS = ROOT / "tests" / "helpers"
DATA = ROOT / "tests" / "data"
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
MARK = re.compile(r"<!--\s*doc-example:\s*(skip|with-proxy)\s*(.*?)\s*-->\s*\n\s*$")
BLOCK = re.compile(r"^```(?:bash|sh|shell)\n(.*?)^```", re.S | re.M)

# Every block that is not run, by document and first line, and why. Keep this short.
SKIPPED = {
    ("README.md", "python3 -m venv .venv && . .venv/bin/activate && pip install -e . && gazeback run"),
    ("README.md", "python3 -m venv .venv && . .venv/bin/activate && pip install -e '.[test]' && python -m pytest"),
    ("README.md", "pip install -e '.[docs]' && sphinx-build -W -b html docs docs/_build/html"),
    ("docs/development.md", "python3 -m venv .venv && . .venv/bin/activate && pip install -e '.[test]'"),
    ("docs/benchmarks.md", "apt-get install hey          # optional: a Go load generator, cheaper on CPU than Python threads"),
    ("docs/guide/trackers.md", "gazeback trackers update"),
    ("docs/guide/ask-them.md", "gazeback trackers update-contacts --from ~/Downloads/data-master"),
    ("docs/experiments.md", "gazeback consent-check https://www.example.com/ --runs 3"),
    ("docs/experiments.md", "gazeback run --notify-command 'notify-send gazeback \"{text}\"'"),
    ("docs/benchmarks.md", "python bench/bench_learn.py --rounds 3 --requests 2000 --calls 5000 --repeat 5"),
    ("docs/benchmarks.md", "python bench/bench_adapters.py --compare 24919f9 --rounds 3 --calls 200 --repeat 5"),
}  # fmt: skip

# Files the examples name, made from the test fixtures.
FIXTURES = {
    "session.har": DATA / "browse.har",
    "router.pcapng": DATA / "curl.pcapng",
    "phone.pcapng": DATA / "curl.pcapng",
    "App_Privacy_Report.ndjson": DATA / "app-privacy-report.ndjson",
    "pihole-FTL.db": DATA / "pihole-FTL.db",
    "pcapdroid.pcapng": DATA / "pcapdroid.pcapng",
    "pcapdroid-connections.csv": DATA / "pcapdroid-connections.csv",
    "trackercontrol_log_20261127.csv": DATA / "trackercontrol_log_20261127.csv",
    "httptoolkit.har": DATA / "httptoolkit.har",
    "addons/gazeback_addon.py": ROOT / "addons" / "gazeback_addon.py",  # as in a clone
    "easyprivacy.txt": ROOT / "data" / "trackers-src" / "easylist" / "easyprivacy.txt",
}

WRAPPER = r"""
set -euo pipefail
gazeback() {
  case "${1:-}" in
    run|dashboard|workshop) python "$DOC_SERVE" "$GAZEBACK" "$@" ;;
    demo)
      if [[ " $* " == *" --no-serve "* ]]; then "$GAZEBACK" "$@"; else python "$DOC_SERVE" "$GAZEBACK" "$@"; fi ;;
    export)
      if [[ " $* " == *" --preview "* ]]; then python "$DOC_SERVE" "$GAZEBACK" "$@"; else "$GAZEBACK" "$@"; fi ;;
    *) "$GAZEBACK" "$@" ;;
  esac
}
mitmdump() { python "$DOC_SERVE" "$(command -v mitmdump)" "$@"; }
"""


@dataclass
class Block:
    doc: str
    line: int
    text: str
    mark: str | None
    reason: str

    @property
    def first(self) -> str:
        return self.text.strip().splitlines()[0]


def blocks_of(path: Path) -> list[Block]:
    text = path.read_text()
    out = []
    for m in BLOCK.finditer(text):
        before = text[: m.start()]
        mark = MARK.search(before[-300:])
        out.append(
            Block(
                doc=str(path.relative_to(ROOT)),
                line=before.count("\n") + 1,
                text=m.group(1),
                mark=mark.group(1) if mark else None,
                reason=mark.group(2) if mark else "",
            )
        )
    return out


def documents_with_examples() -> list[Path]:
    return [p for p in DOCUMENTS if blocks_of(p)]


def sandbox(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    home = tmp_path / "home"
    work = tmp_path / "work"
    home.mkdir()
    work.mkdir()
    for name, src in FIXTURES.items():
        (work / name).parent.mkdir(exist_ok=True)
        shutil.copy(src, work / name)
    venv_bin = str(Path(sys.executable).parent)
    env = {
        "HOME": str(home),
        "PATH": f"{venv_bin}:/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin",
        "LANG": "C.UTF-8",
        "PYTHONUNBUFFERED": "1",
        "GAZEBACK": str(Path(venv_bin) / "gazeback"),
        "DOC_SERVE": str(HELPERS / "doc_serve.py"),
        "TERM": "dumb",
    }
    return work, env


def needs_exports(text: str, work: Path, env: dict[str, str]) -> None:
    """alice.db, bob.db, carol.db: three households' anonymized exports of made-up trails."""
    for seed, name in enumerate(("alice", "bob", "carol"), start=1):
        if name + ".db" not in text or (work / f"{name}.db").exists():
            continue
        trail = work / f".{name}-trail.db"
        for args in (
            ["demo", "--db", str(trail), "--no-serve", "--seed", str(seed), "--scale", "1500"],
            ["export", str(trail), str(work / f"{name}.db")],
        ):
            subprocess.run(
                [env["GAZEBACK"], *args], env=env, cwd=work, check=True, capture_output=True
            )


def start_recording(work: Path, env: dict[str, str], upstream) -> subprocess.Popen:
    log = open(work.parent / "run.log", "wb")
    proc = subprocess.Popen(
        [
            env["GAZEBACK"], "run", "--no-dashboard", "--",
            "-s", str(HELPERS / "hostmap.py"),
            "--set", f"hostmap_port={upstream.https_port}",
            "--set", f"hostmap_http_port={upstream.http_port}",
            "--set", "ssl_insecure=true",  # the stand-in upstream's certificate names test hosts only
        ],
        env=env, cwd=work, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    deadline = time.monotonic() + 60
    ca = Path(env["HOME"]) / ".mitmproxy" / "mitmproxy-ca-cert.pem"
    import socket

    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError("gazeback run exited:\n" + (work.parent / "run.log").read_text())
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", 8080)) == 0 and ca.exists():
                return proc
        time.sleep(0.1)
    proc.kill()
    raise AssertionError(
        "gazeback run did not listen on 8080:\n" + (work.parent / "run.log").read_text()
    )


DEFAULT_PORTS = (8080, 8001, 8002)
BUSY = re.compile(r"address already in use|cannot listen on 127\.0\.0\.1:(8080|8001|8002)", re.I)


def wait_until_free(ports, timeout: float = 30.0) -> None:
    import socket

    deadline = time.monotonic() + timeout
    for port in ports:
        while True:
            with socket.socket() as s:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                try:
                    s.bind(("127.0.0.1", port))
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        who = subprocess.run(["ss", "-ltnp"], capture_output=True, text=True)
                        raise AssertionError(f"port {port} stays busy:\n{who.stdout}") from None
            time.sleep(0.2)


def stop(proc: subprocess.Popen) -> int:
    proc.send_signal(signal.SIGINT)
    try:
        return proc.wait(60)
    except subprocess.TimeoutExpired:
        proc.kill()
        return proc.wait()


def test_skipped_blocks_are_the_reviewed_ones():
    skipped = {(b.doc, b.first) for p in DOCUMENTS for b in blocks_of(p) if b.mark == "skip"}
    assert skipped == set(SKIPPED), "a block was marked skip (or unmarked) without updating SKIPPED"


@pytest.mark.parametrize("path", documents_with_examples(), ids=lambda p: str(p.relative_to(ROOT)))
def test_every_example_runs(path: Path, tmp_path: Path, upstream):
    work, env = sandbox(tmp_path)
    default_db = Path(env["HOME"]) / ".local/share/gazeback/trail.db"
    if path.name != "README.md":
        default_db.parent.mkdir(parents=True)
        subprocess.run(
            [env["GAZEBACK"], "demo", "--db", str(default_db), "--no-serve", "--scale", "500"],
            env=env, cwd=work, check=True, capture_output=True,
        )  # fmt: skip
    for block in blocks_of(path):
        if block.mark == "skip":
            continue
        needs_exports(block.text, work, env)
        wait_until_free(DEFAULT_PORTS)  # the documented defaults; an earlier test may linger
        recorder = start_recording(work, env, upstream) if block.mark == "with-proxy" else None
        script = work.parent / "block.sh"
        script.write_text(WRAPPER + block.text)
        try:
            for _attempt in (1, 2):
                result = subprocess.run(
                    ["bash", str(script)], env=env, cwd=work, capture_output=True, text=True,
                    input="alex@example.org\n" * 4, timeout=600,
                )  # fmt: skip
                if result.returncode == 0 or not BUSY.search(result.stdout + result.stderr):
                    break
                # A documented default port taken by a process outside this block (an earlier
                # test's server still shutting down): say who, wait, and run the block once more.
                print(f"{block.doc} line {block.line}: port busy, listening now:")
                print(subprocess.run(["ss", "-ltnp"], capture_output=True, text=True).stdout)
                wait_until_free(DEFAULT_PORTS, timeout=60)
        finally:
            status = stop(recorder) if recorder else 0
        where = f"{block.doc} line {block.line}:\n{block.text}"
        if result.returncode != 0:  # say what held the documented ports, if anything
            ports = subprocess.run(["ss", "-ltnp"], capture_output=True, text=True).stdout
            raise AssertionError(
                f"{where}\nfailed with {result.returncode}:\n{result.stdout[-3000:]}\n"
                f"{result.stderr[-3000:]}\nlistening now:\n{ports}"
            )
        if recorder:
            assert status == 0, f"{where}\n`gazeback run` exited {status} after Ctrl-C"
            hosts = [
                h for (h,) in sqlite_utils.Database(default_db).execute("select host from requests")
            ]
            for host in re.findall(r"https?://([\w.-]+)", block.text):
                if host != "127.0.0.1":
                    assert host in hosts, f"{where}\nno request to {host} in the trail: {hosts}"
