"""The shared wire-format reader under both the adapter engine and the leak detector."""

from __future__ import annotations

import base64
import struct

import pytest

from gazeback.knowledge import learn
from gazeback.leaks import decode
from gazeback.wireformat import (
    MAX_FIELD_NUMBER,
    TooDeep,
    b64decode,
    fixed_float,
    fixed_int,
    json_loads,
    printable,
    protobuf_fields,
    read_varint,
    utf8,
)


def varint(v: int) -> bytes:
    out = bytearray()
    while True:
        b = v & 0x7F
        v >>= 7
        if v:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def key(number: int, wire: int) -> bytes:
    return varint(number << 3 | wire)


def ld(number: int, data: bytes) -> bytes:
    return key(number, 2) + varint(len(data)) + data


# -- varints ---------------------------------------------------------------------------------


@pytest.mark.parametrize("v", [0, 1, 127, 128, 300, 2**32, 2**63, 2**64 - 1])
def test_varint_round_trip(v: int) -> None:
    raw = varint(v) + b"\xff"
    assert read_varint(raw, 0) == (v, len(raw) - 1)


def test_truncated_varint_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="varint"):
        read_varint(b"\x80\x80", 0)
    with pytest.raises(ValueError, match="varint"):
        read_varint(b"", 0)


def test_an_eleven_byte_varint_is_refused() -> None:
    with pytest.raises(ValueError, match="varint"):
        read_varint(b"\xff" * 10 + b"\x01", 0)
    assert read_varint(b"\xff" * 9 + b"\x01", 0)[1] == 10  # ten bytes is the longest


# -- protobuf fields -----------------------------------------------------------------------------


def test_fields_in_order_with_raw_values() -> None:
    msg = (
        ld(1, b"Pixel 7")
        + key(2, 0)
        + varint(150)
        + key(3, 1)
        + struct.pack("<d", 52.5)
        + key(4, 5)
        + struct.pack("<f", 1.5)
        + key(2, 0)
        + varint(2**40)
    )
    fields = protobuf_fields(msg)
    assert [(n, w) for n, w, _ in fields] == [(1, 2), (2, 0), (3, 1), (4, 5), (2, 0)]
    assert fields[0][2] == b"Pixel 7"
    assert fields[1][2] == 150 and fields[4][2] == 2**40
    f64, f32 = fields[2][2], fields[3][2]
    assert isinstance(f64, bytes) and isinstance(f32, bytes)
    assert fixed_float(f64) == 52.5 and fixed_float(f32) == 1.5
    assert fixed_int(f64) == int.from_bytes(struct.pack("<d", 52.5), "little")


def test_empty_buffer_has_no_fields() -> None:
    assert protobuf_fields(b"") == []


@pytest.mark.parametrize(
    ("raw", "why"),
    [
        (key(1, 0) + b"\x80", "varint"),  # truncated varint value
        (key(1, 2) + varint(10) + b"abc", "truncated length-delimited"),
        (key(1, 1) + b"\x00" * 7, "truncated fixed64"),
        (key(1, 5) + b"\x00" * 3, "truncated fixed32"),
        (key(1, 3), "wire type 3"),  # start group: deprecated
        (key(1, 4), "wire type 4"),
        (key(1, 6), "wire type 6"),
        (key(1, 7), "wire type 7"),
        (key(0, 0) + b"\x01", "field number 0"),
        (key(MAX_FIELD_NUMBER + 1, 0) + b"\x01", "out of range"),
    ],
)
def test_not_protobuf(raw: bytes, why: str) -> None:
    with pytest.raises(ValueError, match=why):
        protobuf_fields(raw)
    assert decode.parse_protobuf(raw) is None
    with pytest.raises(ValueError):
        learn.parse_protobuf(raw)


def test_the_largest_field_number_is_read() -> None:
    assert protobuf_fields(key(MAX_FIELD_NUMBER, 0) + b"\x07") == [(MAX_FIELD_NUMBER, 0, 7)]


def test_field_budget() -> None:
    msg = (key(1, 0) + b"\x01") * 5
    assert len(protobuf_fields(msg, max_fields=5)) == 5
    with pytest.raises(ValueError, match="more than 4 fields"):
        protobuf_fields(msg, max_fields=4)


def test_nested_messages_each_reader_its_own_way() -> None:
    inner = key(1, 0) + varint(150) + key(2, 5) + struct.pack("<f", 2.5)
    msg = ld(4, inner) + ld(5, b"text")
    # length-delimited bytes are not looked into by the shared reader
    assert protobuf_fields(msg)[0] == (4, 2, inner)
    # the leak detector flattens to paths and reads fixed32 as a float
    assert decode.parse_protobuf(msg) == [("4.1", 0, 150), ("4.2", 5, 2.5), ("5", 2, b"text")]
    # the adapter engine keeps a tree and reads fixed32 as an unsigned integer
    got = learn.parse_protobuf(msg)
    assert got == {"4": {"1": 150, "2": fixed_int(struct.pack("<f", 2.5))}, "5": "text"}


