"""Test-only: the real `gazeback` command as a person runs it (a subprocess, HOME in a
temporary folder), with the test's stand-in for the internet loaded after gazeback through
the options after `--` (see hostmap.py)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import sqlite_utils
from conftest import free_port, hostmap_args


class Gazeback:
    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.home = tmp / "home"
        self.home.mkdir(exist_ok=True)
        self.db_path = tmp / "data" / "trail.db"
        self.env = {**os.environ, "HOME": str(self.home), "PYTHONUNBUFFERED": "1"}
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = tmp / "gazeback-run.log"
        self.port = 0

    @property
    def ca(self) -> Path:
        return self.home / ".mitmproxy" / "mitmproxy-ca-cert.pem"

    def cli(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        """`gazeback ARGS`, to completion."""
        return subprocess.run(
            [sys.executable, "-m", "gazeback", *args], capture_output=True, text=True,
            env=self.env, cwd=self.tmp, timeout=timeout,
        )  # fmt: skip

    def start(
        self, command: str, *args: str, upstream, wait: tuple[str, int] | None = None
    ) -> None:
        """`gazeback COMMAND ARGS -- <stand-in internet>` in the background, until the port
        it serves on answers."""
        passed = [*hostmap_args(upstream), "--set", "hostmap_at_connect=true",
                  "--set", f"ssl_verify_upstream_trusted_ca={upstream.ca_path}"]  # fmt: skip
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "gazeback", command, *args, "--", *passed],
            stdout=open(self.log, "wb"), stderr=subprocess.STDOUT, env=self.env, cwd=self.tmp,
        )  # fmt: skip
        host, port = wait or ("127.0.0.1", self.port)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"gazeback {command} exited early:\n{self.output()}")
            with socket.socket() as s:
                if s.connect_ex((host, port)) == 0:
                    return
            time.sleep(0.1)
        raise TimeoutError(f"nothing listening on {host}:{port}:\n{self.output()}")

    def run(self, *args: str, upstream, listen_host: str = "127.0.0.1") -> None:
        """`gazeback run --db ... --listen-port FREE ARGS`."""
        self.port = free_port()
        self.start("run", "--db", str(self.db_path), "--listen-port", str(self.port),
                   "--listen-host", listen_host, *args, upstream=upstream,
                   wait=(listen_host, self.port))  # fmt: skip

    def stop(self) -> int:
        """Ctrl-C, as a person stops it."""
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def rows(self, sql: str, params=()) -> list[dict]:
        db = sqlite_utils.Database(self.db_path)
        try:
            return list(db.query(sql, params))
        finally:
            db.close()

    def wait_rows(self, sql: str, count: int, timeout: float = 10.0) -> list[dict]:
        deadline = time.monotonic() + timeout
        while True:
            try:
                rows = self.rows(sql)
            except Exception:
                rows = []
            if len(rows) >= count or time.monotonic() > deadline:
                return rows
            time.sleep(0.2)
