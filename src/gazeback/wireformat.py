"""Reading wire formats without a schema: protobuf fields, base64, JSON and UTF-8 text leaves.

The lowest layer under both readers of request content: the adapter engine
(``gazeback.knowledge.learn``, which follows an adapter's paths) and the leak detector
(``gazeback.leaks.decode``, which walks every leaf). They shape what they read differently (a
dict keyed by field number, a flat list of leaf paths) and decide differently when a
length-delimited field is text or a nested message, but the bytes-level reading is the same and
lives here once: pure functions, no state, bounded; what is not the format is None or a
``ValueError`` (as each function says), never another exception.

Decisions where the two old copies differed (each reader keeps its own choice of text vs nested
message and of integer vs float for fixed fields: ``tests/test_wireformat.py`` shows both):

- field numbers outside 1 … 2**29 - 1 (the protobuf range) make a buffer "not protobuf" for both
  (the adapter engine accepted any number above 0);
- a varint longer than 10 bytes, a truncated field, and wire types 3, 4, 6 and 7 (groups are
  deprecated and not sent by the SDKs we read) make it "not protobuf" for both (as before);
- base64 ignores surrounding whitespace and any number of trailing ``=`` and needs no padding; a
  length that leaves 1 character over, or a character outside the alphabet, is "not base64", also
  in the URL-safe alphabet (``urlsafe_b64decode`` skipped such characters silently).
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import struct

import orjson

MAX_FIELD_NUMBER = (1 << 29) - 1
"""The largest protobuf field number."""

WIRE_VARINT, WIRE_FIXED64, WIRE_LEN, WIRE_FIXED32 = 0, 1, 2, 5

_CONTROL = re.compile(r"[\x00-\x08\x0e-\x1f\x7f]")
_URLSAFE = bytes.maketrans(b"-_", b"+/")


# -- protobuf ----------------------------------------------------------------------------------


def read_varint(buf: bytes, i: int) -> tuple[int, int]:
    """The varint at ``buf[i:]`` and the offset after it; ValueError when truncated or longer
    than 10 bytes."""
    result = shift = 0
    n = len(buf)
    while True:
        if i >= n or shift > 63:
            raise ValueError("truncated or overlong varint")
        b = buf[i]
        i += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, i
        shift += 7


def protobuf_fields(
    buf: bytes, max_fields: int | None = None
) -> list[tuple[int, int, bytes | int]]:
    """The top-level fields of a protobuf message, in order: (field number, wire type, value).

    The value is an int for a varint (wire type 0), the raw 8 or 4 little-endian bytes for
    fixed64/fixed32 (1, 5: :func:`fixed_int` or :func:`fixed_float` read them) and the bytes of a
    length-delimited field (2), not looked into. ValueError unless the whole buffer parses
    exactly, or when it holds more than ``max_fields`` fields.
    """
    fields: list[tuple[int, int, bytes | int]] = []
    append = fields.append
    i, n = 0, len(buf)
    while i < n:
        if max_fields is not None and len(fields) >= max_fields:
            raise ValueError(f"more than {max_fields} fields")
        b = buf[i]
        if b < 0x80:  # a one-byte tag (field numbers 1-15): most of them
            tag, i = b, i + 1
        else:
            tag, i = read_varint(buf, i)
        number, wire = tag >> 3, tag & 7
        if not 1 <= number <= MAX_FIELD_NUMBER:
            raise ValueError(f"field number {number} out of range")
        if wire == WIRE_VARINT:
            if i < n and buf[i] < 0x80:
                value: bytes | int = buf[i]
                i += 1
            else:
                value, i = read_varint(buf, i)
        elif wire == WIRE_LEN:
            size, i = read_varint(buf, i)
            if i + size > n:
                raise ValueError("truncated length-delimited field")
            value = buf[i : i + size]
            i += size
        elif wire == WIRE_FIXED64:
            if i + 8 > n:
                raise ValueError("truncated fixed64")
            value = buf[i : i + 8]
            i += 8
        elif wire == WIRE_FIXED32:
            if i + 4 > n:
                raise ValueError("truncated fixed32")
            value = buf[i : i + 4]
            i += 4
        else:
            raise ValueError(f"unsupported wire type {wire}")
        append((number, wire, value))
    return fields


def fixed_int(raw: bytes) -> int:
    """A fixed64/fixed32 field as an unsigned integer (IDs travel that way)."""
    return int.from_bytes(raw, "little")


def fixed_float(raw: bytes) -> float:
    """A fixed64/fixed32 field as a double/float (coordinates travel that way)."""
    value: float = struct.unpack("<d" if len(raw) == 8 else "<f", raw)[0]
    return value


# -- base64 ------------------------------------------------------------------------------------


def b64decode(text: str | bytes, urlsafe: bool | None = None) -> bytes | None:
    """Base64 text → its bytes, or None when it is not base64.

    ``urlsafe``: True for the URL-safe alphabet (``-_``), False for the standard one (``+/``),
    None to accept either (a ``-`` or ``_`` makes it URL-safe). Padding is optional.
    """
    s = text.strip() if isinstance(text, bytes) else text.strip().encode("ascii", "replace")
    s = s.rstrip(b"=")
    if len(s) % 4 == 1:
        return None
    if urlsafe or (urlsafe is None and (b"-" in s or b"_" in s)):
        s = s.translate(_URLSAFE)
    s += b"=" * (-len(s) % 4)
    try:
        return base64.b64decode(s, validate=True)
    except (binascii.Error, ValueError):
        return None


# -- JSON and text leaves ------------------------------------------------------------------------


class TooDeep(ValueError):
    """A JSON document nested deeper than the parser goes."""


_LONG_DIGITS = re.compile(r"\d{19}")
_LONG_DIGITS_B = re.compile(rb"\d{19}")


def json_loads(text: str | bytes) -> object:
    """A JSON document (object, array or scalar); ValueError when it is not JSON, :class:`TooDeep`
    when it is nested too deep to parse.

    Parsed by orjson (several times faster), with the standard library's ``json`` as the
    reference: a document orjson refuses (``NaN``, ``Infinity``, numbers out of double range, lone
    surrogates, nesting past 1,024) or one holding a run of 19 or more digits (orjson reads an
    integer past 64 bits as a float, which would change an ID) is parsed by ``json`` instead:
    whenever ``json.loads`` returns a document, this returns the same one."""
    long = _LONG_DIGITS_B if isinstance(text, bytes) else _LONG_DIGITS
    if long.search(text) is None:  # type: ignore[arg-type]
        try:
            return orjson.loads(text)
        except orjson.JSONDecodeError:
            pass
    try:
        return json.loads(text)
    except RecursionError:
        raise TooDeep("JSON nested too deep") from None


def utf8(raw: bytes) -> str | None:
    """The bytes as UTF-8 text, or None."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return None


def printable(raw: bytes) -> str | None:
    """The bytes as text when they are UTF-8 without control characters (tab, newlines and form
    feed allowed), else None: what tells text from binary in a decoded leaf."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return None
    if _CONTROL.search(text):
        return None
    return text
