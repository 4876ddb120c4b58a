"""Bad input and odd files (issue 12, item 6): one clear sentence, a non-zero exit, nothing
changed, bounded memory. Each runs the real command line."""

import os
import shutil
import socket
import sqlite3
import subprocess
import sys

import pytest
from click.testing import CliRunner
from conftest import ROOT, free_port
from importgolden import DATA

from gazeback.cli import cli

TEXT = b"this is my shopping list, not a database\n" * 10


def gazeback(*args, timeout=60, **kw):
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    return subprocess.run(
        [sys.executable, "-m", "gazeback", *map(str, args)],
        capture_output=True, text=True, timeout=timeout, env=env, **kw,
    )  # fmt: skip


def trail(tmp_path):
    path = tmp_path / "t.db"
    assert CliRunner().invoke(cli, ["migrate", str(path)]).exit_code == 0
    return path


def captures(path):
    with sqlite3.connect(path) as conn:
        return conn.execute("select count(*) from captures").fetchone()[0]


def clear(result, *words):
    out = result.output if hasattr(result, "output") else result.stdout + result.stderr
    code = result.exit_code if hasattr(result, "exit_code") else result.returncode
    assert code == 1, out
    assert "Traceback" not in out and not isinstance(
        getattr(result, "exception", None), RecursionError | sqlite3.Error | OSError
    ), out
    for w in words:
        assert w in out, out


@pytest.mark.parametrize("name", ["deep.har", "deep.json"])
def test_json_nested_100k_levels(tmp_path, name):
    db = trail(tmp_path)
    f = tmp_path / name
    if name.endswith(".har"):
        f.write_text('{"log": {"entries": [' + "[" * 100_000 + "]" * 100_000 + "]}}")
        why = "nested more than 100 deep"
    else:
        f.write_text('{"QH": ' + "[" * 100_000 + "]" * 100_000 + "}\n")
        why = "line 1 is not a JSON object"
    fmt = ["--format", "adguardhome"] if name.endswith(".json") else []
    result = CliRunner().invoke(cli, ["import", str(db), str(f), "-s", *fmt])
    clear(result, f"{f}: rejected, nothing imported", why)
    assert captures(db) == 0


@pytest.mark.parametrize("kind", ["fifo", "/dev/zero"])
def test_a_fifo_or_device_is_refused_not_waited_on(tmp_path, kind):
    db = trail(tmp_path)
    if kind == "fifo":
        path = tmp_path / "capture.har"
        os.mkfifo(path)
    else:
        path = kind
    result = gazeback("import", db, path, "-s", timeout=30)  # before: waited forever
    clear(result, f"{path} is not a regular file")
    assert captures(db) == 0


@pytest.mark.parametrize("command", ["import", "export", "demo"])
def test_a_text_file_named_db_is_not_touched(tmp_path, command):
    db = tmp_path / "corrupt.db"
    db.write_bytes(TEXT)
    db.chmod(0o644)
    args = {
        "import": ["import", str(db), str(DATA / "browse.har"), "-s"],
        "export": ["export", str(db), str(tmp_path / "share.db")],
        "demo": ["demo", "--db", str(db), "--scale", "10", "--no-serve"],
    }[command]
    result = CliRunner().invoke(cli, args)
    clear(result, f"{db} is not a SQLite database")
    assert db.read_bytes() == TEXT and db.stat().st_mode & 0o777 == 0o644
    assert sorted(p.name for p in tmp_path.iterdir()) == ["corrupt.db"]


def test_import_refuses_a_missing_database(tmp_path):
    db = tmp_path / "typo.db"
    result = CliRunner().invoke(cli, ["import", str(db), str(DATA / "browse.har"), "-s"])
    clear(result, f"{db} does not exist", "gazeback migrate")
    assert list(tmp_path.iterdir()) == []


def test_demo_in_a_missing_folder(tmp_path):
    db = tmp_path / "no-such-folder" / "demo.db"
    result = CliRunner().invoke(cli, ["demo", "--db", str(db), "--scale", "10", "--no-serve"])
    clear(result, f"the folder {db.parent} does not exist")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("unshare"), reason="root, unshare")
def test_export_to_a_folder_it_cannot_write(tmp_path, household):
    from smalldisk import SmallDisk

    readonly = SmallDisk(tmp_path / "ro", "1m", "ro")  # a read-only disk: root cannot write
    try:
        out = tmp_path / "ro" / "share.db"
        result = gazeback(
            "export", household[0], out, preexec_fn=readonly.enter, cwd=tmp_path
        )  # fmt: skip
    finally:
        readonly.close()
    clear(result, f"cannot write {out}", "is not writable")
    missing = CliRunner().invoke(cli, ["export", str(household[0]), str(tmp_path / "x" / "s.db")])
    clear(missing, f"the folder {tmp_path / 'x'} does not exist")


def test_run_refuses_a_dashboard_port_in_use(tmp_path):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        proxy_port = free_port()
        # before: the proxy came up and the banner showed a dashboard that never started
        result = gazeback(
            "run", "--db", tmp_path / "t.db", "--dashboard-port", port,
            "--listen-port", proxy_port, timeout=60,
        )  # fmt: skip
    clear(result, f"cannot listen on 127.0.0.1:{port}", "--dashboard-port")
    assert "Dashboard:" not in result.stdout and "recording to" not in result.stdout


def test_a_big_har_is_streamed_in_bounded_memory(tmp_path):
    har = tmp_path / "big.har"
    maker = [sys.executable, str(ROOT / "bench" / "har_memory.py"), "--make", str(har)]
    subprocess.run([*maker, "--mb", "200", "--entries", "20000"], check=True)
    sys.path.insert(0, str(ROOT / "bench"))
    from har_memory import measure

    peak_mb, _, _, out = measure(har)  # the importing process, where the file is parsed
    assert "20004 requests imported as har" in out, out
    assert peak_mb < 300, peak_mb  # before: the whole file parsed at once, 514 MB
