"""Attack: reopen an open proxy to the LAN through the options `gazeback run` passes on to
mitmdump after `--` (#13, item 3). Every mode mitmdump would start is read the way mitmdump
reads its arguments and config file; anything beyond loopback that nobody authenticates is
refused before a file is created or a port opened."""

import pytest
from click.testing import CliRunner
from conftest import free_port

from gazeback.capture.listening import listeners
from gazeback.cli import cli


@pytest.fixture
def started(monkeypatch):
    calls = []
    monkeypatch.setattr("mitmproxy.tools.main.mitmdump", lambda args: calls.append(args))
    return calls


def run(tmp_path, *args):
    db = tmp_path / "data" / "trail.db"
    port = ["--listen-port", str(free_port())]  # not 8080: another program may hold it
    return CliRunner().invoke(cli, ["run", "--db", str(db), "--no-dashboard", *port, *args]), db


@pytest.mark.parametrize(
    "bypass,where",
    [
        (
            ["--", "--listen-host", "0.0.0.0"],
            "refusing to listen on 0.0.0.0 without proxy credentials",
        ),
        (["--", "--listen-h", "::"], "refusing to listen on :: without proxy credentials"),
        (
            ["--", "--mode", "socks5@0.0.0.0:1080"],
            "refusing to listen on 0.0.0.0:1080 (socks5 mode",
        ),
        (["--", "--mode", "socks5"], None),  # inherits --listen-host 127.0.0.1: allowed
        (["--", "--mode", "socks5@:1080"], "refusing to listen on 0.0.0.0 (every interface):1080"),
        (["--", "--mode", "dns@0.0.0.0:5353"], "(dns mode"),
        (["--", "--mode", "reverse:http://127.0.0.1:8001@0.0.0.0:8081"], "(reverse mode"),
        (["--", "--mode", "transparent@0.0.0.0:8082"], "(transparent mode"),
        (["--", "--mode", "regular@0.0.0.0:8083"], "without proxy credentials"),
    ],
)
def test_pass_through_options_cannot_open_the_proxy_to_the_lan(tmp_path, started, bypass, where):
    result, db = run(tmp_path, *bypass)
    if where is None:
        assert result.exit_code == 0, result.output
        assert started
        return
    assert result.exit_code == 1, result.output
    assert where in result.output
    assert not started and not db.exists()  # refused before anything was created


def test_socks5_on_the_lan_is_refused_even_with_device_credentials(tmp_path, started):
    # the credential is asked by the regular proxy only: a SOCKS5 server would be open
    result, _ = run(
        tmp_path, "--listen-host", "0.0.0.0", "--device", "phone", "--", "--mode", "socks5"
    )
    assert result.exit_code == 1 and "(socks5 mode 'socks5')" in result.output
    assert not started


def test_config_yaml_in_the_confdir_cannot_open_the_proxy(tmp_path, started):
    confdir = tmp_path / "conf"
    confdir.mkdir()
    (confdir / "config.yaml").write_text("mode:\n  - socks5@0.0.0.0:1080\n")
    result, _ = run(tmp_path, "--", "--set", f"confdir={confdir}")
    assert result.exit_code == 1 and "0.0.0.0:1080 (socks5 mode" in result.output
    assert not started


def test_the_lan_regular_proxy_with_credentials_and_loopback_modes_still_start(tmp_path, started):
    result, _ = run(tmp_path, "--listen-host", "0.0.0.0", "--device", "phone")
    assert result.exit_code == 0, result.output
    result, _ = run(tmp_path, "--", "--mode", "socks5@127.0.0.1:1080", "--mode", "regular")
    assert result.exit_code == 0, result.output
    assert len(started) == 2


def test_unreadable_pass_through_options_are_one_clear_sentence(tmp_path, started):
    result, db = run(tmp_path, "--", "--no-such-option")
    assert result.exit_code == 1
    assert "mitmproxy does not accept the options after --: unrecognized arguments" in result.output
    assert "Traceback" not in result.output and not started and not db.exists()


def test_listeners_reads_arguments_as_mitmdump_does():
    # the last --listen-host wins; a --set listen_host is overridden by --listen-host, as in
    # mitmdump; a mode without an address takes the global one
    got = listeners(["--listen-host", "127.0.0.1", "--set", "listen_host=0.0.0.0",
                     "--mode", "regular", "--mode", "wireguard:/k.json@51820"])  # fmt: skip
    assert [(x.kind, x.host, x.port) for x in got] == [
        ("regular", "127.0.0.1", 8080), ("wireguard", "127.0.0.1", 51820),
    ]  # fmt: skip
    got = listeners(["--listen-host", "127.0.0.1", "-s", "/does/not/exist.py"])  # not loaded
    assert [(x.kind, x.host, x.is_local) for x in got] == [("regular", "127.0.0.1", True)]
