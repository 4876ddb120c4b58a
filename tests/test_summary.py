"""`gazeback summary`: one page to share, with none of the person's identifiers (#17)."""

import functools
import re
import shutil
import zlib

import pypdf
import pytest
import sqlite_utils
from click.testing import CliRunner

from gazeback.cli.summary import summary
from gazeback.db.identities import add_identity, load_identities, load_key
from gazeback.leaks.needles import build_profile
from gazeback.share.summary import collect, scan

needs_chromium = pytest.mark.skipif(not shutil.which("chromium"), reason="no chromium here")


def run(db_path, out, *args, env=None):
    return CliRunner().invoke(
        summary, ["--db", str(db_path), "--since", "all", "--out", str(out), *args], env=env
    )


@functools.cache
def profile_of(db_path):
    db = sqlite_utils.Database(db_path)
    return build_profile(load_identities(db, load_key(db_path)))


def sites_of(db_path):
    from gazeback.cli.summary import _sites

    return _sites(sqlite_utils.Database(db_path))


def pdf_texts(data: bytes) -> list[bytes]:
    """The PDF's text as pypdf extracts it, and every stream decompressed."""
    import io

    text = "\n".join(p.extract_text() for p in pypdf.PdfReader(io.BytesIO(data)).pages)
    streams = []
    for m in re.finditer(rb"stream\r?\n(.*?)endstream", data, re.S):
        try:
            streams.append(zlib.decompress(m.group(1)))
        except zlib.error:
            streams.append(m.group(1))
    return [text.encode(), data, *streams]


@pytest.fixture(scope="module")
def trail(tmp_path_factory):
    """The demo trail with four identities of every kind, also planted in requests (plain,
    hashed, encoded, in paths, headers and host names): tests/helpers/household.py."""
    from household import make_household

    path = tmp_path_factory.mktemp("summary") / "trail.db"
    ids = make_household(path, scale=600, n=4)
    return path, ids


def test_html_names_companies_and_kinds_never_identities_or_sites(trail, tmp_path):
    db_path, ids = trail
    out = tmp_path / "me.html"
    result = run(db_path, out)
    assert result.exit_code == 0, result.output
    html = out.read_text()
    assert "Who knows what about me" in html and "Alphabet" in html
    assert "your email address" in html  # the kind, never the value
    assert scan(out.read_bytes(), profile_of(db_path), sites_of(db_path)) == []
    assert not any(v in html for vs in ids.values() for v in vs)
    # offline: nothing loaded from anywhere; every chart has a text alternative
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//|@import|url\(""", html)
    charts = re.findall(r"<svg[^>]*>.*?</svg>", html, re.S)
    assert charts and all('role="img"' in c and "<title" in c and "<desc" in c for c in charts)
    for colour in ("#0072B2", "#E69F00"):  # Okabe–Ito
        assert colour in html


def test_one_device_without_its_label(trail, tmp_path):
    """A device's label is the person's own wording ("Alex's phone"): never on the page."""
    db_path, _ = trail
    out = tmp_path / "phone.html"
    result = run(db_path, out, "--device", "Alex's phone", "--since", "all")
    assert result.exit_code == 0, result.output
    html = out.read_text()
    assert "one device" in html and "Alex" not in html and "Who knows what about me" in html


def test_sites_only_when_asked(trail, tmp_path):
    db_path, _ = trail
    sites = sites_of(db_path)
    result = run(db_path, tmp_path / "with.html", "--include-sites")
    assert result.exit_code == 0, result.output
    assert "Sites I chose to show" in (tmp_path / "with.html").read_text()
    run(db_path, tmp_path / "without.html")
    html = (tmp_path / "without.html").read_text().lower()
    assert sites and not [s for s in sites if s.lower() in html]


@needs_chromium
@pytest.mark.parametrize("paper,size", [("a4", (595, 842)), ("letter", (612, 792))])
def test_pdf_is_one_page_with_no_identity_in_any_form(trail, tmp_path, paper, size):
    db_path, _ = trail
    out = tmp_path / "me.pdf"
    result = run(db_path, out, "--paper", paper)
    assert result.exit_code == 0, result.output
    data = out.read_bytes()
    reader = pypdf.PdfReader(out)
    assert len(reader.pages) == 1
    box = reader.pages[0].mediabox
    assert (round(float(box.width)), round(float(box.height))) == size
    texts = pdf_texts(data)
    assert "Who knows what about me" in texts[0].decode()
    profile, sites = profile_of(db_path), sites_of(db_path)
    assert [hit for t in texts for hit in scan(t, profile, sites)] == []