def test_nesting_depth_limits() -> None:
    msg = key(1, 0) + b"\x01"
    for _ in range(40):
        msg = ld(1, msg)
    # leak detector: 8 levels of nesting, then the rest stays bytes
    flat = decode.parse_protobuf(msg)
    assert flat is not None and len(flat) == 1
    path, wire, value = flat[0]
    assert path.count(".") == decode.MAX_PROTO_NESTING and wire == 2
    # adapter engine: 32 levels, then bytes (a fixed32 of 0xff bytes keeps each level from being
    # UTF-8 text)
    msg = key(1, 0) + b"\x01"
    for _ in range(40):
        msg = ld(1, msg + key(2, 5) + b"\xff" * 4)
    node: object = learn.parse_protobuf(msg)
    depth = 0
    while isinstance(node, dict):
        node = node["1"]
        depth += 1
    assert depth == 33 and isinstance(node, bytes)


def test_text_or_nested_message_is_decided_per_reader() -> None:
    # b"\x08\x01" is valid UTF-8 and a valid message (field 1 = 1)
    msg = ld(3, b"\x08\x01")
    assert learn.parse_protobuf(msg) == {"3": "\x08\x01"}  # UTF-8 text first
    assert decode.parse_protobuf(msg) == [("3.1", 0, 1)]  # control characters: not text


def test_non_utf8_length_delimited_that_is_no_message_stays_bytes() -> None:
    msg = ld(2, b"\xff\xfe")
    assert learn.parse_protobuf(msg) == {"2": b"\xff\xfe"}
    assert decode.parse_protobuf(msg) == [("2", 2, b"\xff\xfe")]


# -- base64 --------------------------------------------------------------------------------------


@pytest.mark.parametrize("raw", [b"", b"a", b"ab", b"abc", b"abcd", bytes(range(256))])
def test_base64_with_and_without_padding(raw: bytes) -> None:
    std = base64.b64encode(raw).decode()
    url = base64.urlsafe_b64encode(raw).decode()
    for text in (std, std.rstrip("="), f"  {std}\n", std.rstrip("=") + "==="):
        assert b64decode(text, urlsafe=False) == raw
        assert b64decode(text) == raw
    for text in (url, url.rstrip("=")):
        assert b64decode(text, urlsafe=True) == raw
        assert b64decode(text) == raw
        assert b64decode(text.encode()) == raw


def test_not_base64() -> None:
    assert b64decode("abcde") is None  # one character over a group of four
    assert b64decode("ab!d") is None
    assert b64decode("ab=d") is None  # padding inside
    assert b64decode("ab-_", urlsafe=False) is None  # URL-safe characters in the standard alphabet
    assert b64decode("ab+/", urlsafe=True) == base64.b64decode("ab+/")  # mixed is accepted
    assert b64decode("ab!d", urlsafe=True) is None  # skipped silently by urlsafe_b64decode
    assert b64decode("ab\u00e9d") is None


def test_base64_in_both_readers() -> None:
    token = base64.urlsafe_b64encode(b'{"sub":"u1"}').decode().rstrip("=")
    jwt = f"eyJhbGciOiJub25lIn0.{token}."
    assert learn._jwt(jwt) == {"sub": "u1"}
    assert decode._b64decode(token) == b'{"sub":"u1"}'
    step = learn.Step("base64url", None)
    assert learn._transform(step, token + "!") is None


# -- JSON and text -------------------------------------------------------------------------------


def test_json() -> None:
    assert json_loads('{"a": [1, "x"]}') == {"a": [1, "x"]}
    assert json_loads(b"[1]") == [1]
    assert json_loads("3") == 3
    with pytest.raises(ValueError):
        json_loads("{nope")


@pytest.mark.parametrize(
    "text",
    [
        '{"a": 1, "a": 2}',
        "[NaN, Infinity, -Infinity]",
        "[1e400]",
        "[123456789012345678901234567890, -99999999999999999999]",
        '{"id": 18446744073709551615}',
        '"\\ud800"',
        '["\\u00e9", "\u00e9", -0.0, 0.1, 1E2]',
    ],
)
def test_json_is_what_the_standard_library_reads(text: str) -> None:
    import json

    want = json.dumps(json.loads(text))
    assert json.dumps(json_loads(text)) == want
    assert json.dumps(json_loads(text.encode("utf-8", "surrogatepass"))) == want


def test_json_too_deep() -> None:
    deep = "[" * 100_000 + "]" * 100_000
    with pytest.raises(TooDeep):
        json_loads(deep)
    assert learn._json(deep) is None
    d = decode.Decoder()
    assert d.json_text(deep, "body.json:", (), -1) is False
    assert d.out.truncated


def test_text_leaves() -> None:
    assert utf8("é".encode()) == "é"
    assert utf8(b"\xff") is None
    assert printable(b"line\tone\r\n") == "line\tone\r\n"
    assert printable(b"\x00abc") is None
    assert printable(b"\xc3") is None  # truncated UTF-8
    assert utf8(b"\x08\x01") == "\x08\x01" and printable(b"\x08\x01") is None
