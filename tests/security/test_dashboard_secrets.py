"""What the person themselves (or a page run in their dashboard) can get out of the dashboard
and the files beside the trail (issue 13, item 8)."""

from __future__ import annotations

import os
import sqlite3
import stat

import pytest
import sqlite_utils
from click.testing import CliRunner
from signin import signed_in

from gazeback.dashboard import serve
from gazeback.db import migrations
from gazeback.db.localfiles import onboarding_path, prepare_db_path
from gazeback.devices import registry as devices
from gazeback.devices import wireguard


@pytest.fixture
def with_device(tmp_path):
    path = tmp_path / "trail.db"
    db = sqlite_utils.Database(path)
    migrations.apply(db)
    setup = devices.add(db, path, "phone", endpoint_host="192.168.1.20")
    db.close()
    return path, setup


async def sql(ds, query):
    return await ds.client.get("/trail.json", params={"sql": query, "_shape": "array"})


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
async def test_fts3_tokenizer_gives_no_memory_address(tmp_path):
    path = tmp_path / "trail.db"
    migrations.apply(sqlite_utils.Database(path))
    assert sqlite3.connect(":memory:").execute("select fts3_tokenizer('simple')").fetchone()[0]
    ds = await signed_in(serve.make_datasette(path))
    for query in ("select fts3_tokenizer('simple')", "select hex(fts3_tokenizer('porter'))",
                  "select fts3_tokenizer('simple', x'00')"):  # fmt: skip
        r = await sql(ds, query)
        assert r.status_code == 400 and "raised exception" in r.text, query


async def test_no_table_gives_a_wireguard_private_key(with_device):
    path, setup = with_device
    keys = wireguard.read_keys(setup.keys_path)
    ds = await signed_in(serve.make_datasette(path))
    tables = [r["name"] for r in (await sql(ds, "select name from sqlite_master where type in ('table', 'view')")).json()]  # fmt: skip
    assert "device_setups" in tables
    for table in tables:
        r = await sql(ds, f'select * from "{table}"')
        assert r.status_code == 200, table
        for secret in (keys["client_key"], keys["server_key"], "<svg", "<path"):
            assert secret not in r.text, (table, secret)
    raw = b"".join(p.read_bytes() for p in path.parent.glob("trail.db*") if p.is_file()
                   and not p.name.endswith((".json", ".htpasswd")))  # fmt: skip
    assert b"<svg" not in raw and keys["client_key"].encode() not in raw
    qr = onboarding_path(path)  # the QR codes: beside the db, owner-only, behind the token
    assert stat.S_IMODE(qr.stat().st_mode) == 0o600 and "<svg" in qr.read_text()
    assert (await ds.client.get(f"/-/gazeback/qr/{setup.device_id}.svg")).status_code == 200


def test_qr_codes_stored_by_an_older_version_are_wiped_from_the_database(tmp_path):
    path = tmp_path / "trail.db"
    db = sqlite_utils.Database(path)
    migrations.apply(db)
    db.execute("alter table device_setups add column onboarding_qr_svg text")  # as it was
    db["devices"].insert({"id": 1, "key": "user:phone", "label": "phone"})
    marker = "<svg>PRIVATEKEYMARKER" + "x" * 2000 + "</svg>"
    db["device_setups"].insert({"device_id": 1, "proxy_user": "phone", "wireguard_port": 51820,
                                "added_at": "2026-01-01", "onboarding_qr_svg": marker})  # fmt: skip
    db.execute("delete from _sqlite_migrations where name = ?", ["m026_device_qr_codes_out_of_the_database"])  # fmt: skip
    db.close()
    db = sqlite_utils.Database(path)
    migrations.apply(db)
    assert "onboarding_qr_svg" not in db["device_setups"].columns_dict
    db.close()
    assert b"PRIVATEKEYMARKER" not in path.read_bytes()


def test_a_loose_wireguard_key_file_is_made_private_at_start(with_device):
    path, setup = with_device
    loose = [setup.keys_path, onboarding_path(path), serve.credentials_path(path),
             path.with_name(path.name + ".key")]  # fmt: skip
    loose[-1].write_bytes(os.urandom(32))
    for p in loose:
        os.chmod(p, 0o644)
    os.chmod(wireguard.keys_dir(path), 0o755)
    prepare_db_path(path)  # what `gazeback run` and the capture addon do first
    for p in loose:
        assert stat.S_IMODE(p.stat().st_mode) == 0o600, p
    assert stat.S_IMODE(wireguard.keys_dir(path).stat().st_mode) == 0o700


def test_the_demo_database_is_private(tmp_path):
    from gazeback.cli.demo import demo

    old = os.umask(0o002)  # a permissive umask, as on many desktops
    try:
        r = CliRunner().invoke(demo, ["--db", str(tmp_path / "demo.db"), "--scale", "100",
                                      "--no-serve"])  # fmt: skip
    finally:
        os.umask(old)
    assert r.exit_code == 0, r.output
    made = [p for p in tmp_path.iterdir() if p.name.startswith("demo.db")]
    assert made
    for p in made:
        assert stat.S_IMODE(p.stat().st_mode) == 0o600, p


@pytest.mark.parametrize("fmt", ["sqlite", "csv", "parquet"])
def test_exports_are_private(household, tmp_path, fmt):
    from gazeback.cli.export import export

    out = tmp_path / f"share-{fmt}"
    old = os.umask(0o000)  # the worst umask: files would be 0666
    try:
        r = CliRunner().invoke(export, [str(household[0]), str(out), "--format", fmt])
    finally:
        os.umask(old)
    assert r.exit_code == 0, r.output
    made = [p for p in tmp_path.rglob("*")]
    assert made
    for p in made:
        assert stat.S_IMODE(p.stat().st_mode) == (0o700 if p.is_dir() else 0o600), p


def test_a_merged_pool_is_private(household, tmp_path):
    from gazeback.cli.export import export, merge

    shares = [str(tmp_path / "in" / f"share{i}.db") for i in range(2)]
    (tmp_path / "in").mkdir()
    (tmp_path / "out").mkdir()
    for share in shares:
        assert CliRunner().invoke(export, [str(household[0]), share]).exit_code == 0
    old = os.umask(0o000)
    try:
        r = CliRunner().invoke(merge, [str(tmp_path / "out" / "pool.db"), *shares, "-k", "2"])
    finally:
        os.umask(old)
    assert r.exit_code == 0, r.output
    made = list((tmp_path / "out").rglob("*"))
    assert len(made) > 2
    for p in made:
        assert stat.S_IMODE(p.stat().st_mode) == (0o700 if p.is_dir() else 0o600), p
