"""What an outside reviewer (a newcomer and an attacker, on Python 3.12) found, each driven
the way a person runs it: the command line on real files (#2, #7, #13, #15, #17)."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import stat
import subprocess
import sys

import pytest
import sqlite_utils
from click.testing import CliRunner
from conftest import ROOT

from gazeback.cli import cli
from gazeback.dashboard import demo
from gazeback.db import migrations

needs_root = pytest.mark.skipif(
    os.geteuid() != 0 or not shutil.which("unshare"), reason="root and unshare (a small disk)"
)
UA_EMAIL = "victim.person@example.org"


def gazeback(*args, **kw):
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    return subprocess.run(
        [sys.executable, "-m", "gazeback", *map(str, args)],
        capture_output=True, text=True, timeout=120, env=env, **kw,
    )  # fmt: skip


def invoke(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


def one_sentence(result, *words):
    out = result.output if hasattr(result, "output") else result.stdout + result.stderr
    code = result.exit_code if hasattr(result, "exit_code") else result.returncode
    assert code == 1, out
    assert "Traceback" not in out, out
    assert not isinstance(getattr(result, "exception", None), OSError | sqlite3.Error), out
    for w in words:
        assert w in out, out


@pytest.fixture(scope="module")
def trail(tmp_path_factory):
    path = tmp_path_factory.mktemp("review") / "trail.db"
    demo.generate(path, scale=400, seed=1)
    migrations.apply(sqlite_utils.Database(path))
    return path


def har(path, entries):
    """A HAR file of (url, user agent) requests."""
    path.write_text(json.dumps({"log": {"version": "1.2", "entries": [
        {"startedDateTime": f"2026-12-01T13:00:0{i}Z", "time": 1,
         "request": {"method": "GET", "url": url, "httpVersion": "HTTP/1.1",
                     "headers": [{"name": "User-Agent", "value": ua}], "queryString": [],
                     "cookies": [], "headersSize": -1, "bodySize": 0},
         "response": {"status": 200, "statusText": "OK", "httpVersion": "HTTP/1.1",
                      "headers": [], "cookies": [], "content": {"size": 0, "mimeType": "x"},
                      "redirectURL": "", "headersSize": -1, "bodySize": 0},
         "cache": {}, "timings": {"send": 0, "wait": 1, "receive": 0}}
        for i, (url, ua) in enumerate(entries)
    ]}}))  # fmt: skip
    return path


def fresh(tmp_path, name="t.db"):
    db = tmp_path / name
    assert invoke("migrate", "--db", db).exit_code == 0
    return db


# --- 1. files the person asked for are theirs alone, and whole (#15, #17, #13) ---------------


@pytest.mark.parametrize("fmt", ["text", "html", "mailto"])
def test_a_letter_with_identifiers_is_owner_only(trail, tmp_path, fmt):
    out = tmp_path / f"letter.{fmt}"
    r = invoke("request", "--db", trail, "Mixpanel", "--include", "1", "--format", fmt, "-o", out)
    assert r.exit_code == 0, r.output
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    assert [p.name for p in tmp_path.iterdir()] == [out.name]  # no temporary file left


def test_a_summary_is_owner_only(trail, tmp_path):
    out = tmp_path / "me.html"
    r = invoke("summary", "--db", trail, "--since", "all", "--out", out)
    assert r.exit_code == 0, r.output
    assert stat.S_IMODE(out.stat().st_mode) == 0o600


# --- 3. a full disk: one sentence, nothing partial, nothing earlier lost (#7, #17, #2, #15) --


@needs_root
def test_a_full_disk_is_one_sentence_and_earlier_files_stay(trail, tmp_path):
    from smalldisk import SmallDisk

    where = tmp_path / "full"
    disk = SmallDisk(where, "4m")
    try:
        letter, page = where / "l.txt", where / "s.html"
        made = [
            gazeback("request", "--db", trail, "Mixpanel", "--include", "1", "-o", letter,
                     preexec_fn=disk.enter),
            gazeback("summary", "--db", trail, "--since", "all", "--out", page,
                     preexec_fn=disk.enter),
        ]  # fmt: skip
        assert all(r.returncode == 0 for r in made), [r.stderr for r in made]
        before = {p: disk.path(p).read_bytes() for p in (letter, page)}
        disk.fill()
        runs = {
            "request": gazeback("request", "--db", trail, "Mixpanel", "--include", "1",
                                "--format", "html", "-o", letter, preexec_fn=disk.enter),
            "summary": gazeback("summary", "--db", trail, "--since", "all", "--out", page,
                                preexec_fn=disk.enter),
            "export": gazeback("export", "--db", trail, where / "x.db", preexec_fn=disk.enter),
        }  # fmt: skip
        one_sentence(runs["request"], f"cannot write {letter}", "No space left on device")
        for command in ("summary", "export"):
            one_sentence(runs[command], f"the disk is full in {where}", f"`gazeback {command}`")
        for p, data in before.items():
            assert disk.path(p).read_bytes() == data  # the earlier letter and page are whole
        assert sorted(p.name for p in disk.path(where).iterdir()) == ["filler", "l.txt", "s.html"]
    finally:
        disk.close()


@needs_root
def test_an_import_onto_a_full_disk_is_one_sentence_and_stores_nothing(tmp_path):
    from smalldisk import SmallDisk

    where = tmp_path / "full"
    disk = SmallDisk(where, "24m")
    try:
        db = where / "t.db"
        assert gazeback("migrate", "--db", db, preexec_fn=disk.enter).returncode == 0
        # the database opens with 16 MiB free; 60 requests with 150 long headers each are
        # about 18 MB to store
        room = shutil.disk_usage(disk.path(where)).free - (16 << 20) - (256 << 10)
        disk.path(where / "filler").write_bytes(b"\0" * room)
        big = har(tmp_path / "big.har", [
            (f"https://app-measurement.com/{i}", "App/1.0") for i in range(60)
        ])  # fmt: skip
        doc = json.loads(big.read_text())
        for i, e in enumerate(doc["log"]["entries"]):
            e["request"]["headers"] += [
                {"name": f"x-h{j}", "value": f"{i} {j} " + "lorem ipsum " * 166} for j in range(150)
            ]
        big.write_text(json.dumps(doc))
        r = gazeback("import", "--db", db, big, "-s", preexec_fn=disk.enter)
        one_sentence(r, "the disk is full in", "`gazeback import`", "wrote nothing")
        disk.free()
        assert disk.query(db, "select count(*) from captures") == 0
        assert disk.query(db, "select count(*) from requests") == 0
    finally:
        disk.close()


# --- 2. an identifier in the app a request names is never stored (#17, #13) -----------------


def test_an_identity_in_the_user_agent_never_becomes_the_stored_app(tmp_path):
    db = fresh(tmp_path)
    assert invoke("identity", "add", "--db", db, "other", UA_EMAIL).exit_code == 0
    f = har(tmp_path / "ident.har", [
        ("https://app-measurement.com/a", f"{UA_EMAIL}/1.0 CFNetwork/1 Darwin/22"),
        ("https://app-measurement.com/b", f"{UA_EMAIL.upper()}/2.0 CFNetwork/1 Darwin/22"),
        ("https://app-measurement.com/c", "Weather/3.1 CFNetwork/1 Darwin/22"),
    ])  # fmt: skip
    r = invoke("import", "--db", db, f, "-s")
    assert r.exit_code == 0, r.output
    apps = [a for (a,) in sqlite3.connect(db).execute("select app from requests order by id")]
    assert apps == ["[leak:other]", "[leak:other]", "Weather"]
    raw = b"".join(p.read_bytes() for p in tmp_path.glob("t.db*") if p.suffix != ".key")
    assert UA_EMAIL.encode() not in raw.lower()
    summary = invoke("summary", "--db", db, "--since", "all", "--out", tmp_path / "s.html")
    assert summary.exit_code == 0, summary.output


def test_a_summary_refused_for_an_old_stored_app_says_what_to_do(tmp_path):
    db = fresh(tmp_path)
    assert invoke("identity", "add", "--db", db, "email", UA_EMAIL).exit_code == 0
    f = har(tmp_path / "a.har", [("https://app-measurement.com/a", "Weather/3.1")])
    assert invoke("import", "--db", db, f, "-s").exit_code == 0
    with sqlite3.connect(db) as conn:  # as an earlier version stored it
        conn.execute("update requests set app = ?, app_source = 'inferred'", [f"{UA_EMAIL}/1.0"])
    out = tmp_path / "s.html"
    r = invoke("summary", "--db", db, "--since", "all", "--out", out)
    one_sentence(r, "requests.app", f"gazeback rescan --db {db}")
    assert not out.exists()
    assert "replaced" in invoke("rescan", "--db", db).output
    assert invoke("summary", "--db", db, "--since", "all", "--out", out).exit_code == 0


# --- 4. and 5. an import that stores nothing; junk host and app names (#2, #17) --------------

PCAPDROID = (
    "IPProto,SrcIP,SrcPort,DstIp,DstPort,UID,App,PackageName,Proto,Status,Info,"
    "BytesSent,BytesRcvd,PktsSent,PktsRcvd,FirstSeen,LastSeen\n"
)


def pcapdroid_row(info, first, last, package="com.example.weather", port=443):
    return (
        f"6,10.215.173.1,40000,142.250.1.1,{port},10123,Weather,{package},TLS,CLOSED,{info},"
        f"1200,3400,5,6,{first},{last}\n"
    )


@pytest.mark.parametrize(
    "first,last",
    [("2025-12-01T10:00:00.123+01:00", "2025-12-01T10:01:00.456+01:00"),  # 1.7.0 and later
     ("1764579600123", "1764579660456"),  # before 1.7.0: epoch milliseconds
     ("1764579600", "1764579660")],  # epoch seconds
)  # fmt: skip
def test_pcapdroid_times_as_it_writes_them(tmp_path, first, last):
    db = fresh(tmp_path)
    f = tmp_path / "pcapdroid.csv"
    f.write_text(PCAPDROID + pcapdroid_row("app-measurement.com", first, last))
    r = invoke("import", "--db", db, f, "-s")
    assert r.exit_code == 0 and "1 requests imported" in r.output, r.output
    (t,) = sqlite3.connect(db).execute("select started_at from requests").fetchone()
    assert t.startswith("2025-12-01T09:00:00")


def test_a_file_that_stores_nothing_fails_and_can_be_imported_once_fixed(tmp_path):
    db = fresh(tmp_path)
    f = tmp_path / "pcapdroid.csv"
    f.write_text(PCAPDROID + pcapdroid_row("app-measurement.com", "yesterday", "today") * 2)
    r = invoke("import", "--db", db, f, "-s", "--experiment", "upd", "--condition", "before")
    one_sentence(r, f"{f}: rejected, nothing imported", "line 2", "FirstSeen")
    con = sqlite3.connect(db)
    assert con.execute("select count(*) from captures").fetchone()[0] == 0
    assert con.execute("select count(*) from experiments").fetchone()[0] == 0
    again = invoke("import", "--db", db, f, "-s")
    assert "already imported" not in again.output and again.exit_code == 1
    f.write_text(PCAPDROID + pcapdroid_row("app-measurement.com", "1764579600", "1764579660"))
    fixed = invoke("import", "--db", db, f, "-s")
    assert fixed.exit_code == 0 and "1 requests imported" in fixed.output, fixed.output
    bad_har = har(tmp_path / "bad.har", [("not a url", "x"), ("neither", "y")])
    one_sentence(invoke("import", "--db", db, bad_har, "-s"), "entry 0")


def test_formulas_and_markup_are_never_stored_as_host_or_app(tmp_path):
    db = fresh(tmp_path)
    f = tmp_path / "evil.csv"
    f.write_text(
        PCAPDROID
        + pcapdroid_row("app-measurement.com", "1764579600", "1764579660")
        + pcapdroid_row("=cmd|'/c calc'!A1", "1764579600", "1764579660")
        + pcapdroid_row("<script>x</script>.doubleclick.net", "1764579600", "1764579660")
        + pcapdroid_row("graph.facebook.com", "1764579600", "1764579660", package="=HYPERLINK(1)")
    )
    r = invoke("import", "--db", db, f, "-s")
    assert r.exit_code == 0, r.output
    assert "line 3: host \"=cmd|'/c calc'!A1\" is not a host name or an IP address" in r.output
    assert "line 4: host" in r.output and "line 5: app '=HYPERLINK(1)' left out" in r.output
    rows = sqlite3.connect(db).execute("select host, registrable_domain, app from requests")
    assert sorted(rows) == [
        ("app-measurement.com", "app-measurement.com", "com.example.weather"),
        ("graph.facebook.com", "facebook.com", None),
    ]


# --- 6. adapters test reads a HAR like the import does (#13) ---------------------------------


def test_adapters_test_refuses_deep_json_in_one_sentence(tmp_path):
    f = tmp_path / "deep.har"
    f.write_text('{"log": {"entries": [' + "[" * 100_000 + "]" * 100_000 + "]}}")
    one_sentence(invoke("adapters", "test", f), f"{f} is not a HAR file", "nested more than 100")


# --- 5. the dashboard's .csv downloads never carry a formula (#17) ---------------------------


async def test_dashboard_csv_downloads_neutralise_formulas(tmp_path):
    import csv
    import io

    from signin import signed_in

    from gazeback.dashboard.serve import make_datasette

    db = tmp_path / "trail.db"
    f = har(tmp_path / "a.har", [(f"https://app-measurement.com/{i}", "App/1") for i in range(3)])
    assert invoke("migrate", "--db", db).exit_code == 0
    assert invoke("import", "--db", db, f, "-s").exit_code == 0
    evil = ["=cmd|'/c calc'!A1", "@SUM(1+1)", "+1+2", "-2+3", "\t=1", '=HYPERLINK("x","y,z")']
    with sqlite3.connect(db) as conn:  # as stored by an earlier version, or another tool
        conn.execute("update requests set app = ?, path = ? where id = 1", [evil[0], evil[1]])
        conn.execute("update requests set app = ?, path = ? where id = 2", [evil[2], evil[3]])
        conn.execute("update requests set app = ?, path = ? where id = 3", [evil[4], evil[5]])
        conn.execute("update requests set status_code = -3 where id = 3")
    ds = await signed_in(make_datasette(db))
    for url in ("/trail/requests.csv?_stream=on&_size=1",
                "/trail.csv?sql=select+id,app,path,status_code+from+requests"):  # fmt: skip
        r = await ds.client.get(url)
        assert r.status_code == 200, r.text
        rows = list(csv.DictReader(io.StringIO(r.text)))
        cells = [row[c] for row in rows for c in ("app", "path")]
        assert sorted(cells) == sorted("'" + e for e in evil), r.text
        assert {row["id"]: row["status_code"] for row in rows}["3"] == "-3"  # still a number


# --- 7. smaller things ------------------------------------------------------------------------


def test_summary_takes_the_durations_news_takes(trail, tmp_path):
    for since in ("12h", "30m", "7d", "2w"):
        assert invoke("news", "--db", trail, "--since", since).exit_code == 0
        out = tmp_path / f"s{since}.html"
        r = invoke("summary", "--db", trail, "--since", since, "--out", out)
        assert r.exit_code == 0, r.output
    assert "the last 12 hours" in (tmp_path / "s12h.html").read_text()
    assert "the last 14 days" in (tmp_path / "s2w.html").read_text()
    bad = invoke("summary", "--db", trail, "--since", "soon", "--out", out)
    assert bad.exit_code == 2 and "hours as 12h" in bad.output, bad.output


def test_the_demo_writes_nothing_in_the_future_and_names_the_current_command(tmp_path):
    from datetime import UTC, datetime

    db = tmp_path / "demo.db"
    before = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    r = invoke("demo", "--db", db, "--scale", "2000", "--no-serve")
    assert r.exit_code == 0, r.output
    assert f"gazeback dashboard --db {db}" in r.output
    (latest,) = sqlite3.connect(db).execute("select max(started_at) from requests").fetchone()
    assert latest <= before[:16] + "~", latest  # no later than the minute it ran


def test_follow_up_letters_take_lang_and_a_complaint_asks_for_the_country(trail):
    db = ["--db", trail]
    assert invoke("request", *db, "Segment", "--mark-sent", "--on", "2026-01-05").exit_code == 0
    (rid,) = sqlite3.connect(trail).execute("select max(id) from requests_sent").fetchone()
    de = invoke("request", *db, "--reminder", rid, "--lang", "de")
    en = invoke("request", *db, "--reminder", rid)
    assert de.exit_code == en.exit_code == 0, de.output
    assert "Meine Kennungen" in de.output and "Identifiers of mine" in en.output, de.output
    complaint = invoke("request", *db, "--complaint", rid)
    assert complaint.exit_code == 0 and "--country" in complaint.output, complaint.output


def test_live_capture_never_stores_an_identity_as_the_app(tmp_path, upstream):
    import time

    import httpx
    from conftest import start_proxy

    db = tmp_path / "data" / "trail.db"
    (tmp_path / "data").mkdir(mode=0o700)
    assert invoke("migrate", "--db", db).exit_code == 0
    assert invoke("identity", "add", "--db", db, "email", UA_EMAIL).exit_code == 0
    proxy = start_proxy(tmp_path, upstream)
    try:
        with httpx.Client(proxy=proxy.url, verify=str(proxy.ca), timeout=10) as client:
            ua = {"User-Agent": f"{UA_EMAIL}/1.0 CFNetwork/1 Darwin/22"}
            assert client.get("https://www.google-analytics.com/a", headers=ua).status_code == 200
        deadline = time.monotonic() + 10
        while not proxy.rows("select 1 from requests") and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        assert proxy.stop() == 0
    assert [r["app"] for r in proxy.rows("select app from requests")] == ["[leak:email]"]
    raw = b"".join(p.read_bytes() for p in db.parent.glob("trail.db*") if p.suffix != ".key")
    assert UA_EMAIL.encode() not in raw.lower()
