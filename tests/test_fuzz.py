"""Hostile input through the whole pipeline: nothing escapes, budgets hold.

Bounded: a fixed number of generated examples per property (more in bench/fuzz.py).
"""

import gzip
import json
import zlib

import brotli
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mitmproxy.test import tflow

from gazeback.capture.snapshot import snapshot_http
from gazeback.capture.spill import decode, encode
from gazeback.db.store import request_row
from gazeback.knowledge.classify import load_index
from gazeback.leaks.needles import build_profile
from gazeback.models import IdentityValue
from gazeback.pipeline import Context, process

KEY = b"k" * 32
CONTEXT = Context(
    KEY,
    load_index(),
    build_profile([IdentityValue(1, "email", "jane.doe@example.org"),
                   IdentityValue(2, "phone", "+4915112345678")]),
)  # fmt: skip
FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))


def flow(path=b"/", headers=(), body=b"", host="t.example", content_type=None):
    f = tflow.tflow(resp=True)
    f.request.host = host
    f.request.headers.fields = tuple(headers)
    if content_type:
        f.request.headers["content-type"] = content_type
    f.request.path = path.decode("utf-8", "surrogateescape")
    f.request.raw_content = body
    return f


def run(f):
    record = process(snapshot_http(f), CONTEXT)
    line = json.dumps(encode(record))  # what the store and the spill file must be able to write
    assert request_row(decode(json.loads(line))) == request_row(record)  # and read back
    return record


@FUZZ
@given(
    path=st.binary(max_size=3000),
    headers=st.lists(st.tuples(st.binary(min_size=1, max_size=40), st.binary(max_size=300)),
                     max_size=40),
    body=st.binary(max_size=5000),
    content_type=st.sampled_from([None, "application/json", "application/x-www-form-urlencoded",
                                  "multipart/form-data; boundary=x", "application/x-protobuf",
                                  "text/plain", "application/grpc"]),
    host=st.text(max_size=80),
)  # fmt: skip
def test_random_requests_never_raise(path, headers, body, content_type, host):
    run(flow(b"/" + path, [(k.replace(b":", b"x"), v) for k, v in headers], body, host or "h",
             content_type))  # fmt: skip


@FUZZ
@given(st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=50),
    lambda children: st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=10), children, max_size=5),
    max_leaves=200,
))  # fmt: skip
def test_random_json_bodies_never_raise(doc):
    run(flow(b"/j", body=json.dumps(doc).encode(), content_type="application/json"))


def test_deep_json_is_cut_and_marked():
    deep = b'{"a":' * 50_000 + b"1" + b"}" * 50_000
    record = run(flow(b"/deep", body=deep, content_type="application/json"))
    assert record.decode_truncated


def test_ten_thousand_parameters():
    qs = "&".join(f"k{i}=v{i}" for i in range(10_000)).encode()
    record = run(flow(b"/q?" + qs))
    assert record.decode_truncated
    assert len(record.observation.path) <= 4096


def test_huge_headers():
    record = run(
        flow(b"/h", [(b"X-Big", b"x" * 1_000_000)] + [(b"X-%d" % i, b"v") for i in range(1000)])
    )
    assert all(len(v) <= 2048 for _, v in record.observation.request_headers)


def test_decompression_bombs_are_bounded():
    one_gb_gzip = gzip.compress(b"\0" * (64 * 1024 * 1024), compresslevel=9) * 16  # 1 GiB out
    assert len(one_gb_gzip) < 2_000_000
    for encoding, body in (
        ("gzip", one_gb_gzip),
        ("deflate", zlib.compress(b"\0" * (256 * 1024 * 1024), 9)),
        ("br", brotli.compress(b"\0" * (256 * 1024 * 1024), quality=1)),
    ):
        record = run(flow(b"/bomb", [(b"Content-Encoding", encoding.encode())], body,
                          content_type="application/json"))  # fmt: skip
        assert record.decode_truncated, encoding


def test_invalid_utf8_and_control_bytes_are_stored_safely():
    record = run(flow(b"/\xff\xfe\x00caf\xe9?q=\xc3\x28", [(b"X-Bin", b"\x00\x01\xff")]))
    row = request_row(record)
    json.dumps(encode(record))
    assert "\x00" not in json.dumps(row["request_headers"])
