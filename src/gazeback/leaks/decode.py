"""A request → its decoded leaves, each with the path it came from (pure, bounded).

Design (a) D of the leak detector (``docs/leak-detection.md``): query, path, cookies, headers, JWT, JSON,
form, multipart, XML text, gzip/deflate/brotli/zstd bodies, base64 and hex strings and
schema-less protobuf. Every string leaf is re-decoded when it looks like an encoding, up
to ``max_depth`` layers. A flow that would expand past ``max_bytes`` of text or
``max_leaves`` leaves is cut there and reported as truncated: never an exception,
never a runaway.
"""

from __future__ import annotations

import io
import re
import zlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import NamedTuple
from urllib.parse import parse_qsl, unquote

# Imported here, not when a body needs them: a missing decoder stops gazeback at start instead
# of leaving every br or zstd body unread (both are declared dependencies).
import brotli
import zstandard

from gazeback.wireformat import TooDeep, fixed_float, json_loads, protobuf_fields
from gazeback.wireformat import b64decode as _b64decode
from gazeback.wireformat import printable as _printable

MAX_BYTES = 2_000_000
MAX_LEAVES = 10_000
MAX_DEPTH = 4
MAX_JSON_NESTING = 64
MAX_PROTO_NESTING = 8

_B64 = re.compile(r"[A-Za-z0-9+/_-]{8,}={0,2}")
_HEX = re.compile(r"(?:[0-9a-fA-F]{2}){8,}")
_PCT = re.compile(r"%[0-9A-Fa-f]{2}")
_JWT = re.compile(r"(eyJ[A-Za-z0-9_-]+)\.(eyJ[A-Za-z0-9_-]+)\.([A-Za-z0-9_-]*)")
_FORM = re.compile(r"[^=&\s]+=[^&\s]*(?:&[^=&\s]+=[^&\s]*)+")
_XML_TEXT = re.compile(r">([^<]{1,4096})<|=\"([^\"]{1,4096})\"")


def safe_key(key: object) -> str:
    """A key name fit to be stored in a location: names that look like values become ``*``.

    Some payloads key objects by e-mail, phone or device ID (``{"jane@x.org": {...}}``);
    the location must not carry them.
    """
    k = key if type(key) is str else str(key)
    if k in _SAFE_KEYS:  # key names repeat across leaves and requests
        return k
    if len(k) > 32 or "@" in k or sum(c.isdigit() for c in k) >= 6 or _HEX.fullmatch(k):
        return "*"
    if len(_SAFE_KEYS) >= 20_000:
        _SAFE_KEYS.clear()
    _SAFE_KEYS.add(k)  # only names that pass: nothing value-like is kept in memory
    return k


_SAFE_KEYS: set[str] = set()


class Leaf(NamedTuple):
    location: str  # e.g. "url.query:ud[em]", "body.json:$.user.email", "header:x-device-id"
    text: str  # str, or bytes as latin-1 when ``binary``
    steps: tuple[str, ...] = ()  # decodings applied to reach it, outermost first
    key: str = ""  # the name it sat under, lower-case ("em", "email", "x-device-id")
    binary: bool = False
    parent: int = -1  # index of the leaf it was decoded from


_new_leaf = tuple.__new__  # Leaf(...) without the generated __new__'s extra call


@dataclass
class Decoded:
    leaves: list[Leaf] = field(default_factory=list)
    truncated: bool = False
    used: int = 0


