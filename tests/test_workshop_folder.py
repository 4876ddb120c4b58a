"""`gazeback workshop --dir DIR` wipes what it created and nothing else (issue 12, item 3).

A real `gazeback workshop` process on loopback, stopped with a real SIGINT (Ctrl-C).
"""

import json
import os
import signal
import subprocess
import sys

from conftest import ROOT, free_port, wait_for_port

USER_FILE = b"my own notes \x00\xff, not the workshop's\n" * 100


def workshop(folder, log, hours="1"):
    proxy_port = free_port()
    args = [
        sys.executable, "-m", "gazeback", "workshop", "--hours", hours, "--seats", "2",
        "--dir", str(folder), "--endpoint", "127.0.0.1", "--page-host", "127.0.0.1",
        "--page-port", str(free_port()), "--proxy-port", str(proxy_port), "--wireguard-host", "127.0.0.1",
    ]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        args, stdout=open(log, "wb"), stderr=subprocess.STDOUT, env=env, cwd=log.parent
    )
    return proc, proxy_port


def test_ctrl_c_wipes_only_what_the_workshop_created(tmp_path):
    folder = tmp_path / "room"
    folder.mkdir()  # the person's own (empty) folder
    log = tmp_path / "workshop.log"
    proc, port = workshop(folder, log)
    try:
        wait_for_port(port, timeout=60, proc=proc, log=log)
        manifest = folder / ".gazeback-workshop.json"
        mode = manifest.stat().st_mode & 0o777 if manifest.exists() else None
        listed = json.loads(manifest.read_text())["entries"] if manifest.exists() else []
        # While the workshop runs, the trainer saves a file of their own in the folder.
        (folder / "notes.txt").write_bytes(USER_FILE)
        (folder / "slides").mkdir()
        (folder / "slides" / "deck.pdf").write_bytes(USER_FILE)
        os.kill(proc.pid, signal.SIGINT)
        assert proc.wait(60) == 0, log.read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
    assert (folder / "notes.txt").read_bytes() == USER_FILE
    assert (folder / "slides" / "deck.pdf").read_bytes() == USER_FILE
    assert mode == 0o600 and "trail.db" in listed and "notes.txt" not in listed
    out = log.read_text()
    assert "Wiped the workshop" in out and "2 file(s) it did not create were left" in out, out
    assert (folder / "notes.txt").read_bytes() == USER_FILE
    assert (folder / "slides" / "deck.pdf").read_bytes() == USER_FILE
    assert sorted(p.name for p in folder.iterdir()) == ["notes.txt", "slides"]


def test_a_folder_with_someone_elses_files_is_refused(tmp_path):
    folder = tmp_path / "documents"
    folder.mkdir()
    (folder / "tax-return.pdf").write_bytes(USER_FILE)
    os.chmod(folder / "tax-return.pdf", 0o644)
    log = tmp_path / "workshop.log"
    proc, _ = workshop(folder, log, hours="0.0008")  # old code: runs ~3 s, then wipes
    try:
        code = proc.wait(60)
    finally:
        if proc.poll() is None:
            proc.kill()
    out = log.read_text()
    assert code != 0, out
    assert "is not empty and is not a gazeback workshop folder" in out, out
    assert "Traceback" not in out
    assert [p.name for p in folder.iterdir()] == ["tax-return.pdf"]
    assert (folder / "tax-return.pdf").read_bytes() == USER_FILE
    assert (folder / "tax-return.pdf").stat().st_mode & 0o777 == 0o644


def test_a_folder_it_created_is_removed_and_an_empty_one_kept(tmp_path):
    new = tmp_path / "new-room"
    log = tmp_path / "new.log"
    proc, _ = workshop(new, log, hours="0.0008")
    assert proc.wait(60) == 0, log.read_text()
    assert not new.exists()
    empty = tmp_path / "empty-room"
    empty.mkdir()
    log = tmp_path / "empty.log"
    proc, _ = workshop(empty, log, hours="0.0008")
    assert proc.wait(60) == 0, log.read_text()
    assert empty.is_dir() and list(empty.iterdir()) == []