@needs_chromium
def test_png_is_a_picture_of_the_scanned_page(trail, tmp_path):
    db_path, _ = trail
    out = tmp_path / "me.png"
    result = run(db_path, out)
    assert result.exit_code == 0, result.output
    data = out.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    assert (width, height) == (800, 1130)
    assert scan(data, profile_of(db_path), sites_of(db_path)) == []


def test_a_page_that_would_show_an_identity_is_not_written(trail, tmp_path):
    """Registered values that happen to be on the page (here: a company's owner) stop it."""
    db_path, _ = trail
    copy = tmp_path / "t.db"
    shutil.copy(db_path, copy)
    shutil.copy(db_path.with_name(db_path.name + ".key"), tmp_path / "t.db.key")
    db = sqlite_utils.Database(copy)
    add_identity(db, load_key(copy), "other", "Alphabet Inc.")
    db.close()
    out = tmp_path / "me.html"
    result = run(copy, out)
    assert result.exit_code == 1
    assert "nothing was written" in result.output and "Alphabet" not in result.output
    assert not out.exists() and not list(tmp_path.glob(".me.html*"))


def test_no_chromium_is_one_clear_sentence(trail, tmp_path):
    db_path, _ = trail
    out = tmp_path / "me.pdf"
    result = run(db_path, out, env={"GAZEBACK_CHROMIUM": str(tmp_path / "no-such-chromium")})
    assert result.exit_code == 1
    assert "GAZEBACK_CHROMIUM=" in result.output and "is not a program" in result.output
    assert not out.exists()


@pytest.mark.parametrize(
    "args,why",
    [(["--since", "soon"], "is not a period"), (["--device", "toaster"], "no device is called"),
     (["--out", "me.docx"], "end it in .html, .pdf or .png")],
)  # fmt: skip
def test_bad_options_say_what_is_wrong(trail, tmp_path, args, why):
    db_path, _ = trail
    result = CliRunner().invoke(summary, ["--db", str(db_path), "--out", str(tmp_path / "x.html"),
                                          *args])  # fmt: skip
    assert result.exit_code == 2 and why in result.output
    assert not list(tmp_path.iterdir())


def test_room_summary_keeps_only_what_two_devices_share(trail):
    db_path, _ = trail
    db = sqlite_utils.Database(db_path)
    room = collect(db, days=None, room=True)
    everyone = collect(db, days=None)
    assert room.room == everyone.devices and room.linking == [] and room.apps == []
    for c in room.companies_all:
        n = db.execute(
            "select count(distinct device_id) from trail where company = ? and is_tracker = 1",
            [c["name"]],
        ).fetchone()[0]
        assert n >= 2
    assert {c["name"] for c in room.companies_all} <= {c["name"] for c in everyone.companies_all}


def test_the_summary_counts_what_the_dashboard_counts(trail):
    """The headline's numbers use the trail dashboard's definitions, computed here straight
    from the tables: tracking companies, companies a registered identifier reached, and each
    company's requests (all of them, as the company charts count them)."""
    db_path, _ = trail
    s = collect(sqlite_utils.Database(db_path), days=None)
    db = sqlite_utils.Database(db_path)
    one = lambda sql: db.execute(sql).fetchone()[0]  # noqa: E731
    assert s.company_count == one(
        "select count(distinct t.company_id) from requests r join trackers t "
        "on t.id = r.tracker_id where t.is_tracker"
    )
    reached = one(
        "select count(distinct t.company_id) from leaks l join requests r on r.id = l.request_id "
        "join trackers t on t.id = r.tracker_id where t.is_tracker"
    )
    assert 0 < s.identifier_companies == reached
    assert f"your registered identifiers reached {reached}." in s.headline
    per_company = dict(db.execute(
        "select c.name, count(*) from requests r join trackers t on t.id = r.tracker_id "
        "join companies c on c.id = t.company_id group by c.id"
    ).fetchall())  # fmt: skip
    assert s.companies and all(c["requests"] == per_company[c["name"]] for c in s.companies_all)
