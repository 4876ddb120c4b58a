import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import sqlite_utils
from click.testing import CliRunner
from conftest import free_port, wait_for_port
from signin import printed_url

from gazeback.cli import cli


def free_ports() -> list[str]:
    """Not the documented defaults (8080, 8001): `run` checks its ports first, and another
    program (or test) on this machine may hold those."""
    return ["--listen-port", str(free_port()), "--dashboard-port", str(free_port())]


def test_run_refuses_the_lan_without_credentials(tmp_path):
    result = CliRunner().invoke(
        cli, ["run", "--db", str(tmp_path / "t.db"), "--listen-host", "0.0.0.0", *free_ports()]
    )
    assert result.exit_code == 1
    assert "refusing to listen on 0.0.0.0 without proxy credentials" in result.output


def test_dashboard_refuses_beyond_loopback(tmp_path):
    CliRunner().invoke(cli, ["migrate", str(tmp_path / "t.db")], catch_exceptions=False)
    result = CliRunner().invoke(cli, ["dashboard", str(tmp_path / "t.db"), "--host", "0.0.0.0"])
    assert result.exit_code == 1 and "refusing to serve your trail on 0.0.0.0" in result.output
    assert "GAZEBACK_DASHBOARD_PASSWORD" in result.output


def test_migrate_creates_a_private_database(tmp_path):
    path = tmp_path / "new" / "t.db"
    result = CliRunner().invoke(cli, ["migrate", str(path)], catch_exceptions=False)
    assert result.exit_code == 0 and "schema up to date" in result.output
    assert "requests" in sqlite_utils.Database(path).table_names()
    assert path.stat().st_mode & 0o777 == 0o600


def test_unusable_path_is_a_clear_error(tmp_path):
    (tmp_path / "file").write_text("")
    result = CliRunner().invoke(
        cli, ["run", "--db", str(tmp_path / "file" / "t.db"), *free_ports()]
    )
    assert result.exit_code == 1 and "cannot use" in result.output


def test_python_dash_m():
    out = subprocess.run(
        [sys.executable, "-m", "gazeback", "--help"], capture_output=True, text=True
    )
    assert out.returncode == 0 and "run" in out.stdout


def test_gazeback_run_records_and_serves_the_dashboard(tmp_path):
    proxy_port, dash_port = free_port(), free_port()
    db_path = tmp_path / "trail.db"
    log = tmp_path / "run.log"
    proc = subprocess.Popen(
        [sys.executable, "-m", "gazeback", "run", "--db", str(db_path),
         "--listen-port", str(proxy_port), "--dashboard-port", str(dash_port), "--device", "laptop",
         "--", "--set", f"confdir={tmp_path / 'conf'}"],
        stdout=open(log, "wb"), stderr=subprocess.STDOUT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )  # fmt: skip
    try:
        wait_for_port(proxy_port, proc=proc, log=log)
        wait_for_port(dash_port, proc=proc, log=log)
        banner = log.read_text()
        password = re.search(r"proxy user laptop  password (\S+)", banner).group(1)
        assert f"127.0.0.1:{proxy_port}" in banner and "mitm.it" in banner
        proxy = f"http://laptop:{password}@127.0.0.1:{proxy_port}"
        url = printed_url(banner)  # the dashboard's address, with this start's token
        assert url.startswith(f"http://127.0.0.1:{dash_port}/-/dashboards/trail?token=")
        key = {"Authorization": f"Bearer {url.rsplit('=', 1)[1]}"}
        # The dashboard itself, fetched through the proxy: one recorded request.
        r = httpx.get(url.split("?")[0], headers=key, proxy=proxy, timeout=20)
        assert r.status_code == 200 and "Your digital trail" in r.text
        deadline = time.monotonic() + 60  # the writer commits within a second, later if loaded
        while True:
            q = httpx.get(
                f"http://127.0.0.1:{dash_port}/trail.json",
                params={"sql": "select device, host from trail", "_shape": "array"},
                headers=key, timeout=20,
            ).json()  # fmt: skip
            if q or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        assert q == [{"device": "laptop", "host": "127.0.0.1"}]
    finally:
        proc.send_signal(signal.SIGINT)
        assert proc.wait(30) == 0, log.read_text()
    creds = db_path.with_name("trail.db.proxy-users.json")
    assert json.loads(creds.read_text()) == {"laptop": password}
    assert creds.stat().st_mode & 0o777 == 0o600
    cap = next(sqlite_utils.Database(db_path).query("select * from captures"))
    assert cap["ended_at"] and cap["requests_recorded"] == 1
    with socket.socket() as s:  # the dashboard stopped with the proxy
        assert s.connect_ex(("127.0.0.1", dash_port)) != 0


def test_loose_file_modes_are_fixed_at_start(tmp_path):
    path = tmp_path / "t.db"
    CliRunner().invoke(cli, ["migrate", str(path)], catch_exceptions=False)
    os.chmod(path, 0o644)
    key = path.with_name("t.db.key")
    key.write_bytes(b"k" * 32)
    os.chmod(key, 0o644)
    from gazeback.db.localfiles import load_or_create_key, prepare_db_path

    prepare_db_path(path)
    load_or_create_key(path)
    assert path.stat().st_mode & 0o777 == 0o600
    assert key.stat().st_mode & 0o777 == 0o600


def test_every_command_takes_the_database_as_db_and_the_old_form_still_works(tmp_path):
    db = tmp_path / "trail.db"
    assert CliRunner().invoke(cli, ["migrate", "--db", str(db)]).exit_code == 0
    new = CliRunner().invoke(cli, ["identity", "add", "--db", str(db), "email", "a@example.org"])
    assert new.exit_code == 0 and "deprecated" not in new.output
    old = CliRunner().invoke(cli, ["identity", "list", str(db)])
    assert old.exit_code == 0, old.output
    assert "deprecated" in old.output and f"--db {db}" in old.output and "a***@" in old.output
    # a Pi-hole database is a file to import, never taken for the trail
    imported = CliRunner().invoke(
        cli,
        ["import", "--db", str(db), str(Path(__file__).parent / "data" / "pihole-FTL.db"), "-s"],
    )
    assert imported.exit_code == 0 and "deprecated" not in imported.output, imported.output


def test_without_db_commands_use_the_default_trail(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    assert CliRunner().invoke(cli, ["identity", "add", "email", "a@example.org"]).exit_code == 0
    assert (tmp_path / "gazeback" / "trail.db").exists()
    typo = CliRunner().invoke(cli, ["identity", "list", "--db", str(tmp_path / "trial.db")])
    assert typo.exit_code == 1 and "does not exist" in typo.output
    assert not (tmp_path / "trial.db").exists()
