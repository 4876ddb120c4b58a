from pathlib import Path

import pytest
import sqlite_utils
from mitmproxy import exceptions, hooks
from mitmproxy.test import taddons, tflow

from gazeback.capture.addon import TrailLogger

ROOT = Path(__file__).resolve().parent.parent


def rows(path, sql):
    return list(sqlite_utils.Database(path).query(sql))


def test_hook_names_are_real_mitmproxy_hooks():
    # A misspelled hook is silently never called: check every public method's name.
    public = {n for n in vars(TrailLogger) if not n.startswith("_")}
    assert public - {"load", "configure"} <= set(hooks.all_hooks)
    assert {"response", "error", "tls_failed_client", "tcp_end", "websocket_end"} <= public


def test_script_file_loads_in_stock_mitmproxy(tmp_path):
    with taddons.context() as tctx:
        script = tctx.script(str(ROOT / "addons" / "gazeback_addon.py"))
        kinds = [type(a).__name__ for a in script.addons]
        assert kinds == ["DeviceAuth", "LocalGuard", "TrailLogger"]


async def test_records_response_error_and_websocket(tmp_path):
    path = tmp_path / "d" / "trail.db"
    a = TrailLogger()
    with taddons.context(a) as tctx:
        tctx.configure(a, gazeback_db=str(path))
        a.running()
        ok = tflow.tflow(resp=True)
        ok.request.url = "https://www.google-analytics.com/g/collect?tid=G-1"
        a.response(ok)
        failed = tflow.tflow(err=True)
        failed.request.url = "http://gone.example/x"
        a.error(failed)
        ws = tflow.twebsocketflow()
        a.response(ws)  # the handshake alone is not recorded...
        a.websocket_end(ws)  # ...the socket is, once, with its counts
        a.done()
    got = rows(path, "select kind, host, status_code, error, websocket_messages from requests")
    assert got == [
        {"kind": "http", "host": "www.google-analytics.com", "status_code": 200, "error": None,
         "websocket_messages": None},
        {"kind": "error", "host": "gone.example", "status_code": None, "error": "error",
         "websocket_messages": None},
        {"kind": "websocket", "host": "example.com", "status_code": 101, "error": None,
         "websocket_messages": 3},
    ]  # fmt: skip


def test_unusable_database_path_is_an_option_error(tmp_path):
    (tmp_path / "file").write_text("")
    a = TrailLogger()
    with taddons.context(a) as tctx:
        with pytest.raises(exceptions.OptionsError, match="cannot record to"):
            tctx.configure(a, gazeback_db=str(tmp_path / "file" / "trail.db"))


async def test_exception_in_our_code_is_counted_and_logged(tmp_path, monkeypatch, caplog):
    from gazeback.capture import snapshot as capture

    def broken(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(capture, "snapshot_http", broken)
    a = TrailLogger()
    with taddons.context(a) as tctx:
        tctx.configure(a, gazeback_db=str(tmp_path / "t.db"))
        a.running()
        f = tflow.tflow(resp=True)
        before = (f.request.get_state(), f.response.get_state(), f.error)
        a.response(f)
        assert (f.request.get_state(), f.response.get_state(), f.error) == before  # untouched
        a.done()
    assert a.errors == 1
    assert "traffic unaffected" in caplog.text


def test_passthrough_expires_so_a_newly_installed_certificate_is_used(tmp_path):
    import time

    a = TrailLogger()
    with taddons.context(a) as tctx:
        tctx.configure(a, gazeback_passthrough_minutes=10)
        a._pinned["fresh.example"] = time.time()
        a._pinned["old.example"] = time.time() - 11 * 60
        assert a._passes_through("fresh.example")
        assert not a._passes_through("old.example")
        assert "old.example" not in a._pinned
        assert not a._passes_through("never.example")