class Decoder:
    """Collects the leaves of one request under the budgets."""

    def __init__(
        self, max_bytes: int = MAX_BYTES, max_leaves: int = MAX_LEAVES, max_depth: int = MAX_DEPTH
    ) -> None:
        self.max_bytes, self.max_leaves, self.max_depth = max_bytes, max_leaves, max_depth
        self.out = Decoded()
        self.seen: set[tuple[str, tuple[str, ...]]] = set()  # (text, steps) already re-decoded

    # -- budget --------------------------------------------------------------------------
    def room(self) -> int:
        return self.max_bytes - self.out.used

    def _cut(self) -> None:
        self.out.truncated = True

    def leaf(
        self,
        location: str,
        text: str,
        steps: tuple[str, ...] = (),
        key: str = "",
        binary: bool = False,
        parent: int = -1,
    ) -> None:
        """Record one leaf, then try to decode it further."""
        out = self.out
        leaves = out.leaves
        index = len(leaves)
        if index >= self.max_leaves:
            return self._cut()
        size = len(text)
        if size > self.max_bytes - out.used:
            self._cut()
            text = text[: max(self.room(), 0)]
            if not text:
                return
            size = len(text)
        out.used += size
        leaves.append(_new_leaf(Leaf, (location, text, steps, key, binary, parent)))
        if size >= 8 and not binary and len(steps) < self.max_depth:
            # SDK batches repeat the same IDs in every event: decode a value once per request
            seen = (text, steps)
            if seen not in self.seen:
                self.seen.add(seen)
                self._redecode(index, location, text, steps, key)

    def _redecode(self, index: int, loc: str, text: str, steps: tuple[str, ...], key: str) -> None:
        s = text.strip()
        first = s[:1]
        if first in "{[" and s[-1:] in "}]":
            if self.json_text(s, loc + ">", steps + ("json",), index):
                return
        if first == "e" and (m := _JWT.fullmatch(s)):
            for part, name in ((m.group(1), "header"), (m.group(2), "payload")):
                raw = _b64decode(part)
                if raw is not None:
                    self.json_text(
                        raw.decode("utf-8", "replace"),
                        f"{loc}>jwt.{name}:",
                        steps + ("jwt",),
                        index,
                    )
            return
        if "%" in s and _PCT.search(s):
            self.leaf(loc, unquote(s), steps + ("pct",), key, parent=index)
            return
        if "=" in s and "&" in s and _FORM.fullmatch(s):
            for k, v in parse_qsl(s, keep_blank_values=True)[: self.max_leaves]:
                self.leaf(
                    f"{loc}>form:{safe_key(k)}", v, steps + ("form",), k.lower(), parent=index
                )
            return
        if _HEX.fullmatch(s):
            raw = bytes.fromhex(s)
            text2 = _printable(raw)
            if text2 is not None:
                self.leaf(loc, text2, steps + ("hex",), key, parent=index)
            return
        if _B64.fullmatch(s):
            raw = _b64decode(s)
            if raw is not None and len(raw) >= 6:
                self.bytes_(raw, loc, steps + ("b64",), key, index, strict=True)

    # -- containers ----------------------------------------------------------------------
    def json_text(self, s: str, prefix: str, steps: tuple[str, ...], parent: int) -> bool:
        try:
            doc = json_loads(s)
        except TooDeep:  # nested deeper than the parser allows
            self._cut()
            return False
        except ValueError:
            return False
        if not isinstance(doc, dict | list):
            return False
        self.json_value(doc, prefix + "$", steps, parent)
        return True

    def json_value(self, doc: object, path: str, steps: tuple[str, ...], parent: int) -> None:
        self._json(doc, path, "", 0, steps, parent)

    def _json(
        self, value: object, p: str, key: str, depth: int, steps: tuple[str, ...], parent: int
    ) -> bool:
        """Depth-first, in document order; False once the leaf budget is spent (stop)."""
        if depth > MAX_JSON_NESTING:
            self._cut()
            return True
        out = self.out
        leaves = out.leaves
        if isinstance(value, dict):
            if len(leaves) >= self.max_leaves:
                self._cut()
                return False
            seen, short = self.seen, len(steps) >= self.max_depth
            for k, v in value.items():
                sk = k if k in _SAFE_KEYS else safe_key(k)
                lk = k.lower() if type(k) is str else str(k).lower()
                if type(v) is str and depth < MAX_JSON_NESTING:  # the common case, inline
                    size = len(v)
                    if (
                        len(leaves) < self.max_leaves
                        and size <= self.max_bytes - out.used
                        and (size < 8 or short or (v, steps) in seen)
                    ):  # what self.leaf would do: record it, nothing to re-decode
                        out.used += size
                        leaves.append(_new_leaf(Leaf, (f"{p}.{sk}", v, steps, lk, False, parent)))
                    else:
                        self.leaf(f"{p}.{sk}", v, steps, lk, False, parent)
                    if len(leaves) >= self.max_leaves:
                        self._cut()
                        return False
                elif not self._json(v, f"{p}.{sk}", lk, depth + 1, steps, parent):
                    return False
            return True
        if isinstance(value, list):
            if len(leaves) >= self.max_leaves:
                self._cut()
                return False
            for i, v in enumerate(value):
                if not self._json(v, f"{p}[{i}]", key, depth + 1, steps, parent):
                    return False
            return True
        if isinstance(value, str):
            self.leaf(p, value, steps, key, False, parent)
        elif isinstance(value, bool) or value is None:
            return True
        else:  # int or float: IDs and coordinates travel as numbers too
            self.leaf(p, repr(value), steps, key, False, parent)
        if len(leaves) >= self.max_leaves:
            self._cut()
            return False
        return True

    def form(self, s: str, prefix: str, steps: tuple[str, ...], parent: int = -1) -> None:
        for k, v in parse_qsl(s, keep_blank_values=True)[: self.max_leaves + 1]:
            self.leaf(f"{prefix}{safe_key(k)}", v, steps, k.lower(), parent=parent)

    def bytes_(
        self,
        raw: bytes,
        loc: str,
        steps: tuple[str, ...],
        key: str,
        parent: int,
        strict: bool = False,
        content_type: str = "",
    ) -> None:
        """Bytes of unknown shape: sniff magic, text, JSON, form, protobuf, else binary."""
        if len(steps) > self.max_depth:
            return self._cut()
        if raw[:2] == b"\x1f\x8b" or raw[:1] == b"\x78":
            inflated = self.inflate(raw)
            if inflated is not None:
                return self.bytes_(
                    inflated, loc, steps + ("gzip",), key, parent, False, content_type
                )
        if raw[:4] == b"\x28\xb5\x2f\xfd":
            out = self.unzstd(raw)
            if out is not None:
                return self.bytes_(out, loc, steps + ("zstd",), key, parent, False, content_type)
        text = _printable(raw)
        if text is not None:
            if strict:  # decoded from base64: a leaf of its own, re-decoded from there
                return self.leaf(loc, text, steps, key, parent=parent)
            return self.text_body(text, loc, steps, key, parent, content_type)
        fields = parse_protobuf(raw)
        if fields is not None and fields:
            return self.protobuf(fields, loc, steps, parent)
        if not strict:
            where = _kind(loc, "binary")
            self.leaf(where, raw.decode("latin-1"), steps, key, binary=True, parent=parent)

    def text_body(
        self, text: str, loc: str, steps: tuple[str, ...], key: str, parent: int, ctype: str
    ) -> None:
        s = text.strip()
        if ("json" in ctype or s[:1] in "{[") and self.json_text(
            s, _kind(loc, "json"), steps, parent
        ):
            return
        if "x-www-form-urlencoded" in ctype or ("=" in s and _FORM.fullmatch(s)):
            return self.form(s, _kind(loc, "form"), steps, parent)
        if "xml" in ctype or s.startswith("<"):
            for m in _XML_TEXT.finditer(s):
                self.leaf(_kind(loc, "xml"), m.group(1) or m.group(2), steps, "", parent=parent)
                if self.out.truncated:
                    return
            return
        self.leaf(_kind(loc, "text"), text, steps, key, parent=parent)

    def protobuf(
        self, fields: list[tuple[str, int, object]], loc: str, steps: tuple[str, ...], parent: int
    ) -> None:
        base = _kind(loc, "protobuf")
        for path, wire, value in fields:
            where = f"{base}{path}"
            if wire == 2 and isinstance(value, bytes):
                text = _printable(value)
                if text is not None:
                    self.leaf(where, text, steps, path, parent=parent)
                elif value:
                    self.leaf(where, value.decode("latin-1"), steps, path, True, parent)
            elif wire in (1, 5) and isinstance(value, float):
                self.leaf(where, _fmt_float(value, wire), steps, path, parent=parent)
            else:
                self.leaf(where, str(value), steps, path, parent=parent)
            if self.out.truncated and len(self.out.leaves) >= self.max_leaves:
                return

    # -- decompression (bounded) ---------------------------------------------------------
    def inflate(self, raw: bytes) -> bytes | None:
        for wbits in (47, -15):  # gzip or zlib (auto), then raw deflate
            d = zlib.decompressobj(wbits)
            try:
                out = d.decompress(raw, self.room() + 1)
            except zlib.error:
                continue
            if len(out) > self.room() or d.unconsumed_tail:
                self._cut()
                out = out[: self.room()]
            return out
        return None

    def unbrotli(self, raw: bytes) -> bytes | None:
        d = brotli.Decompressor()
        parts: list[bytes] = []
        size = 0
        try:
            for i in range(0, len(raw), 64):  # small steps: a bomb cannot run far past the budget
                chunk = d.process(raw[i : i + 64])
                parts.append(chunk)
                size += len(chunk)
                if size > self.room():
                    self._cut()
                    break
        except brotli.error:
            if not parts:
                return None
        return b"".join(parts)[: self.room()]

    def unzstd(self, raw: bytes) -> bytes | None:
        try:
            reader = zstandard.ZstdDecompressor().stream_reader(io.BytesIO(raw))
            out = reader.read(self.room() + 1)
        except zstandard.ZstdError:
            return None
        if len(out) > self.room():
            self._cut()
            out = out[: self.room()]
        return out

    def content_decode(self, body: bytes, encoding: str) -> tuple[bytes, tuple[str, ...]] | None:
        steps: list[str] = []
        for enc in reversed([e.strip().lower() for e in encoding.split(",") if e.strip()]):
            out: bytes | None
            if enc in ("gzip", "x-gzip", "deflate"):
                out = self.inflate(body)
            elif enc == "br":
                out = self.unbrotli(body)
            elif enc == "zstd":
                out = self.unzstd(body)
            elif enc == "identity":
                continue
            else:
                return None
            if out is None:
                return None
            body = out
            steps.append("gzip" if enc == "x-gzip" else enc)
        return body, tuple(steps)


