import base64
import hashlib
import shutil
import sqlite3
from urllib.parse import quote

import pytest
from click.testing import CliRunner

from gazeback.cli.export import verify_export
from gazeback.knowledge.classify import load_index
from gazeback.share.schema import Allowlist
from gazeback.share.verify import verify


@pytest.fixture(scope="module")
def allow():
    return Allowlist(load_index())


def _failed(path, allow, secret=None):
    return {c.guarantee: c.reason for c in verify(path, allow, secret) if not c.ok}


def _copy(exported, tmp_path):
    out = tmp_path / "copy.db"
    shutil.copy(exported, out)
    return out


def _tamper(path, sql, params=()):
    conn = sqlite3.connect(path)
    conn.execute(sql, params)
    conn.commit()
    conn.execute("vacuum")  # keep G7 quiet: the failure must come from the named guarantee
    conn.close()


CANARY_FORMS = {
    "plain": lambda v: v,
    "upper": lambda v: v.upper(),
    "sha256": lambda v: hashlib.sha256(v.lower().encode()).hexdigest(),
    "md5-HEX": lambda v: hashlib.md5(v.lower().encode()).hexdigest().upper(),
    "base64": lambda v: base64.b64encode(b"{'u':'" + v.encode() + b"'}").decode(),
    "pct": lambda v: quote(v, safe=""),
}


@pytest.mark.parametrize("kind,index", [("email", 0), ("android_id", 5), ("mac", 9), ("ad_id", 19)])
@pytest.mark.parametrize("form", sorted(CANARY_FORMS))
def test_one_inserted_identity_fails_g1(
    exported, household, owner_secret, allow, tmp_path, kind, index, form
):
    value = CANARY_FORMS[form](household[1][kind][index])
    copy = _copy(exported, tmp_path)
    _tamper(copy, "update readme set body = body || ? where rowid = 1", [" " + value])
    failed = _failed(copy, allow, owner_secret)
    assert "G1" in failed and "hit" in failed["G1"]
    assert value not in failed["G1"]  # reasons name identities by id, never by value


def test_canary_in_utf16_is_found(exported, household, owner_secret, allow, tmp_path):
    copy = _copy(exported, tmp_path)
    data = copy.read_bytes() + household[1]["email"][3].encode("utf-16-le")
    copy.write_bytes(data)
    assert "G1" in _failed(copy, allow, owner_secret)


def test_clean_export_passes_owner_and_recipient_views(exported, owner_secret, allow):
    assert _failed(exported, allow, owner_secret) == {}
    assert _failed(exported, allow) == {}


@pytest.mark.parametrize(
    "sql,guarantee",
    [
        ("alter table devices add column label text", "G2"),
        ("create table notes (body text)", "G2"),
        ("create view v as select 1", "G2"),
        ("update leaks set key_name = 'jane_secret_field' where rowid = 1", "G2"),
        ("update leaks set transform_chain = 'plain>rot13' where rowid = 1", "G2"),
        ("update devices set device_class = 'toaster' where rowid = 1", "G2"),
        ("update readme set body = 'trust me' where rowid = 1", "G2"),
        ("update export_meta set schema_version = 99", "G2"),
        ("update traffic set device_pid = 'ffffffffffffffff' where rowid = 1", "G3"),
        (
            "update devices set device_pid = (select device_pid from devices where rowid = 2) where rowid = 1",
            "G3",
        ),
        ("insert into id_sharing values ('(other)', 'doubleclick.net', 'email', 1)", "G4"),
        (
            "update export_lists set sha256 = lower(hex(randomblob(32))) where name = 'gazeback-key-names'",
            "G4",
        ),
        ("update traffic set bucket_start = bucket_start + 60 where rowid = 1", "G5"),
        ("update traffic set requests = 1 where rowid = 1", "G5"),
        ("update leaks set count = 1 where rowid = 1", "G5"),
        ("update export_meta set time_bucket_s = 60", "G5"),
        ("update traffic set dest_domain = 'nytimes.com' where rowid = 1", "G6"),
        ("update traffic set dest_role = 'ads' where dest_domain = '(other)'", "G6"),
    ],
)
def test_tampered_export_fails_the_named_guarantee(exported, allow, tmp_path, sql, guarantee):
    copy = _copy(exported, tmp_path)
    _tamper(copy, sql)
    failed = _failed(copy, allow)
    assert guarantee in failed, failed


