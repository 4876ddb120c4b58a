"""A full disk loses nothing it does not have to (issue 12, item 5).

The database sits on a real small disk (a tmpfs in a mount namespace, see helpers/smalldisk.py)
that fills up while a real mitmdump records: unsaved requests go to a spill file on a disk
with room, or wait in memory and are retried when space comes back; what cannot be kept is
counted and said. A malformed spill line is skipped, not a reason to refuse to start.
"""

import logging
import os
import shutil
import sqlite3
import time

import pytest
from conftest import start_proxy
from smalldisk import SmallDisk
from test_faults import send

from gazeback.capture.writer import Writer
from gazeback.db.localfiles import spill_path

pytestmark = pytest.mark.skipif(
    shutil.which("unshare") is None or os.geteuid() != 0, reason="needs root and unshare"
)
KEY = b"k" * 32


@pytest.fixture
def disk(tmp_path):
    d = SmallDisk(tmp_path / "data", "24m")  # start_proxy's database folder
    yield d
    d.close()


def recording(proxy, disk):
    """Wait until the writer has opened the database (the port opens before that)."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if disk.query(proxy.db_path, "select count(*) from captures"):
                return proxy
        except sqlite3.Error:
            pass
        assert proxy.proc.poll() is None, proxy.log.read_text()
        time.sleep(0.1)
    raise TimeoutError(proxy.log.read_text())


def stored(disk, proxy):
    return disk.query(proxy.db_path, "select count(*) from requests")


def test_full_disk_spills_where_there_is_room_and_replays(tmp_path, upstream, disk, monkeypatch):
    spare = tmp_path / "spare"  # another disk, with room
    monkeypatch.setenv("GAZEBACK_SPILL_DIR", str(spare))
    proxy = recording(start_proxy(tmp_path, upstream, preexec_fn=disk.enter), disk)
    disk.fill()
    assert send(proxy.port, 600, path="/" + "p" * 1000) == 600  # traffic never broken
    assert proxy.stop() == 0
    log = proxy.log.read_text()
    spills = list(spare.glob("trail.db-*.spill.jsonl"))
    assert len(spills) == 1, log
    assert spills[0].stat().st_mode & 0o777 == 0o600 and spare.stat().st_mode & 0o777 == 0o700
    assert f"kept in {spills[0]}" in log and "LOST" not in log
    kept = len(spills[0].read_bytes().splitlines())
    assert kept > 0 and stored(disk, proxy) + kept == 600

    # Damaged lines (a crash mid-write, an editor, a bad sector) must not stop the next start.
    with open(spills[0], "ab") as f:
        f.write(b'{"device": {"key": "x"}, "requ\n[1, 2]\n\xff\xfe not text\n{"request": 5}\n')
    disk.free()
    proxy = start_proxy(tmp_path, upstream, preexec_fn=disk.enter)
    assert proxy.stop() == 0
    log = proxy.log.read_text()
    assert not spills[0].exists()
    for line in range(kept + 1, kept + 5):
        assert f"{spills[0]} line {line} is not a recorded request" in log, log
    assert "4 bad line(s) skipped" in log
    assert stored(disk, proxy) == 600


def test_no_room_anywhere_keeps_a_backlog_in_memory_and_retries(
    tmp_path, upstream, disk, monkeypatch
):
    monkeypatch.setenv("GAZEBACK_SPILL_DIR", str(tmp_path / "data" / "spill"))  # full too
    proxy = recording(start_proxy(tmp_path, upstream, preexec_fn=disk.enter), disk)
    disk.fill()
    assert send(proxy.port, 300, path="/" + "p" * 1000) == 300
    deadline = time.monotonic() + 30
    while "kept in memory" not in proxy.log.read_text() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert "kept in memory and retried" in proxy.log.read_text()
    disk.free()  # space comes back while the proxy runs: the backlog is stored
    deadline = time.monotonic() + 30
    while stored(disk, proxy) < 300 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert stored(disk, proxy) == 300
    assert proxy.stop() == 0
    log = proxy.log.read_text()
    assert "stored the" in log and "LOST" not in log
    assert not disk.path(spill_path(proxy.db_path)).exists()


def test_backlog_overflow_is_counted_and_said(tmp_path, caplog, monkeypatch):
    # The db is locked by another writer; neither spill place can take a file.
    path = tmp_path / "t.db"
    spill_path(path).mkdir()  # a folder where the spill file would go
    (tmp_path / "not-a-folder").write_text("")
    monkeypatch.setenv("GAZEBACK_SPILL_DIR", str(tmp_path / "not-a-folder"))
    w = Writer(path, KEY, interval=0.1, busy_timeout_ms=50, backlog_max=30, retry_interval=0.2)
    w.start()
    blocker = sqlite3.connect(path)
    blocker.execute("BEGIN IMMEDIATE")
    from test_writer import snap

    with caplog.at_level(logging.ERROR, logger="gazeback"):
        for i in range(50):
            w.submit(snap(i))
        w.flush()
    assert (w.stats.lost, w.stats.backlog, w.stats.spilled) == (20, 30, 0)
    assert "20 requests LOST so far, 30 kept in memory" in caplog.text
    blocker.rollback()
    blocker.close()
    deadline = time.monotonic() + 10
    while w.stats.backlog and time.monotonic() < deadline:
        time.sleep(0.05)
    w.stop()
    assert (w.stats.recorded, w.stats.lost) == (30, 20)
    with sqlite3.connect(path) as conn:
        assert conn.execute("select count(*) from requests").fetchone()[0] == 30
        assert conn.execute("select requests_failed from captures").fetchone()[0] == 20


def test_a_malformed_spill_line_does_not_stop_the_proxy(tmp_path, upstream):
    spill = spill_path(tmp_path / "data" / "trail.db")
    spill.parent.mkdir(mode=0o700)
    spill.write_bytes(b'[1, 2]\n{"request": 5}\n\xff\xfe not text\n{"device": {"key"\n')
    proxy = start_proxy(tmp_path, upstream)
    assert send(proxy.port, 3) == 3
    assert proxy.stop() == 0
    log = proxy.log.read_text()
    assert "cannot record" not in log, log
    assert all(f"{spill} line {n} is not a recorded request" in log for n in (1, 2, 3, 4)), log
    assert proxy.rows("select count(*) as n from requests") == [{"n": 3}]
    assert not spill.exists()
