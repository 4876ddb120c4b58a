"""Attacks by another account on the same computer (issue 13, item 1).

The dashboard listens on 127.0.0.1, which every local account can reach. Each test starts
the dashboard with the real command, as a person does, reads the address it printed, and
tries to read the trail as uid 65534 (``setpriv``), as that other account would.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

import pytest
import sqlite_utils
from conftest import ROOT, free_port, wait_for_port
from signin import browser_opener, printed_url

from gazeback.db import migrations

NOBODY = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
as_another_account = pytest.mark.skipif(
    os.geteuid() != 0 or not shutil.which("setpriv") or not shutil.which("curl"),
    reason="needs root (to become uid 65534 with setpriv) and curl",
)


@pytest.fixture
def trail(tmp_path):
    path = tmp_path / "trail.db"
    db = sqlite_utils.Database(path)
    migrations.apply(db)
    db.table("devices").insert({"key": "ip:10.9.8.7", "label": "Alex's phone"})
    db.close()
    return path


def start(args, port, tmp_path):
    """Run ``gazeback ARGS`` as the person does; return it and the address it printed."""
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "gazeback", *args], stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True, env=env, cwd=tmp_path, start_new_session=True,
    )  # fmt: skip
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(iter(proc.stdout.readline, "")))
    reader.daemon = True
    reader.start()  # a command that never prints the address must not hang the test
    deadline = time.monotonic() + 60
    while "?token=" not in "".join(lines) and time.monotonic() < deadline:
        if proc.poll() is not None:
            break
        time.sleep(0.1)
    seen = "".join(lines)
    if "?token=" not in seen:
        stop(proc)
        raise AssertionError(f"no address with a token printed:\n{seen}")
    wait_for_port(port, timeout=30)
    return proc, printed_url(seen)


def stop(proc):
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C, as the person stops it
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)


def curl_as_nobody(url, *extra):
    """(HTTP status, body) of ``curl URL`` run as uid 65534."""
    out = subprocess.run(
        [*NOBODY, "curl", "-s", "--noproxy", "*", "-o", "-", "-w", "\n%{http_code}", *extra, url],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    body, _, status = out.stdout.rpartition("\n")
    return int(status), body


def base_of(url):
    return url.split("/-/", 1)[0]


@as_another_account
def test_another_account_cannot_read_the_trail_without_the_token(trail, tmp_path):
    port = free_port()
    proc, url = start(["dashboard", str(trail), "--port", str(port)], port, tmp_path)
    try:
        base = base_of(url)
        sql = "/trail.json?sql=select+label+from+devices&_shape=array"
        for path in (sql, "/", "/-/dashboards/trail", "/trail/requests", "/-/versions.json",
                     "/-/static/app.css", "/gazeback-static/gazeback.css"):  # fmt: skip
            status, body = curl_as_nobody(base + path)
            assert status == 401, path
            assert "Alex" not in body and "needs its key" in body, path
        # the person's address, opened by the same account with curl: in
        token = url.rsplit("=", 1)[1]
        status, body = curl_as_nobody(f"{base}{sql}&token={token}", "-L", "-b", "")
        assert status == 200 and "Alex's phone" in body
    finally:
        stop(proc)


@as_another_account
def test_a_wrong_token_is_refused(trail, tmp_path):
    port = free_port()
    proc, url = start(["dashboard", str(trail), "--port", str(port)], port, tmp_path)
    try:
        base, token = base_of(url), url.rsplit("=", 1)[1]
        wrong = token[:-1] + ("A" if token[-1] != "A" else "B")
        sql = "/trail.json?sql=select+label+from+devices"
        for extra in (
            ["-L", "-b", ""],
            ["-H", f"Cookie: gazeback_{port}={wrong}"],
            ["-H", f"Authorization: Bearer {wrong}"],
            ["-H", f"Cookie: gazeback_{port}="],
        ):
            status, body = curl_as_nobody(f"{base}{sql}&token={wrong}", *extra)
            assert status == 401 and "Alex" not in body, extra
        status, _ = curl_as_nobody(f"{base}{sql}", "-H", f"Authorization: Bearer {token}")
        assert status == 200
    finally:
        stop(proc)


@as_another_account
def test_another_account_cannot_find_the_token_in_the_process_list(trail, tmp_path):
    port = free_port()
    proc, url = start(["dashboard", str(trail), "--port", str(port)], port, tmp_path)
    try:
        token = url.rsplit("=", 1)[1]
        ps = subprocess.run([*NOBODY, "ps", "-eww", "-o", "args"], capture_output=True, text=True)
        assert "datasette" in ps.stdout and token not in ps.stdout
        children = subprocess.run(["pgrep", "-f", f"datasette serve {trail}"],
                                  capture_output=True, text=True).stdout.split()  # fmt: skip
        assert children
        for pid in children:
            env = subprocess.run([*NOBODY, "cat", f"/proc/{pid}/environ"], capture_output=True)
            assert env.returncode != 0 and token.encode() not in env.stdout
        for side in tmp_path.rglob("*"):  # nor in any file it wrote
            assert not side.is_file() or token.encode() not in side.read_bytes(), side
    finally:
        stop(proc)


@pytest.mark.parametrize("command", ["run", "demo"])
def test_every_command_that_starts_the_dashboard_requires_its_printed_token(
    command, trail, tmp_path
):
    port = free_port()
    if command == "run":
        args = ["run", "--db", str(trail), "--listen-port", str(free_port()),
                "--dashboard-port", str(port)]  # fmt: skip
    else:
        args = ["demo", "--db", str(tmp_path / "demo.db"), "--scale", "200", "--port", str(port)]
    proc, url = start(args, port, tmp_path)
    try:
        base = base_of(url)
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(base + "/-/dashboards/trail", timeout=10)
        assert refused.value.code == 401
        opener = browser_opener()  # keeps the cookie, follows the redirect
        with opener.open(url, timeout=30) as r:
            assert r.status == 200 and "token=" not in r.url
        with opener.open(base + "/-/dashboards/trail", timeout=30) as r:
            assert r.status == 200
    finally:
        stop(proc)


def test_no_token_needs_the_flag_and_says_so_loudly(trail, tmp_path):
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "gazeback", "dashboard", str(trail), "--port", str(port),
         "--no-token"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
        start_new_session=True,
    )  # fmt: skip
    try:
        wait_for_port(port, timeout=30, proc=proc)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/-/versions.json", timeout=10) as r:
            assert r.status == 200
    finally:
        stop(proc)
    out, err = proc.communicate()
    assert "?token=" not in out and "WARNING: --no-token: ANY account" in err
