import hashlib
import sqlite3

import pytest
import sqlite_utils
from click.testing import CliRunner
from household import plants

from gazeback.cli.export import export, preview_command, verify_export
from gazeback.db import migrations
from gazeback.knowledge.classify import load_index
from gazeback.share.export import (
    ExportRefused,
    Options,
    build_tables,
    chain,
    key_name,
    location_kind,
    merge_cells,
    pseudonym,
    write_export,
)
from gazeback.share.schema import OTHER, Allowlist, check_bucket, classify_device
from gazeback.share.verify import Check, load

POPULAR = (
    "google.com youtube.com facebook.com wikipedia.org instagram.com reddit.com bing.com "
    "x.com twitter.com whatsapp.com yahoo.com amazon.com tiktok.com linkedin.com netflix.com "
    "live.com microsoft.com ebay.com pinterest.com twitch.tv spotify.com github.com "
    "stackoverflow.com cnn.com bbc.co.uk nytimes.com apple.com zoom.us paypal.com vk.com "
    "yandex.ru baidu.com imdb.com espn.com weather.com booking.com etsy.com quora.com "
    "walmart.com target.com roblox.com duckduckgo.com theguardian.com office.com adobe.com "
    "msn.com dropbox.com aliexpress.com canva.com fandom.com"
).split()


def test_export_passes_every_guarantee_and_g1_has_zero_hits(exported, household):
    src, _ = household
    result = CliRunner().invoke(verify_export, [str(exported), "--against", str(src)])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    # plain words first, each check's number after them
    assert [line.split()[0] for line in lines] == ["pass"] * 8
    assert [line.split("(check ")[1][:2] for line in lines] == [f"G{i}" for i in range(1, 9)]
    assert "0 hits" in lines[0]
    assert exported.with_name(exported.name + ".md").read_text().startswith("# gazeback export")


def test_planted_identifiers_never_reach_the_export(exported, household):
    _, ids = household
    data = exported.read_bytes() + exported.with_name(exported.name + ".md").read_bytes()
    for value, _ in plants(ids):
        assert value.encode() not in data
        assert value.lower().encode() not in data.lower()
    for kind in ("email", "phone", "android_id", "mac", "imei"):
        for v in ids[kind]:
            assert v.encode() not in data


def test_hosts_are_cut_to_allowlisted_registrable_domains(exported):
    rows = sqlite_utils.Database(exported).execute("select distinct dest_domain from traffic")
    domains = {r[0] for r in rows}
    assert "doubleclick.net" in domains  # from <android_id>.devices.doubleclick.net
    assert not any("devices" in d or "example" in d for d in domains)


def test_two_exports_share_no_pseudonym_and_link_key_makes_them_equal(household):
    src, _ = household
    db = sqlite_utils.Database(src)
    allow = Allowlist(load_index())
    pids = [
        {r["device_pid"] for r in build_tables(db, allow, key, Options()).rows["devices"]}
        for key in (b"a" * 32, b"b" * 32, b"a" * 32)
    ]
    assert not pids[0] & pids[1]
    assert pids[0] == pids[2]


