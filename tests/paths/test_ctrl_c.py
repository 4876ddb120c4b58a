"""Ctrl-C stops gazeback cleanly whenever it is pressed (issue #12).

A terminal sends SIGINT to the whole foreground process group: gazeback, its writer process and
its dashboard server. Pressed while the writer process was still starting, it used to kill the
writer ("cannot record ... exited at start", exit 1) or be lost (the proxy kept running).
"""

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import free_port

ROOT = Path(__file__).resolve().parent.parent.parent


def wait_listening(port: int, proc: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert proc.poll() is None, log.read_text()
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.01)
    raise AssertionError(log.read_text())


def press_ctrl_c(proc: subprocess.Popen, log: Path) -> int:
    os.killpg(proc.pid, signal.SIGINT)
    try:
        status = proc.wait(60)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        raise AssertionError("still running 60 s after Ctrl-C:\n" + log.read_text()) from None
    for _ in range(100):  # nothing it started outlives it
        try:
            os.killpg(proc.pid, 0)
        except ProcessLookupError:
            return status
        time.sleep(0.1)
    os.killpg(proc.pid, signal.SIGKILL)
    raise AssertionError("a process it started outlived it:\n" + log.read_text())


@pytest.mark.parametrize("delay", [0.0, 0.3, 2.0])
def test_ctrl_c_stops_gazeback_run_at_any_moment(tmp_path, delay):
    port, dash = free_port(), free_port()
    log = tmp_path / "run.log"
    env = {**os.environ, "HOME": str(tmp_path), "PYTHONUNBUFFERED": "1"}
    env.pop("XDG_DATA_HOME", None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "gazeback", "run", "--db", str(tmp_path / "d" / "trail.db"),
         "--listen-port", str(port), "--dashboard-port", str(dash)],
        stdout=open(log, "wb"), stderr=subprocess.STDOUT, env=env, start_new_session=True,
    )  # fmt: skip
    wait_listening(port, proc, log)
    time.sleep(delay)
    assert press_ctrl_c(proc, log) == 0, log.read_text()
    assert "exited at start" not in log.read_text()


@pytest.mark.parametrize("delay", [0.0, 0.3])
def test_ctrl_c_stops_stock_mitmdump_with_the_addon(tmp_path, delay):
    port = free_port()
    log = tmp_path / "mitmdump.log"
    proc = subprocess.Popen(
        [sys.executable, "-c", "from mitmproxy.tools.main import mitmdump; mitmdump()",
         "--listen-host", "127.0.0.1", "--listen-port", str(port),
         "--set", f"confdir={tmp_path / 'conf'}",
         "-s", str(ROOT / "addons" / "gazeback_addon.py"),
         "--set", f"gazeback_db={tmp_path / 'd' / 'trail.db'}"],
        stdout=open(log, "wb"), stderr=subprocess.STDOUT, start_new_session=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )  # fmt: skip
    wait_listening(port, proc, log)
    time.sleep(delay)
    assert press_ctrl_c(proc, log) == 0, log.read_text()


def test_ctrl_c_while_the_demo_is_written_ends_quietly(tmp_path):
    """Ctrl-C while `gazeback demo` writes its made-up trail: a plain sentence, exit 0,
    not click's "Aborted!" (#20)."""
    log = tmp_path / "demo.log"
    db = tmp_path / "demo.db"
    proc = subprocess.Popen(
        [sys.executable, "-m", "gazeback", "demo", "--db", str(db), "--no-serve",
         "--scale", "2000000"],
        stdout=open(log, "wb"), stderr=subprocess.STDOUT, start_new_session=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while "Writing" not in log.read_text() and time.monotonic() < deadline:
        assert proc.poll() is None, log.read_text()
        time.sleep(0.05)
    time.sleep(1.0)  # well into the writing
    assert press_ctrl_c(proc, log) == 0, log.read_text()
    out = log.read_text()
    assert "Aborted" not in out and "Traceback" not in out, out
    assert "Stopped." in out and "run `gazeback demo` again" in out, out
