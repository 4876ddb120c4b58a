"""Attack (#13.5): secrets were stored in clear.

Fingerprinting keyed on a list of names, so ``pw``, ``passcode``, ``pincode``, ``key``,
``ticket``, a magic-link ``t=``, ``state=``, a token as a path segment, ``;password=`` matrix
parameters, ``code=``/``password=`` inside a Referer and a JWT in ``X-Id`` reached the
database and its WAL. Now secrets are found by name in every container and by shape (JWTs,
vendor prefixes, long random tokens), and URLs in header values are parsed like the request's.
"""

from urllib.parse import quote, unquote

import pytest
import sqlite_utils
from mitmproxy.test import tflow
from secretcorpus import ordinary_cases, secret_cases

from gazeback.capture.snapshot import snapshot_http
from gazeback.db import migrations
from gazeback.db.store import save_records, start_capture
from gazeback.pipeline import Context, process

KEY = b"k" * 32


def _record(case, i):
    f = tflow.tflow(resp=True)
    f.id = f"case-{i}"
    f.request.url = case.url
    for name, value in case.headers:
        f.request.headers[name] = value
    return process(snapshot_http(f), Context(KEY))


def _forms(value):
    return {value, quote(value, safe=""), quote(value, safe="/"), value.replace(" ", "+")}


@pytest.fixture(scope="module")
def stored(tmp_path_factory):
    """Every secret case through capture, redaction and a real store into a WAL database."""
    path = tmp_path_factory.mktemp("secrets") / "trail.db"
    db = sqlite_utils.Database(path)
    db.enable_wal()
    migrations.apply(db)
    capture = start_capture(db, "proxy", {})
    cases = secret_cases()
    save_records(db, capture, [_record(c, i) for i, c in enumerate(cases)])
    data = path.read_bytes() + path.with_name("trail.db-wal").read_bytes()  # before checkpoint
    db.close()
    return cases, data + path.read_bytes()


def test_secret_corpus_is_large_and_varied():
    cases = secret_cases()
    assert len(cases) >= 300 and len({c.shape for c in cases}) >= 30


def test_no_secret_of_the_corpus_is_stored_in_clear(stored):
    cases, data = stored
    text = data.decode("latin-1")
    leaked = sorted({c.shape for c in cases if any(f in text for f in _forms(c.value))})
    assert leaked == [], f"{len(leaked)} shapes stored in clear: {leaked}"


def _stored_text(record):
    obs = record.observation
    return "\n".join([obs.path or "", *(v for _, v in obs.request_headers)])


def test_ordinary_values_stay_readable():
    cases = ordinary_cases()
    hidden = []
    for i, c in enumerate(cases):
        text = _stored_text(_record(c, i))
        if not any(f in text or f in unquote(text) for f in _forms(c.value)):
            hidden.append(c.shape)
    assert len(hidden) / len(cases) <= 0.02, hidden[:10]
