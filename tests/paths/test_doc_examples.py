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
- The examples use the documented default ports (8080, 8001, 8002). Run as root, every block,
  ``gazeback run`` and the stand-in internet run in a network namespace of this test's own
  (loopback and a "LAN" that leads nowhere), so another program or test on this machine holding those ports cannot
  make an example fail; without root they run on the machine's loopback, waiting for the
  ports to be free.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

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


def listening(port: int, ns: list[str]) -> bool:
    """Does something accept connections on 127.0.0.1:``port`` (in the namespace ``ns`` runs in)?"""
    probe = f"exec 3<>/dev/tcp/127.0.0.1/{port}"
    return subprocess.run([*ns, "bash", "-c", probe], capture_output=True).returncode == 0


def start_recording(work: Path, env: dict[str, str], upstream, ns: list[str]) -> subprocess.Popen:
    log = open(work.parent / "run.log", "wb")
    proc = subprocess.Popen(
        [
            *ns, env["GAZEBACK"], "run", "--no-dashboard", "--",
            "-s", str(HELPERS / "hostmap.py"),
            "--set", f"hostmap_port={upstream.https_port}",
            "--set", f"hostmap_http_port={upstream.http_port}",
            "--set", "ssl_insecure=true",  # the stand-in upstream's certificate names test hosts only
        ],
        env=env, cwd=work, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    deadline = time.monotonic() + 60
    ca = Path(env["HOME"]) / ".mitmproxy" / "mitmproxy-ca-cert.pem"
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError("gazeback run exited:\n" + (work.parent / "run.log").read_text())
        if ca.exists() and listening(8080, ns):
            return proc
        time.sleep(0.1)
    proc.kill()
    raise AssertionError(
        "gazeback run did not listen on 8080:\n" + (work.parent / "run.log").read_text()
    )


DEFAULT_PORTS = (8080, 8001, 8002)
BUSY = re.compile(r"address already in use|cannot listen on 127\.0\.0\.1:(8080|8001|8002)", re.I)


def wait_until_free(ports, ns: list[str], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    for port in ports:
        while listening(port, ns):
            if time.monotonic() > deadline:
                raise AssertionError(f"port {port} stays busy:\n{who_listens(ns)}") from None
            time.sleep(0.2)


def who_listens(ns: list[str]) -> str:
    return subprocess.run([*ns, "ss", "-ltnp"], capture_output=True, text=True).stdout


@pytest.fixture(scope="module")
def ns():
    """The command prefix that runs a program in this module's own network namespace
    (loopback, and a "LAN" that leads nowhere), or [] when it cannot be made (not
    root, no `ip`)."""
    ip = shutil.which("ip")
    if os.geteuid() != 0 or ip is None:
        yield []
        return
    listed = subprocess.run([ip, "netns", "list"], capture_output=True, text=True).stdout
    for stale in re.findall(r"^gazeback-docs-(\d+)", listed, re.M):  # a killed run's
        if not Path(f"/proc/{stale}").exists():
            subprocess.run([ip, "netns", "del", f"gazeback-docs-{stale}"], capture_output=True)
    name = f"gazeback-docs-{os.getpid()}"
    made = subprocess.run([ip, "netns", "add", name], capture_output=True)
    if made.returncode != 0:
        yield []
        return
    try:
        subprocess.run([ip, "-n", name, "link", "set", "lo", "up"], check=True)
        # a LAN address for `gazeback device add` to write into QR codes: a veth pair whose
        # two ends both stay in the namespace, so it leads nowhere
        for cmd in (["link", "add", "lan0", "type", "veth", "peer", "name", "lan1"],
                    ["addr", "add", "192.168.77.2/24", "dev", "lan0"],
                    ["link", "set", "lan0", "up"], ["link", "set", "lan1", "up"]):  # fmt: skip
            subprocess.run([ip, "-n", name, *cmd], check=True)
        yield [ip, "netns", "exec", name]
    finally:
        subprocess.run([ip, "netns", "del", name], capture_output=True)


UPSTREAM = """
import json, sys, threading
sys.path.insert(0, sys.argv[1])
from pathlib import Path
from upstream import start_upstream
u = start_upstream(Path(sys.argv[2]))
print(json.dumps({"https_port": u.https_port, "http_port": u.http_port}), flush=True)
threading.Event().wait()
"""


@pytest.fixture(scope="module")
def stand_in(ns, request, tmp_path_factory):
    """The stand-in internet (tests/helpers/upstream.py), in the namespace the examples run in."""
    if not ns:
        yield request.getfixturevalue("upstream")
        return
    folder = tmp_path_factory.mktemp("upstream")
    proc = subprocess.Popen(
        [*ns, sys.executable, "-c", UPSTREAM, str(HELPERS), str(folder)],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        line = proc.stdout.readline()
        assert line, "the stand-in internet did not start in the test's network namespace"
        yield SimpleNamespace(**json.loads(line))
    finally:
        proc.terminate()
        proc.wait(10)


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
def test_every_example_runs(path: Path, tmp_path: Path, ns, stand_in):
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
        wait_until_free(DEFAULT_PORTS, ns)  # the documented defaults; an earlier block may linger
        recorder = start_recording(work, env, stand_in, ns) if block.mark == "with-proxy" else None
        script = work.parent / "block.sh"
        script.write_text(WRAPPER + block.text)
        try:
            for _attempt in (1, 2):
                result = subprocess.run(
                    [*ns, "bash", str(script)], env=env, cwd=work, capture_output=True, text=True,
                    input="alex@example.org\n" * 4, timeout=600,
                )  # fmt: skip
                if result.returncode == 0 or not BUSY.search(result.stdout + result.stderr):
                    break
                # A documented default port taken by a process outside this block (an earlier
                # test's server still shutting down): say who, wait, and run the block once more.
                print(f"{block.doc} line {block.line}: port busy, listening now:")
                print(who_listens(ns))
                wait_until_free(DEFAULT_PORTS, ns, timeout=60)
        finally:
            status = stop(recorder) if recorder else 0
        where = f"{block.doc} line {block.line}:\n{block.text}"
        if result.returncode != 0:  # say what held the documented ports, if anything
            ports = who_listens(ns)
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