def _kind(loc: str, kind: str) -> str:
    """Where a part sits: ``body`` → ``body.json:`` or ``body.text``; nested: ``...>json:``."""
    whole = kind in ("text", "xml", "binary")  # the leaf is the whole part: no path follows
    if loc == "body":
        return f"body.{kind}" if whole else f"body.{kind}:"
    if whole:
        return loc
    if loc.startswith("body.multipart") and ">" not in loc:
        return f"{loc}.{kind}:"
    return f"{loc}>{kind}:"


def _fmt_float(value: float, wire: int) -> str:
    if value != value or value in (float("inf"), float("-inf")):
        return "nan"
    return f"{value:.7g}" if wire == 5 else repr(value)


def parse_protobuf(
    buf: bytes, prefix: str = "", depth: int = 0
) -> list[tuple[str, int, object]] | None:
    """Schema-less protobuf walk: (field path, wire type, value), or None unless it parses exactly.

    Length-delimited fields are parsed as nested messages when they are not printable text and
    parse exactly; fixed64/fixed32 are read as double/float (coordinates travel that way).
    """
    try:
        top = protobuf_fields(buf, MAX_LEAVES + 1)  # too many to walk: scanned as raw bytes instead
    except ValueError:
        return None
    fields: list[tuple[str, int, object]] = []
    for number, wire, value in top:
        if len(fields) > MAX_LEAVES:  # nested fields count too
            return None
        path = f"{prefix}{number}"
        if wire == 2:
            assert isinstance(value, bytes)
            nested = None
            if depth < MAX_PROTO_NESTING and value and _printable(value) is None:
                nested = parse_protobuf(value, path + ".", depth + 1)
            if nested:
                fields.extend(nested)
            else:
                fields.append((path, 2, value))
        elif wire == 0:
            fields.append((path, 0, value))
        else:
            assert isinstance(value, bytes)
            fields.append((path, wire, fixed_float(value)))
    return fields


def grpc_messages(body: bytes) -> Iterable[tuple[bool, bytes]]:
    """gRPC length-prefixed frames: (compressed?, message)."""
    i = 0
    while i + 5 <= len(body):
        flag, length = body[i], int.from_bytes(body[i + 1 : i + 5], "big")
        yield bool(flag), body[i + 5 : i + 5 + length]
        i += 5 + length
