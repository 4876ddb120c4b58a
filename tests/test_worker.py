import time

import sqlite_utils
from test_writer import KEY, count, snap

from gazeback.capture.worker import ProcessWriter


def wait_count(path, n, timeout=10):
    deadline = time.monotonic() + timeout
    while count(path) < n and time.monotonic() < deadline:
        time.sleep(0.05)
    return count(path)


def test_child_process_stores_everything(tmp_path):
    path = tmp_path / "t.db"
    w = ProcessWriter(path, KEY)
    w.start()
    for i in range(40):
        assert w.submit(snap(i))
    assert wait_count(path, 40) == 40  # visible while running
    w.stop()
    assert w.stats.recorded == 40 and w.stats.spilled == 0
    cap = next(sqlite_utils.Database(path).query("select * from captures"))
    assert cap["requests_recorded"] == 40 and cap["ended_at"]


def test_child_death_falls_back_to_the_proxy_process(tmp_path):
    path = tmp_path / "t.db"
    w = ProcessWriter(path, KEY)
    w.start()
    w.submit(snap(0))
    assert wait_count(path, 1) == 1
    w._proc.kill()
    w._proc.join(5)
    for i in range(1, 11):
        w.submit(snap(i))
    assert wait_count(path, 11) == 11
    assert w.fallback is not None
    w.stop()


def test_unusable_database_fails_at_start(tmp_path):
    (tmp_path / "t.db").write_text("this is not a database")
    w = ProcessWriter(tmp_path / "t.db", KEY)
    try:
        w.start()
    except OSError as e:
        assert "not a database" in str(e)
    else:
        raise AssertionError("start() should have failed")
