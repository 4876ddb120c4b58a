import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import sqlite_utils

from gazeback.db import migrations

ROOT = Path(__file__).resolve().parent.parent
HELPERS = Path(__file__).resolve().parent / "helpers"
sys.path.insert(0, str(HELPERS))


def make_obs(**kw):
    """An Observation as capture hands it on: a plain HTTPS GET, fields overridable."""
    from gazeback.models import DeviceKey, Observation

    base = dict(
        flow_id="f1", kind="http", started_at="2026-11-27T06:50:24.123Z",
        device=DeviceKey("ip:192.168.1.23", "phone"), method="GET", scheme="https",
        host="example.org", port=443, path="/", query=(), request_headers=(),
        request_body=None, content_type=None, user_agent=None, referer=None, origin=None,
        sec_fetch_site=None, status_code=200, request_bytes=0, response_bytes=0,
        duration_ms=None, is_decrypted=True, tls_sni=None, server_ip=None, error=None,
    )  # fmt: skip
    base.update(kw)
    return Observation(**base)


@pytest.fixture
def db():
    database = sqlite_utils.Database(memory=True)
    migrations.apply(database)
    return database


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port: int, timeout: float = 20.0, proc=None, log: Path | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited early:\n{log.read_text() if log else ''}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listening on {port}:\n{log.read_text() if log else ''}")


@pytest.fixture(scope="session")
def upstream(tmp_path_factory):
    """A local HTTPS + HTTP server that answers for any host name (see helpers/upstream.py)."""
    from upstream import start_upstream

    server = start_upstream(tmp_path_factory.mktemp("upstream"))
    yield server
    server.stop()


class Proxy:
    def __init__(self, proc, port, confdir, db_path, log):
        self.proc, self.port, self.confdir, self.db_path, self.log = (
            proc, port, confdir, db_path, log,
        )  # fmt: skip

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ca(self) -> Path:
        return self.confdir / "mitmproxy-ca-cert.pem"

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode

    def rows(self, sql: str, params=()):
        database = sqlite_utils.Database(self.db_path)
        try:
            return list(database.query(sql, params))
        finally:
            database.close()


def hostmap_args(upstream) -> list[str]:
    return [
        "-s", str(HELPERS / "hostmap.py"),
        "--set", f"hostmap_port={upstream.https_port}",
        "--set", f"hostmap_http_port={upstream.http_port}",
    ]  # fmt: skip


def start_proxy(
    tmp_path: Path,
    upstream,
    *extra: str,
    scripts=("gazeback_addon",),
    preexec_fn=None,
    hostmap_last=False,
) -> Proxy:
    """A real mitmdump with gazeback, sending every server connection to the local upstream."""
    port = free_port()
    confdir = tmp_path / "mitmconf"
    db_path = tmp_path / "data" / "trail.db"
    log = tmp_path / "mitmdump.log"
    args = [
        sys.executable, "-c", "from mitmproxy.tools.main import mitmdump; mitmdump()",
        "--listen-host", "127.0.0.1", "--listen-port", str(port),
        "--set", f"confdir={confdir}",
        "--set", f"ssl_verify_upstream_trusted_ca={upstream.ca_path}",
    ]  # fmt: skip
    if not hostmap_last:
        args += hostmap_args(upstream)
    for script in scripts:
        path = ROOT / "addons" / f"{script}.py" if script == "gazeback_addon" else HELPERS / script
        args += ["-s", str(path)]
    if hostmap_last:
        # after gazeback, as `gazeback run -- -s ...` loads it: gazeback's SSRF guard sees
        # the addresses devices asked for, then the stand-in internet answers them
        args += hostmap_args(upstream)
    args += ["--set", f"gazeback_db={db_path}", *extra]
    proc = subprocess.Popen(
        args, stdout=open(log, "wb"), stderr=subprocess.STDOUT, cwd=tmp_path,
        env={**os.environ, "PYTHONUNBUFFERED": "1"}, preexec_fn=preexec_fn,
    )  # fmt: skip
    wait_for_port(port, proc=proc, log=log)
    return Proxy(proc, port, confdir, db_path, log)


@pytest.fixture
def proxy(tmp_path, upstream):
    p = start_proxy(tmp_path, upstream)
    yield p
    p.stop()


@pytest.fixture(scope="session")
def household(tmp_path_factory):
    """A synthetic household trail with 20 seeded identities of every type (issue 7)."""
    from household import make_household

    path = tmp_path_factory.mktemp("household") / "trail.db"
    return path, make_household(path)


@pytest.fixture(scope="session")
def owner_secret(household):
    from gazeback.cli.export import owner_canaries

    db = sqlite_utils.Database(household[0])
    return owner_canaries(db, household[0])


@pytest.fixture(scope="session")
def exported(household, tmp_path_factory):
    """The household exported once through the CLI (runs G1-G8 before writing)."""
    from click.testing import CliRunner

    from gazeback.cli.export import export

    out = tmp_path_factory.mktemp("export") / "share.db"
    result = CliRunner().invoke(
        export, ["--db", str(household[0]), str(out)], catch_exceptions=False
    )
    assert result.exit_code == 0, result.output
    return out


@pytest.fixture(autouse=True)
def _private_data_home(tmp_path_factory, monkeypatch):
    """No test reads or writes the real default trail (~/.local/share/gazeback): commands
    without --db use a data folder of the test session's own."""
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path_factory.getbasetemp() / "xdg-data"))
