"""Attack (#13.6): the anonymized export named the sites a person visited.

Five visits to a pornography site came out of ``gazeback export`` as ``pornhub.com|ads`` on a
device row and every guarantee passed; ``weather.com`` appeared by name in the demo export.
"""

import json
import shutil
import sqlite3

import pytest
import sqlite_utils
from click.testing import CliRunner

from gazeback.cli.demo import demo
from gazeback.cli.export import export, verify_export
from gazeback.dashboard.demo import APPS
from gazeback.db import migrations
from gazeback.db.header_sets import with_header_set
from gazeback.knowledge.classify import load_index, registrable_domain
from gazeback.share.domains import sensitive_domains
from gazeback.share.schema import OTHER, SITE, Allowlist
from gazeback.share.verify import verify


def _visit(db, domain, n, headers=None, device="ip:192.168.1.9"):
    db.table("requests").insert_all(with_header_set(db,
        {"flow_id": f"{domain}-{i}", "started_at": "2026-11-20T21:00:00Z", "kind": "http",
         "scheme": "https", "host": f"www.{domain}", "registrable_domain": domain,
         "path": "/", "request_headers": json.dumps(headers or [["host", f"www.{domain}"]])})
        for i in range(n)
    )  # fmt: skip


@pytest.fixture
def trail(tmp_path):
    src = tmp_path / "trail.db"
    db = sqlite_utils.Database(src)
    migrations.apply(db)
    _visit(db, "pornhub.com", 5)  # the reported attack: five visits, no page context
    _visit(db, "webmd.com", 5)
    # a site opened in the browser, its own ad requests sent with it as the Referer
    _visit(db, "weather.com", 5, [["host", "weather.com"], ["sec-fetch-mode", "navigate"]])
    db.table("requests").insert_all(with_header_set(db,
        {"flow_id": f"dc-{i}", "started_at": "2026-11-20T21:00:00Z", "kind": "http",
         "scheme": "https", "host": "ad.doubleclick.net", "registrable_domain": "doubleclick.net",
         "path": "/", "request_headers": json.dumps([["referer", "https://weather.com/"]])})
        for i in range(5)
    )  # fmt: skip
    db.close()
    return src


def test_visits_to_a_sensitive_site_are_never_named(trail, tmp_path):
    out = tmp_path / "share.db"
    result = CliRunner().invoke(export, [str(trail), str(out)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "pass  no domain off the allowlist (check G8)" in result.output
    data = out.read_bytes() + out.with_name("share.db.md").read_bytes()
    for name in (b"pornhub", b"webmd", b"weather"):
        assert name not in data
    named = dict(
        sqlite3.connect(out).execute("select dest_domain, sum(requests) from traffic group by 1")
    )
    assert named == {OTHER: 10, SITE: 5, "doubleclick.net": 5}


def test_verifier_fails_a_file_that_names_a_sensitive_site(trail, tmp_path):
    out = tmp_path / "share.db"
    assert CliRunner().invoke(export, [str(trail), str(out)]).exit_code == 0
    forged = tmp_path / "forged.db"
    shutil.copy(out, forged)
    conn = sqlite3.connect(forged)
    conn.execute("update traffic set dest_domain = 'pornhub.com', dest_role = 'ads' "
                 "where dest_domain = '(other)'")  # fmt: skip
    conn.commit()
    conn.execute("vacuum")
    conn.close()
    failed = {c.guarantee for c in verify(forged, Allowlist(load_index())) if not c.ok}
    assert "G8" in failed
    result = CliRunner().invoke(verify_export, [str(forged)])
    assert result.exit_code == 1 and "FAIL  no domain off the allowlist (check G8)" in result.output


@pytest.mark.parametrize("table", ["export_meta", "export_lists"])
def test_verifier_fails_a_site_hidden_in_another_text_column(trail, tmp_path, table):
    out = tmp_path / "share.db"
    assert CliRunner().invoke(export, [str(trail), str(out)]).exit_code == 0
    conn = sqlite3.connect(out)
    column = "tool_version" if table == "export_meta" else "version"
    conn.execute(f"update {table} set {column} = 'pornhub.com'")
    conn.commit()
    conn.execute("vacuum")
    conn.close()
    checks = {c.guarantee: c for c in verify(out, Allowlist(load_index()))}
    assert not checks["G8"].ok and table in checks["G8"].reason


def test_sensitive_domains_are_never_on_the_allowlist():
    allow = Allowlist(load_index())
    for domain in sensitive_domains():
        assert allow.role(domain) is None, domain
        assert allow.role(f"ads.{domain}") is None


def test_demo_export_names_no_site_the_demo_person_visits(tmp_path):
    db = tmp_path / "demo.db"
    result = CliRunner().invoke(demo, ["--db", str(db), "--no-serve", "--scale", "3000"])
    assert result.exit_code == 0, result.output
    out = tmp_path / "share.db"
    result = CliRunner().invoke(export, [str(db), str(out)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "pass  no domain off the allowlist (check G8)" in result.output
    pages = {registrable_domain(a.page.split("/")[2]) for a in APPS if a.page}
    assert "weather.com" in pages
    named = {r[0] for r in sqlite3.connect(out).execute("select dest_domain from traffic")}
    assert SITE in named and not named & pages
    data = out.read_bytes()
    for page in pages:
        assert page.encode() not in data


def test_reviewed_allowlist_matches_the_bundled_tracker_knowledge():
    import subprocess
    import sys
    from pathlib import Path

    script = Path(__file__).resolve().parents[2] / "scripts" / "build_export_domains.py"
    done = subprocess.run([sys.executable, str(script), "--check"], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
