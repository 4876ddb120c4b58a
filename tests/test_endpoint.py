"""No QR code with a placeholder address (issue 12, item 4).

`device add` and `workshop` run in a network namespace with only loopback (`unshare -n`),
where this computer has no address a phone could reach: they refuse, say how to pass
--endpoint, and change nothing.
"""

import os
import shutil
import subprocess
import sys

import pytest
from conftest import ROOT, free_port

from gazeback.dashboard import serve

pytestmark = pytest.mark.skipif(
    shutil.which("unshare") is None or os.geteuid() != 0, reason="needs root and unshare"
)


def offline(*args, cwd):
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "HOME": str(cwd)}
    env.pop("XDG_DATA_HOME", None)
    return subprocess.run(
        ["unshare", "-n", sys.executable, "-m", "gazeback", *args],
        capture_output=True, text=True, timeout=120, env=env, cwd=cwd,
    )  # fmt: skip


def test_device_add_refuses_a_qr_code_without_an_address(tmp_path):
    db = tmp_path / "data" / "trail.db"
    proc = offline("device", "add", "phone", "--db", str(db), cwd=tmp_path)
    out = proc.stdout + proc.stderr
    assert "<this computer" not in out and "█" not in out and "Endpoint" not in out, out
    assert proc.returncode == 1, out
    assert "--endpoint ADDRESS" in out and "Nothing was added" in out, out
    assert "Traceback" not in out
    assert not db.exists() and not (tmp_path / "data").exists()


def test_device_add_with_endpoint_still_works_offline(tmp_path):
    db = tmp_path / "trail.db"
    proc = offline(
        "device", "add", "phone", "--db", str(db), "--endpoint", "192.0.2.7", cwd=tmp_path
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Endpoint = 192.0.2.7:" in proc.stdout


def test_workshop_refuses_seat_cards_without_an_address(tmp_path):
    folder = tmp_path / "room"
    proc = offline(
        "workshop", "--hours", "0.0008", "--seats", "2", "--dir", str(folder),
        "--page-host", "127.0.0.1", "--page-port", str(free_port()),
        "--proxy-port", str(free_port()), "--wireguard-host", "127.0.0.1", cwd=tmp_path,
    )  # fmt: skip
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1, out
    assert "--endpoint ADDRESS" in out and "Seat cards" not in out, out
    assert not folder.exists()


def test_the_message_lists_the_addresses_the_machine_has():
    found = [("lo", "127.0.0.1"), ("eth0", "fe80::1"), ("lo", "::1")]
    with pytest.raises(ValueError) as e:
        serve.require_endpoint(None, found)
    assert "127.0.0.1 (lo), fe80::1 (eth0), ::1 (lo)" in str(e.value)
    assert serve.lan_address([("lo", "127.0.0.1"), ("eth0", "192.0.2.9")]) == "192.0.2.9"
    assert serve.require_endpoint("10.1.2.3", found) == "10.1.2.3"
