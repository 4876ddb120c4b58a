import base64
import hashlib

import pytest
from mitmproxy.test import tflow

from gazeback.capture.snapshot import snapshot_http
from gazeback.capture.spill import encode
from gazeback.db.store import request_row
from gazeback.leaks.needles import build_profile
from gazeback.models import IdentityValue
from gazeback.pipeline import Context, process

KEY = b"k" * 32
EMAIL = "jane.doe@example.org"
PROFILE = build_profile([IdentityValue(1, "email", EMAIL)])


def run(url, headers=(), body=b""):
    f = tflow.tflow(resp=True)
    f.request.url = url
    for name, value in headers:
        f.request.headers[name] = value
    f.request.content = body
    return process(snapshot_http(f), Context(KEY, None, PROFILE))


@pytest.mark.parametrize(
    "sent",
    [EMAIL, "Jane.Doe@Example.org", EMAIL.upper(), hashlib.sha256(EMAIL.encode()).hexdigest()],
)
def test_identifier_in_query_is_found_and_not_stored(sent):
    record = run(f"http://t.example/p/{sent}/x?em={sent}&v=1")
    locations = {leak.location for leak in record.leaks}
    assert {"url.query:em", "url.path:1"} <= locations
    stored = str(request_row(record))
    assert sent not in stored and sent.lower() not in stored.lower()
    assert "/p/[leak:email]/x?em=[leak:email]&v=1" in record.observation.path


def test_identifier_in_header_is_found_and_not_stored():
    b64 = base64.b64encode(EMAIL.encode()).decode()
    record = run("http://t.example/p", headers=[("X-User", b64)])
    assert [leak.location for leak in record.leaks] == ["header:x-user"]
    assert ("X-User", "[leak:email]") in record.observation.request_headers
    assert b64 not in str(encode(record))
    assert "header:x-user" in record.observation.redacted_fields


def test_no_leak_leaves_the_request_as_sent():
    record = run("http://t.example/p?q=shoes")
    assert record.leaks == () and record.observation.path == "/p?q=shoes"
