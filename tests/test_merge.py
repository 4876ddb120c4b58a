from collections import Counter

import pytest
import sqlite_utils
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from gazeback.cli.export import export, merge, verify_export
from gazeback.db import migrations
from gazeback.share.merge import Household, MergeRefused, bounded, combine, pool

DOMAINS = ["doubleclick.net", "criteo.com", "mixpanel.com", "adjust.com", "branch.io", "hotjar.com"]


def _household(domains):
    h = Household({t: Counter() for t in ("pool_destinations", "pool_key_names",
                                          "pool_device_classes", "pool_leaks")})  # fmt: skip
    for i, d in enumerate(domains):
        h.values["pool_destinations"][(d, "ads")] += 100 - i
    return h


households = st.lists(st.lists(st.sampled_from(DOMAINS), unique=True), min_size=0, max_size=30)


@settings(max_examples=150, deadline=None)
@given(households, st.integers(2, 12), st.integers(1, 6))
def test_k_threshold_and_bounded_contribution(sets, k, l0):
    hs = [_household(s) for s in sets]
    released = pool(hs, k, l0)["pool_destinations"]
    truth = Counter(v for h in hs for v in bounded(h.values["pool_destinations"], l0))
    assert all(r["households"] >= k for r in released)
    assert {(r["dest_domain"], r["dest_role"]): r["households"] for r in released} == {
        v: n for v, n in truth.items() if n >= k
    }
    for h in hs:  # no household counts more than l0 values
        assert len(bounded(h.values["pool_destinations"], l0)) <= l0


@given(households)
def test_one_household_below_k_never_releases_anything(sets):
    assert pool([_household(s) for s in sets[:1]], k=2)["pool_destinations"] == []


def test_different_schema_versions_are_refused():
    with pytest.raises(MergeRefused, match="different schema versions"):
        combine([("a", {"schema_version": 1, "export_id": "x"}, {}),
                  ("b", {"schema_version": 2, "export_id": "y"}, {})])  # fmt: skip


def test_same_export_twice_is_refused():
    with pytest.raises(MergeRefused, match="twice"):
        combine([("a", {"schema_version": 1, "export_id": "x"}, {}),
                 ("b", {"schema_version": 1, "export_id": "x"}, {})])  # fmt: skip


def test_shared_pseudonym_without_link_key_is_refused():
    rows = {"devices": [{"device_pid": "0" * 16, "device_class": "phone", "vendor": "other"}]}
    with pytest.raises(MergeRefused, match="G3"):
        combine([("a", {"schema_version": 1, "export_id": "x"}, rows),
                 ("b", {"schema_version": 1, "export_id": "y"}, rows)])  # fmt: skip
    linked = combine([("a", {"schema_version": 1, "export_id": "x", "is_linkable": 1}, rows),
                      ("b", {"schema_version": 1, "export_id": "y", "is_linkable": 1}, rows)])  # fmt: skip
    assert len(linked) == 1


def _small_trail(path, seed):
    db = sqlite_utils.Database(path)
    migrations.apply(db)
    db.table("devices").insert({"id": 1, "key": f"user:phone{seed}", "label": "P", "kind": "phone"})
    hosts = ["stats.g.doubleclick.net", "api.mixpanel.com", "www.example.org"]
    if seed % 2:
        hosts.append("widget.criteo.com")
    db.table("requests").insert_all(
        {"flow_id": f"{h}-{i}", "started_at": "2026-11-20T10:00:00Z", "kind": "http", "host": h,
         "registrable_domain": ".".join(h.split(".")[-2:]), "scheme": "https", "device_id": 1}
        for h in hosts for i in range(4)
    )  # fmt: skip
    db.close()


def test_merge_cli_writes_sqlite_and_parquet_queryable_with_duckdb(tmp_path):
    duckdb = pytest.importorskip("duckdb")
    outs = []
    for seed in range(5):
        src = tmp_path / f"trail{seed}.db"
        _small_trail(src, seed)
        out = tmp_path / f"share{seed}.db"
        assert CliRunner().invoke(export, [str(src), str(out)]).exit_code == 0
        outs.append(str(out))
    pool_path = tmp_path / "pool.db"
    result = CliRunner().invoke(merge, [str(pool_path), *outs, "-k", "3"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    rows = list(sqlite_utils.Database(pool_path).query("select * from pool_destinations"))
    assert rows == [{"dest_domain": "doubleclick.net", "dest_role": "ads", "households": 5},
                    {"dest_domain": "mixpanel.com", "dest_role": "analytics", "households": 5}]  # fmt: skip
    # criteo.com is in 2 of 5 households: below k = 3, not released
    parquet = tmp_path / "pool.parquet" / "pool_destinations.parquet"
    got = duckdb.sql(f"select dest_domain, households from '{parquet}' order by 1").fetchall()
    assert got == [("doubleclick.net", 5), ("mixpanel.com", 5)]
    check = CliRunner().invoke(verify_export, [str(pool_path)])
    assert check.exit_code == 0, check.output


def test_merge_refuses_a_tampered_export(exported, tmp_path):
    import shutil
    import sqlite3

    bad = tmp_path / "bad.db"
    shutil.copy(exported, bad)
    conn = sqlite3.connect(bad)
    conn.execute("alter table devices add column label text")
    conn.commit()
    conn.close()
    result = CliRunner().invoke(merge, [str(tmp_path / "pool.db"), str(bad)])
    assert result.exit_code == 1 and "G2" in result.output
    assert not (tmp_path / "pool.db").exists()


def test_merge_help_has_an_example():
    assert "Example" in CliRunner().invoke(merge, ["--help"]).output