def test_g6_fifty_popular_sites_never_appear_per_device(tmp_path):
    src = tmp_path / "browse.db"
    db = sqlite_utils.Database(src)
    migrations.apply(db)
    db.table("devices").insert({"id": 1, "key": "user:laptop", "label": "L", "kind": "laptop"})
    db.table("requests").insert_all(
        {"flow_id": f"{site}-{i}", "started_at": f"2026-11-20T1{i}:00:00Z", "kind": "http",
         "host": f"www.{site}", "registrable_domain": site, "scheme": "https", "device_id": 1}
        for site in POPULAR for i in range(5)
    )  # fmt: skip
    out = tmp_path / "share.db"
    result = CliRunner().invoke(export, [str(src), str(out)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    named = {r[0] for r in sqlite3.connect(out).execute("select dest_domain from traffic")}
    assert named == {OTHER}


def test_a_value_deleted_before_export_is_not_in_the_file(tmp_path):
    src = tmp_path / "t.db"
    db = sqlite_utils.Database(src)
    migrations.apply(db)
    secret = "deleted-canary-7f3a9c2e11"
    db.table("requests").insert_all(
        {"flow_id": f"f{i}", "started_at": "2026-11-20T10:00:00Z", "kind": "http",
         "host": "www.google-analytics.com", "registrable_domain": "google-analytics.com",
         "path": f"/collect?cid={secret}"} for i in range(5)
    )  # fmt: skip
    db.execute("delete from requests where flow_id = 'f0'")
    db.close()
    out = tmp_path / "share.db"
    assert CliRunner().invoke(export, [str(src), str(out)]).exit_code == 0
    assert secret.encode() not in out.read_bytes()


def test_export_migrates_an_older_database_first(tmp_path):
    src = tmp_path / "old.db"
    db = sqlite_utils.Database(src)
    migrations.migrations.apply(db, stop_before="m016_create_dashboard_summaries")
    assert "summary_hourly" not in db.table_names()
    db.close()
    out = tmp_path / "share.db"
    result = CliRunner().invoke(export, [str(src), str(out)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "summary_hourly" in sqlite_utils.Database(src).table_names()


def test_a_failing_export_leaves_nothing_behind(household, tmp_path):
    src, _ = household
    tables = build_tables(sqlite_utils.Database(src), Allowlist(load_index()), b"k" * 32, Options())
    from gazeback.share.export import finish_tables

    finish_tables(tables, load_index(), Options(), 0)
    out = tmp_path / "share.db"
    with pytest.raises(ExportRefused, match="G1"):
        write_export(tables, out, "sqlite", lambda p: [Check("G1", False, "planted")])
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_flat_formats_verify(household, owner_secret, tmp_path, fmt):
    from gazeback.share.export import finish_tables
    from gazeback.share.verify import verify

    allow = Allowlist(load_index())
    opts = Options(bucket_s=86400)
    tables = build_tables(sqlite_utils.Database(household[0]), allow, b"k" * 32, opts)
    finish_tables(tables, allow.index, opts, owner_secret.profile.needle_count)
    out = tmp_path / f"share-{fmt}"
    checks = write_export(tables, out, fmt, lambda p: verify(p, allow, owner_secret))
    assert all(c.ok for c in checks), [c.line for c in checks]
    assert (out / "datasheet.md").exists() and (out / f"traffic.{fmt}").exists()
    exp = load(out)
    assert {r["bucket_start"] % 86400 for r in exp.rows["traffic"]} == {0}
    assert [c.guarantee for c in verify(out, allow, owner_secret) if not c.ok] == []


def test_existing_output_is_refused(exported, household):
    result = CliRunner().invoke(export, [str(household[0]), str(exported)])
    assert result.exit_code == 1 and "already exists" in result.output


@pytest.mark.parametrize(
    "location,kind,name",
    [
        ("url.query:ud[em]", "url.query", "ud[em]"),
        ("body.json:$.events[0].user_id", "body.json", "user_id"),
        ("body.form:data>$.properties.distinct_id", "body.form", "distinct_id"),
        ("header:x-braze-device-id", "header", "x-braze-device-id"),
        ("body.json:$.advertiserId", "body.json", "advertiserid"),
        ("url.path:3", "url.path", OTHER),
        ("cookie:_ga", "cookie", OTHER),
        ("body.multipart:file", "body.other", OTHER),
        ("body.json:$.my_secret_jane_doe", "body.json", OTHER),
        ("weird", OTHER, OTHER),
    ],
)
def test_location_kind_and_key_name(location, kind, name):
    assert location_kind(location) == kind
    assert key_name(location) == name


@pytest.mark.parametrize(
    "value,expected",
    [
        ("lower>sha256:hex", "lower>sha256:hex"),
        ("plain>b64>pct", "plain>b64>pct"),
        ("plain>jane@example.org", OTHER),
        ("", OTHER),
        (None, OTHER),
    ],
)
def test_chain_vocabulary(value, expected):
    assert chain(value) == expected


@pytest.mark.parametrize(
    "kind,os_family,expected",
    [
        ("laptop", "Windows", ("computer", "windows", "microsoft")),
        ("phone", "iOS", ("phone", "ios", "apple")),
        ("camera", None, ("camera", "other", "other")),
        ("Alice's thing", "TV OS", ("other", "other", "other")),
    ],
)
def test_classify_device(kind, os_family, expected):
    assert classify_device(kind, os_family) == expected


@pytest.mark.parametrize("bucket", [60, 1800, 5000, 25200, 90000])
def test_bad_buckets(bucket):
    with pytest.raises(ValueError):
        check_bucket(bucket)


def test_merge_cells_folds_then_drops():
    cells = {("p", 0, "a.com", "ads"): [2, 10], ("p", 0, "b.com", "ads"): [2, 5],
             ("p", 0, "c.com", "ads"): [1, 1], ("p", 3600, "d.com", "ads"): [1, 1],
             ("p", 0, "e.com", "ads"): [9, 9]}  # fmt: skip
    kept, dropped = merge_cells(cells, 3, [lambda k: (k[0], k[1], OTHER, "other")])
    assert kept == {("p", 0, OTHER, "other"): [5, 16], ("p", 0, "e.com", "ads"): [9, 9]}
    assert dropped == 1


def test_pseudonym_is_keyed_and_not_a_plain_hash():
    p = pseudonym(b"k" * 32, "user:phone")
    assert len(p) == 16 and p != hashlib.sha256(b"device:user:phone").hexdigest()[:16]
    assert p != pseudonym(b"j" * 32, "user:phone")


def test_preview_listens_on_loopback_only(tmp_path):
    cmd = preview_command(tmp_path / "share.db", 8123, tmp_path / "m.json")
    assert cmd[cmd.index("--host") + 1] == "127.0.0.1" and "-i" in cmd


@pytest.mark.parametrize("command", [export, verify_export])
def test_help_has_an_example(command):
    assert "Example" in CliRunner().invoke(command, ["--help"]).output
