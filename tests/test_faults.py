"""Faults while recording: the proxy killed, the disk full, the dashboard reading meanwhile.

Real mitmdump on loopback, real clients; bounded counts and times.
"""

import http.client
import os
import resource
import signal
import sqlite3
import threading
import time

from conftest import start_proxy


def wait_closed(db_path, timeout=30.0):
    """Wait until the writer has closed its capture row (it flushes everything first)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with sqlite3.connect(db_path) as conn:
                open_rows = conn.execute("select count(*) from captures where ended_at is null")
                if open_rows.fetchone()[0] == 0:
                    return
        except sqlite3.Error:
            pass
        time.sleep(0.2)
    raise TimeoutError("the writer did not finish")


def send(port, n, path="/r", stop=None):
    """n requests on one keep-alive connection; returns how many got a 200 (acknowledged)."""
    ok = 0
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    for i in range(n):
        if stop is not None and stop(i):
            break
        try:
            conn.request("GET", f"http://tracker.example{path}?i={i}")
            resp = conn.getresponse()
            resp.read()
            ok += resp.status == 200
        except (OSError, http.client.HTTPException):
            break
    conn.close()
    return ok


def test_sigkill_of_the_proxy_loses_at_most_one_percent(tmp_path, upstream):
    proxy = start_proxy(tmp_path, upstream)
    acknowledged = send(proxy.port, 2000, stop=lambda i: i == 1500 and kill(proxy))
    assert acknowledged == 1500
    wait_closed(proxy.db_path)  # the writer process flushes what it was handed, then closes
    with sqlite3.connect(proxy.db_path) as conn:
        assert conn.execute("pragma integrity_check").fetchone() == ("ok",)
        stored = conn.execute("select count(*) from requests").fetchone()[0]
    assert acknowledged * 0.99 <= stored <= acknowledged


def kill(proxy):
    os.kill(proxy.proc.pid, signal.SIGKILL)
    proxy.proc.wait()
    return False  # keep sending: the requests after the kill fail and are not acknowledged


def schema_bytes(tmp_path):
    """The largest file a new trail's schema makes, opened as the writer opens it."""
    import sqlite_utils

    from gazeback.db import migrations

    probe = tmp_path / "probe"
    probe.mkdir()
    db = sqlite_utils.Database(probe / "trail.db")
    db.enable_wal()
    db.execute("PRAGMA synchronous=NORMAL")
    migrations.apply(db)
    size = max(f.stat().st_size for f in probe.iterdir())
    db.close()
    return size


def small_disk(limit):
    def preexec():
        # Files may not grow past `limit` bytes, and writing past it fails (EFBIG) instead
        # of killing the process: a full disk, for this process tree only.
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return preexec


def test_disk_full_keeps_traffic_flowing_spills_and_recovers(tmp_path, upstream):
    # Start with room for the schema only, then fill up while recording: the limit is what
    # creating the schema writes (its largest file, the WAL) and 120 kB more.
    proxy = start_proxy(tmp_path, upstream, preexec_fn=small_disk(schema_bytes(tmp_path) + 120_000))
    acknowledged = send(proxy.port, 600, path="/" + "p" * 300)
    assert acknowledged == 600  # the person's traffic was never broken
    assert proxy.stop() == 0
    spill = proxy.db_path.with_name("trail.db.spill.jsonl")
    assert spill.exists() and spill.stat().st_mode & 0o777 == 0o600
    log = proxy.log.read_text()
    assert "could not write" in log and "kept in" in log  # loud, and says where

    # Space is back: the next start replays the spill file.
    proxy = start_proxy(tmp_path, upstream)
    assert proxy.stop() == 0
    assert not spill.exists()
    with sqlite3.connect(proxy.db_path) as conn:
        assert conn.execute("pragma integrity_check").fetchone() == ("ok",)
        assert conn.execute("select count(*) from requests").fetchone()[0] == 600


def wait_for_capture_row(db_path, timeout=60.0):
    deadline = time.monotonic() + timeout
    while True:
        try:
            conn = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
            try:
                if conn.execute("select count(*) from captures").fetchone()[0]:
                    return
            finally:
                conn.close()
        except sqlite3.Error:
            pass
        assert time.monotonic() < deadline, f"no capture row in {db_path} after {timeout} s"
        time.sleep(0.1)


def test_dashboard_reads_while_the_proxy_writes(tmp_path, upstream):
    from signin import signed_in

    from gazeback.dashboard.serve import make_datasette

    proxy = start_proxy(tmp_path, upstream)
    # The port opens before gazeback's writer has made the schema (the writer process starts in
    # mitmproxy's `running` hook, slower under load and on mitmproxy 12): this test is about
    # reads during writes, so it starts once the writer has opened its capture.
    wait_for_capture_row(proxy.db_path)
    errors: list[str] = []
    done = threading.Event()
    counts: list[int] = []

    def load():
        # ~300 requests/s for 4 s from three clients
        def client():
            conn = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=10)
            t_next = time.monotonic()
            for i in range(400):
                conn.request("GET", f"http://tracker.example/c?i={i}")
                r = conn.getresponse()
                r.read()
                if r.status != 200:
                    errors.append(f"proxy {r.status}")
                t_next += 0.01
                time.sleep(max(0.0, t_next - time.monotonic()))
            conn.close()

        threads = [threading.Thread(target=client) for _ in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        done.set()

    loader = threading.Thread(target=load)
    loader.start()
    import asyncio

    async def read():
        time.sleep(0.5)
        ds = await signed_in(make_datasette(proxy.db_path))
        while not done.is_set():
            for path in ("/-/dashboards/trail", "/trail.json?sql=select+count(*)+as+n+from+trail"):
                r = await ds.client.get(path)
                if r.status_code != 200 or "database is locked" in r.text:
                    errors.append(f"dashboard {r.status_code} {r.text[:200]}")
            r = await ds.client.get(
                "/trail.json?sql=select+count(*)+as+n+from+requests&_shape=array"
            )
            counts.append(r.json()[0]["n"])
            await asyncio.sleep(0.2)

    asyncio.run(read())
    loader.join()
    assert proxy.stop() == 0
    assert errors == []
    assert counts[-1] > counts[0]  # the dashboard saw rows arrive while reading
    assert "database is locked" not in proxy.log.read_text()
