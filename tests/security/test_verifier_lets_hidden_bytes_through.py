"""Attack (#13.7): the export verifier let hidden bytes through.

An email hidden as a comment in a ``CREATE TABLE`` statement passed the recipient's check;
ROT13 text and 8 bytes in the header's ``user_version``/``application_id`` passed the
owner's check. The recipient's check now compares the schema with the expected DDL byte for
byte and the header with the values gazeback writes; the owner's check scans every byte of
the file for the owner's identifiers in every form, ROT13 and reversed included.
"""

import base64
import codecs
import hashlib
import random
import shutil
import sqlite3
from urllib.parse import quote

import pytest

from gazeback.knowledge.classify import load_index
from gazeback.share.schema import Allowlist
from gazeback.share.verify import verify

ALLOW = Allowlist(load_index())
PAGE = 4096


def _failed(path, secret=None):
    return {c.guarantee: c.reason for c in verify(path, ALLOW, secret) if not c.ok}


def _copy(exported, tmp_path, name="copy.db"):
    out = tmp_path / name
    shutil.copy(exported, out)
    return out


def _sql(path, *statements, vacuum=True):
    conn = sqlite3.connect(path)
    for s in statements:
        conn.execute(s)
    conn.commit()
    if vacuum:
        conn.execute("vacuum")
    conn.close()


def _rewrite_schema(path, table, old, new):
    conn = sqlite3.connect(path)
    conn.execute("pragma writable_schema = 1")
    conn.execute(
        "update sqlite_master set sql = replace(sql, ?, ?) where name = ?", [old, new, table]
    )
    conn.commit()
    conn.close()
    _sql(path)  # a fresh, vacuumed file: only the schema text differs


def _poke(path, offset, data):
    with open(path, "r+b") as f:
        f.seek(offset)
        f.write(data)


def test_email_in_a_create_table_comment_fails_the_recipient_check(exported, household, tmp_path):
    email = household[1]["email"][0]
    copy = _copy(exported, tmp_path)
    _rewrite_schema(copy, "devices", '"vendor" TEXT', f'"vendor" TEXT /* {email} */')
    failed = _failed(copy)
    assert "G2" in failed and "byte for byte" in failed["G2"]


def test_rot13_identity_fails_the_owner_check(exported, household, owner_secret, tmp_path):
    email = household[1]["email"][0]
    copy = _copy(exported, tmp_path)
    _sql(
        copy, f"update readme set body = body || ' {codecs.encode(email, 'rot13')}' where rowid = 1"
    )
    failed = _failed(copy, owner_secret)
    assert "G1" in failed and "hit" in failed["G1"]


@pytest.mark.parametrize("offset", [60, 68])
def test_bytes_in_user_version_or_application_id_fail(exported, tmp_path, offset):
    copy = _copy(exported, tmp_path)
    _poke(copy, offset, b"al1c3!x8"[:4])
    failed = _failed(copy)
    assert "G7" in failed and ("user_version" in failed["G7"] or "application_id" in failed["G7"])


def test_eight_bytes_across_both_header_fields_fail(exported, tmp_path):
    copy = _copy(exported, tmp_path)
    conn = sqlite3.connect(copy)
    conn.execute("pragma user_version = 1634497379")  # "alic"
    conn.execute("pragma application_id = 1697919597")  # "e@ex"
    conn.close()
    failed = _failed(copy)
    assert "G7" in failed and "user_version" in failed["G7"]


# --- fuzz: random covert placements of a canary, every one caught ----------------------

ENCODINGS = {
    "plain": lambda v: v,
    "upper": lambda v: v.upper(),
    "rot13": lambda v: codecs.encode(v, "rot13"),
    "reversed": lambda v: v[::-1],
    "base64": lambda v: base64.b64encode(v.encode()).decode(),
    "sha256": lambda v: hashlib.sha256(v.lower().encode()).hexdigest(),
    "md5": lambda v: hashlib.md5(v.lower().encode()).hexdigest(),
    "pct": lambda v: quote(v, safe=""),
}


def _schema_comment(path, text):
    _rewrite_schema(path, "traffic", '"requests" INTEGER', f'"requests" INTEGER /* {text} */')


def _sql_line_comment(path, text):
    _rewrite_schema(path, "leaks", '"count" INTEGER\n', f'"count" INTEGER -- {text}\n')


def _column_affinity(path, text):
    ident = "T" + text.encode().hex()[:40]
    _rewrite_schema(path, "devices", '"os_family" TEXT', f'"os_family" TEXT {ident}')


def _index_name(path, text):
    ident = text.replace('"', "")
    _sql(path, f'create index "{ident}" on traffic(requests)')


def _header(path, text):
    data = text.encode()[:8].ljust(8, b"\0")
    _poke(path, 60, data[:4])
    _poke(path, 68, data[4:])


def _free_pages(path, text):
    conn = sqlite3.connect(path)
    conn.execute("pragma secure_delete = 0")
    conn.execute("create table junk(x)")
    conn.executemany("insert into junk values (?)", [(text * 20,) for _ in range(40)])
    conn.commit()
    conn.execute("drop table junk")
    conn.commit()
    conn.close()


def _trailing_bytes(path, text):
    with open(path, "ab") as f:
        f.write(text.encode())


def _page_gap(path, text):
    # the unused space between a b-tree page's cell pointers and its cells
    data = bytearray(path.read_bytes())
    payload = text.encode()
    for p in range(1, len(data) // PAGE):  # page 1 carries the 100-byte file header
        base = p * PAGE
        if data[base] not in (0x0D, 0x0A):
            continue
        cells = int.from_bytes(data[base + 3 : base + 5], "big")
        start = int.from_bytes(data[base + 5 : base + 7], "big") or 65536
        gap = base + 8 + 2 * cells
        if base + start - gap > len(payload) + 8:
            data[gap + 4 : gap + 4 + len(payload)] = payload
            path.write_bytes(bytes(data))
            return
    raise AssertionError("no page with room")


PLACEMENTS = {
    "schema comment": (_schema_comment, True),
    "schema line comment": (_sql_line_comment, True),
    "column affinity": (_column_affinity, True),
    "index name": (_index_name, True),
    "header fields": (_header, True),
    "free pages": (_free_pages, True),
    "trailing bytes": (_trailing_bytes, True),
    "page gap": (_page_gap, False),  # looks like any page: the owner's byte scan finds it
}


def _cases(n=40, seed=1307):
    rng = random.Random(seed)
    places, encodings = sorted(PLACEMENTS), sorted(ENCODINGS)
    cases = [(p, rng.choice(encodings), rng.randrange(20)) for p in places]  # each place once
    while len(cases) < n:
        cases.append((rng.choice(places), rng.choice(encodings), rng.randrange(20)))
    return cases


@pytest.mark.parametrize("place,encoding,index", _cases())
def test_fuzzed_covert_canary_is_caught(
    exported, household, owner_secret, tmp_path, place, encoding, index
):
    kind = ("email", "android_id", "ad_id", "mac")[index % 4]
    text = ENCODINGS[encoding](household[1][kind][index])
    copy = _copy(exported, tmp_path)
    plant, structural = PLACEMENTS[place]
    plant(copy, text)
    assert _failed(copy, owner_secret), f"{place}/{encoding} passed the owner's check"
    if structural:
        assert _failed(copy), f"{place}/{encoding} passed the recipient's check"