def test_unkeyed_pseudonym_fails_g3_in_owner_view(exported, owner_secret, allow, tmp_path):
    copy = _copy(exported, tmp_path)
    fake = hashlib.sha256(b"device:user:phone").hexdigest()[:16]
    conn = sqlite3.connect(copy)
    old = conn.execute("select device_pid from devices limit 1").fetchone()[0]
    for table in ("devices", "traffic", "leaks"):
        conn.execute(f"update {table} set device_pid = ? where device_pid = ?", [fake, old])
    conn.commit()
    conn.execute("vacuum")
    conn.close()
    assert "unkeyed" in _failed(copy, allow, owner_secret)["G3"]


def test_deleted_rows_leave_free_pages_g7(exported, allow, tmp_path):
    copy = _copy(exported, tmp_path)
    conn = sqlite3.connect(copy)
    conn.execute("pragma secure_delete = off")
    conn.execute("delete from leaks")
    conn.commit()
    conn.close()
    assert "free pages" in _failed(copy, allow)["G7"]


def test_sidecar_fails_g7(exported, allow, tmp_path):
    copy = _copy(exported, tmp_path)
    copy.with_name(copy.name + "-wal").write_bytes(b"")
    assert "sidecar" in _failed(copy, allow)["G7"]


@pytest.mark.parametrize("content", [b"not a database at all", b"PK\x03\x04zipfile", b""])
def test_foreign_file_fails_with_reason(allow, tmp_path, content):
    path = tmp_path / "foreign.db"
    path.write_bytes(content)
    failed = _failed(path, allow)
    assert set(failed) == {"G2", "G3", "G4", "G5", "G6", "G7", "G8"}
    assert "not a SQLite database" in failed["G2"]


def test_foreign_sqlite_database_fails_g2(household, allow):
    assert "not a gazeback export" in _failed(household[0], allow)["G2"]


def test_unknown_csv_file_fails_g2(exported, allow, tmp_path):
    folder = tmp_path / "flat"
    folder.mkdir()
    conn = sqlite3.connect(exported)
    import csv

    for (name,) in conn.execute("select name from sqlite_master where type = 'table'"):
        cur = conn.execute(f"select * from [{name}]")
        with open(folder / f"{name}.csv", "w", newline="") as f:
            w = csv.writer(f)
            w.writerow([d[0] for d in cur.description])
            w.writerows(cur)
    (folder / "datasheet.md").write_text("x")
    assert _failed(folder, allow) == {}
    (folder / "browsing.csv").write_text("url\nhttps://example.org/\n")
    assert "browsing" in _failed(folder, allow)["G2"]


def test_cli_prints_one_line_per_guarantee_and_exit_code(exported, tmp_path):
    result = CliRunner().invoke(verify_export, [str(exported)])
    assert result.exit_code == 0
    assert len(result.output.splitlines()) == 8
    bad = tmp_path / "bad.db"
    bad.write_bytes(b"hello")
    result = CliRunner().invoke(verify_export, [str(bad)])
    assert result.exit_code == 1 and "FAIL  file hygiene (check G7)" in result.output


def test_promoted_persistent_identifier_fails_g1(exported, allow, tmp_path):
    from gazeback.leaks.detect import fingerprint
    from gazeback.share.verify import canaries

    key, token = b"s" * 32, "a1B2c3D4e5F6g7H8i9J0kLmN"
    secret = canaries([], [], {fingerprint(key, token)}, key)
    assert _failed(exported, allow, secret) == {}
    copy = _copy(exported, tmp_path)
    _tamper(copy, "update readme set body = body || ? where rowid = 1", [f" {token}."])
    assert "persistent identifier" in _failed(copy, allow, secret)["G1"]


def test_registered_place_as_coordinates_fails_g1(exported, owner_secret, allow, tmp_path):
    copy = _copy(exported, tmp_path)
    _tamper(copy, "update readme set body = body || ' 52.5213, 13.4102' where rowid = 1")
    assert "registered place" in _failed(copy, allow, owner_secret)["G1"]


def test_the_recipients_view_says_g1_was_skipped_not_passed(exported):
    from click.testing import CliRunner

    from gazeback.cli import cli

    result = CliRunner().invoke(cli, ["verify-export", str(exported)])
    assert result.exit_code == 0, result.output
    (g1,) = [line for line in result.output.splitlines() if "(check G1)" in line]
    assert g1.startswith("skip  no identifier in any byte (check G1)") and "--against" in g1
