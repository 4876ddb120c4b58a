"""What a tracker learned from one request: per-endpoint adapters, read from data files.

An adapter (``knowledge/adapters/<company>.yaml``, format in docs/what-they-learned.md) names the
endpoints it understands (host, path regex, methods), how the body is read, and for each property of
the TrackHAR vocabulary (``advertisingId``, ``model``, ``viewedPage`` ...) the paths where the value
sits, with the reason the claim holds. This module loads and validates those files (once, cached),
indexes endpoints by host so that a request no adapter matches costs a few dictionary lookups, and
evaluates paths. It does no I/O besides reading the adapter files and stores nothing.
"""

from __future__ import annotations

import json
import re
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any, NamedTuple
from urllib.parse import parse_qsl, unquote

import yaml

from gazeback.wireformat import b64decode, fixed_int, json_loads, protobuf_fields, utf8

ADAPTER_PACKAGE = "gazeback.knowledge"
ADAPTER_DIR = "adapters"
VOCABULARY_FILE = "trackhar-properties.txt"

CONTAINERS = ("query", "body", "header", "cookie", "path")
BODY_MODES = ("auto", "json", "form", "ndjson", "text", "gzip+json", "protobuf", "none")
TRANSFORMS = ("json", "form", "base64", "base64url", "urldecode", "jwt", "gunzip", "protobuf")
HTTP_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS")
MAX_BODY = 2 * 1024 * 1024  # bytes of a (decompressed) body an adapter reads
MAX_VALUE = 4096  # longest text value a path yields (the store bounds it further)

_ID_RE = re.compile(r"^[a-z0-9]+(-[a-z0-9]+)*$")
_HOST_RE = re.compile(r"^(\*\.)?[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)+$")


class AdapterError(ValueError):
    """An adapter file that does not follow the format: the message says file, adapter and field."""


class Found(NamedTuple):
    """One property a request carried: which adapter said so, where, and the value (as text)."""

    adapter: str
    property: str
    location: str  # the concrete path, e.g. "body.events.0.device.ifa", "query.cid"
    value: str


@dataclass(frozen=True)
class Request:
    """The parts of a request adapters read. ``path`` has no query string; header names are lower-case."""

    method: str
    host: str
    path: str
    query: tuple[tuple[str, str], ...] = ()
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes | None = None


# -- paths -------------------------------------------------------------------------------------


class Step(NamedTuple):
    kind: str  # "key", "index", "star" or a transform name
    arg: str | int | None = None


@dataclass(frozen=True)
class PropertyPath:
    text: str
    container: str
    steps: tuple[Step, ...]


def parse_path(text: str) -> PropertyPath:
    """``query.sr|split:x|0`` → container ``query``, steps [key sr, split x, index 0].

    Raises ValueError with what is wrong."""
    if not isinstance(text, str) or not text:
        raise ValueError("a path must be a non-empty string")
    tokens: list[tuple[str, str, bool]] = []  # (separator before, token, was quoted)
    i, n, sep = 0, len(text), ""
    while i <= n:
        quoted = False
        if i < n and text[i] == '"':
            end = text.find('"', i + 1)
            if end < 0:
                raise ValueError(f"unclosed quote in path {text!r}")
            tok = text[i + 1 : end]
            quoted = True
            i = end + 1
        elif text.startswith("split:", i) and sep == "|":
            j = i + len("split:")
            if j < n and text[j] == '"':
                end = text.find('"', j + 1)
                if end < 0:
                    raise ValueError(f"unclosed quote in path {text!r}")
                tok = "split:" + text[j + 1 : end]
                i = end + 1
            else:
                end = j
                while end < n and text[end] not in ".|":
                    end += 1
                tok = text[i:end]
                i = end
        else:
            end = i
            while end < n and text[end] not in ".|":
                end += 1
            tok = text[i:end]
            i = end
        tokens.append((sep, tok, quoted))
        if i >= n:
            break
        if text[i] not in ".|":
            raise ValueError(f"expected '.' or '|' after a quoted key in path {text!r}")
        sep = text[i]
        i += 1
        if i == n:
            raise ValueError(f"path {text!r} ends with {sep!r}")
    container = tokens[0][1]
    if tokens[0][2] or container not in CONTAINERS:
        raise ValueError(f"path {text!r} must start with one of {', '.join(CONTAINERS)}")
    if len(tokens) < 2:
        raise ValueError(f"path {text!r} names no key inside {container}")
    steps: list[Step] = []
    for sep, tok, quoted in tokens[1:]:
        if not tok and not quoted:
            raise ValueError(f"path {text!r} has an empty key")
        if quoted:
            steps.append(Step("key", tok))
        elif sep == "|" and tok.startswith("split:"):
            arg = tok[len("split:") :].replace("\\n", "\n").replace("\\t", "\t")
            if not arg:
                raise ValueError(f"path {text!r}: split needs a separator (split:SEP)")
            steps.append(Step("split", arg))
        elif sep == "|" and tok in TRANSFORMS:
            steps.append(Step(tok))
        elif tok == "*":
            steps.append(Step("star"))
        elif tok.isdigit():
            steps.append(Step("index", int(tok)))
        elif sep == "|" and not steps:
            raise ValueError(f"path {text!r}: unknown transform {tok!r} after {container!r}")
        elif sep == "|" and steps and steps[-1].kind not in TRANSFORMS + ("split",):
            # after a key, '|' starts a transform; after a transform, keys may follow '|' or '.'
            raise ValueError(
                f"path {text!r}: unknown transform {tok!r} (known: {', '.join(TRANSFORMS)}, split:SEP)"
            )
        else:
            steps.append(Step("key", tok))
    if container == "path" and steps[0].kind != "index" and steps[0].kind != "star":
        raise ValueError(f"path {text!r}: a URL path segment is a number (path.2) or *")
    return PropertyPath(text=text, container=container, steps=tuple(steps))


def _location_part(step: Step, actual: object) -> str | None:
    if step.kind in ("key", "index", "star"):
        s = str(actual)
        if "." in s or "|" in s:
            return f'"{s}"'
        return s
    return None


def _as_text(value: object) -> str | None:
    """A leaf as text; containers and absent values yield nothing."""
    if value is None:
        return None
    if isinstance(value, str):
        return value[:MAX_VALUE]
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return json.dumps(value)
    if isinstance(value, bytes):
        try:
            return value.decode("utf-8")[:MAX_VALUE]
        except UnicodeDecodeError:
            return value.hex()[:MAX_VALUE]
    return None


def value_text(value: object) -> str:
    """How an example file's expected value compares: the text the engine would yield."""
    text = _as_text(value)
    return text if text is not None else json.dumps(value)


def _text_of(value: object) -> str | None:
    if isinstance(value, str):
        return value
    if isinstance(value, bytes):
        return utf8(value)
    return None


def _bytes_text(raw: bytes) -> str | bytes:
    text = utf8(raw)
    return raw if text is None else text


def _b64(value: object, urlsafe: bool) -> object:
    text = _text_of(value)
    if text is None:
        return None
    raw = b64decode(text, urlsafe)
    return None if raw is None else _bytes_text(raw)


def _gunzip(value: object) -> object:
    raw = value if isinstance(value, bytes) else None
    if raw is None and isinstance(value, str):
        raw = value.encode("latin-1", "replace")
    if raw is None:
        return None
    try:
        d = zlib.decompressobj(wbits=47)  # gzip or zlib header
        out = d.decompress(raw, MAX_BODY)
    except zlib.error:
        return None
    return _bytes_text(out)


def _json(value: object) -> object:
    if isinstance(value, (dict, list)):
        return value
    text = _text_of(value)
    if text is None:
        return None
    try:
        return json_loads(text)
    except ValueError:  # TooDeep too
        return None


def _form(value: object) -> object:
    text = _text_of(value)
    if text is None:
        return None
    out: dict[str, str] = {}
    for k, v in parse_qsl(text, keep_blank_values=True):
        out.setdefault(k, v)
    return out or None


def _jwt(value: object) -> object:
    text = _text_of(value)
    if text is None:
        return None
    parts = text.strip().split(".")
    if len(parts) != 3:
        return None
    payload = _b64(parts[1], urlsafe=True)
    got = _json(payload)
    return got if isinstance(got, dict) else None


def parse_protobuf(buf: bytes, depth: int = 0) -> dict[str, Any]:
    """Raw protobuf without a schema: field number (as text) → value; repeated fields → lists.

    Length-delimited fields are text when the bytes are UTF-8, else a nested message when they parse
    as one, else the bytes; fixed64/fixed32 are unsigned integers. Raises ValueError when ``buf``
    is not a protobuf message."""
    out: dict[str, Any] = {}
    for number, wire, raw in protobuf_fields(buf):
        value: Any = raw
        if wire == 2:
            assert isinstance(raw, bytes)
            text = utf8(raw)
            if text is not None:
                value = text
            elif depth < 32:
                try:
                    value = parse_protobuf(raw, depth + 1)
                except ValueError:
                    pass
        elif wire != 0:
            assert isinstance(raw, bytes)
            value = fixed_int(raw)
        key = str(number)
        if key in out:
            prev = out[key]
            if isinstance(prev, list) and getattr(prev, "_repeated", False):
                prev.append(value)
            else:
                out[key] = _Repeated([prev, value])
        else:
            out[key] = value
    return out


class _Repeated(list[Any]):
    _repeated = True


def _protobuf(value: object) -> object:
    raw = value.encode("utf-8") if isinstance(value, str) else value
    if not isinstance(raw, bytes):
        return None
    try:
        return parse_protobuf(raw) or None
    except ValueError:
        return None


def _transform(step: Step, value: object) -> object:
    kind = step.kind
    if kind == "json":
        return _json(value)
    if kind == "form":
        return _form(value)
    if kind == "base64":
        return _b64(value, urlsafe=False)
    if kind == "base64url":
        return _b64(value, urlsafe=True)
    if kind == "urldecode":
        text = _text_of(value)
        return unquote(text) if text is not None else None
    if kind == "jwt":
        return _jwt(value)
    if kind == "split":
        text = _text_of(value)
        return text.split(str(step.arg)) if text is not None else None
    if kind == "gunzip":
        return _gunzip(value)
    if kind == "protobuf":
        return _protobuf(value)
    return None


# Every adapter's paths are compiled into one tree per container (``_Node``): paths that share a
# prefix (`body.data|base64|json.properties.token`, `...|json.properties.distinct_id`, ...) decode
# and walk that prefix once per request; the leaves are then reported rule by rule, in the order a
# separate walk of each path would give.


class _Node:
    """One step of the compiled paths: the rules ending here, the steps going on from here."""

    __slots__ = ("children", "ends", "keys", "only_keys")

    def __init__(self) -> None:
        self.ends: list[int] = []  # indexes into Adapter.rules
        self.children: list[tuple[Step, _Node]] = []
        # plain key children (the common case): (key, ".key" for the location, node, the rules
        # ending there when nothing goes on from there, else None)
        self.keys: list[tuple[str, str, _Node, list[int] | None]] = []
        self.only_keys = False

    def child(self, step: Step) -> _Node:
        for s, node in self.children:
            if s == step:
                return node
        node = _Node()
        self.children.append((step, node))
        return node

    def seal(self) -> None:
        """Once every path is added: the key children's lookup table."""
        for step, node in self.children:
            node.seal()
            if step.kind == "key":
                k = str(step.arg)
                self.keys.append(
                    (k, "." + _key_part(k), node, None if node.children else node.ends)
                )
        self.only_keys = bool(self.keys) and len(self.keys) == len(self.children)


def _compile(rules: Sequence[Rule]) -> tuple[tuple[str, _Node], ...]:
    """(container, tree of its rules' paths), containers in the order the rules name them."""
    roots: dict[str, _Node] = {}
    for i, rule in enumerate(rules):
        node = roots.setdefault(rule.path.container, _Node())
        for step in rule.path.steps:
            node = node.child(step)
        node.ends.append(i)
    for root in roots.values():
        root.seal()
    return tuple(roots.items())


def _run(
    node: _Node, value: object, loc: str, hits: list[tuple[int, str, object]], by_key: bool
) -> None:
    """Walk ``value`` along ``node``'s steps; every leaf reached is added to ``hits`` as (rule
    index, location, value).

    ``by_key``: ``value`` was reached by a key step (a repeated query key then reads as its first
    value, unless ``*`` or an index follows)."""
    first = value
    if by_key and type(value) is _QueryValues:
        first = value[0]
    for i in node.ends:
        hits.append((i, loc, first))
    if node.only_keys and type(first) is dict:  # only plain keys: no dispatch
        get = first.get
        for k, part, child, ends in node.keys:
            v = get(k)
            if v is None:
                continue
            if ends is None:
                _run(child, v, loc + part, hits, True)
                continue
            if type(v) is _QueryValues:  # a leaf: what _run(child, ...) would do, inline
                v = v[0]
            for i in ends:
                hits.append((i, loc + part, v))
        return
    for step, child in node.children:
        kind = step.kind
        if kind == "key":
            arg = step.arg
            if isinstance(first, dict):
                v = first.get(arg)
            elif isinstance(first, list) and isinstance(arg, str) and arg.isdigit():
                idx = int(arg)
                v = first[idx] if idx < len(first) else None
            else:
                continue
            if v is not None:
                _run(child, v, f"{loc}.{_key_part(str(arg))}", hits, True)
        elif kind == "index":
            got = value if type(value) is _QueryValues else first
            assert isinstance(step.arg, int)
            if isinstance(got, list):
                if step.arg < len(got):
                    _run(child, got[step.arg], f"{loc}.{step.arg}", hits, False)
            elif isinstance(got, dict):
                v = got.get(str(step.arg))
                if v is not None:
                    _run(child, v, f"{loc}.{step.arg}", hits, False)
        elif kind == "star":
            got = value if type(value) is _QueryValues else first
            if isinstance(got, list):
                for i, v in enumerate(got):
                    _run(child, v, f"{loc}.{i}", hits, False)
            elif isinstance(got, dict):
                for k, v in list(got.items()):
                    _run(child, v, f"{loc}.{_location_part(step, k)}", hits, False)
        else:
            v = _transform(step, first)
            if v is not None:
                _run(child, v, loc, hits, False)


def _rule_index(hit: tuple[int, str, object]) -> int:
    return hit[0]


def _key_part(k: str) -> str:
    return f'"{k}"' if "." in k or "|" in k else k


# -- adapters ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Rule:
    property: str
    path: PropertyPath
    not_if: frozenset[str]
    reason: str

    fast: str | None = None  # the key, when the path is one plain key in its container
    fast_location: str = ""


@dataclass(frozen=True)
class Endpoint:
    hosts: tuple[str, ...]
    path: re.Pattern[str] | None
    methods: frozenset[str] | None

    def matches(self, method: str, path: str) -> bool:
        if self.methods is not None and method.upper() not in self.methods:
            return False
        return self.path is None or self.path.search(path) is not None


@dataclass(frozen=True)
class Adapter:
    id: str
    name: str
    company: str
    file: str
    endpoints: tuple[Endpoint, ...]
    body: str
    rules: tuple[Rule, ...]
    plan: tuple[tuple[str, _Node], ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "plan", _compile(self.rules))

    @property
    def properties(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(r.property for r in self.rules))

    def matches(self, method: str, path: str) -> bool:
        for e in self.endpoints:
            if e.matches(method, path):
                return True
        return False


@lru_cache(maxsize=1)
def vocabulary() -> frozenset[str]:
    """The TrackHAR property names (CC0; source note in that file, licence in data/licenses/trackhar-cc0.txt)."""
    text = resources.files("gazeback").joinpath("data", VOCABULARY_FILE).read_text("utf-8")
    return frozenset(
        line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#")
    )


def _fail(where: str, message: str) -> AdapterError:
    return AdapterError(f"{where}: {message}")


def _check_keys(
    where: str, obj: object, allowed: tuple[str, ...], required: tuple[str, ...]
) -> dict[str, Any]:
    if not isinstance(obj, dict):
        raise _fail(
            where, f"expected a mapping with keys {', '.join(allowed)}, got {type(obj).__name__}"
        )
    for key in obj:
        if key not in allowed:
            raise _fail(where, f"unknown key {key!r} (allowed: {', '.join(allowed)})")
    for key in required:
        if key not in obj or obj[key] is None:
            raise _fail(where, f"missing {key!r}")
    return obj


def _endpoint(where: str, raw: object) -> Endpoint:
    ep = _check_keys(where, raw, ("hosts", "path", "methods"), ("hosts",))
    hosts = ep["hosts"]
    if not isinstance(hosts, list) or not hosts:
        raise _fail(f"{where}: hosts", "must be a non-empty list of host names")
    for h in hosts:
        if not isinstance(h, str) or not _HOST_RE.match(h):
            raise _fail(
                f"{where}: hosts",
                f"{h!r} is not a lower-case host name or '*.' followed by one",
            )
    pattern = None
    if "path" in ep:
        if not isinstance(ep["path"], str) or not ep["path"]:
            raise _fail(f"{where}: path", "must be a non-empty regular expression")
        try:
            pattern = re.compile(ep["path"])
        except re.error as e:
            raise _fail(f"{where}: path", f"bad regular expression {ep['path']!r}: {e}") from None
    methods = None
    if "methods" in ep:
        ms = ep["methods"]
        if not isinstance(ms, list) or not ms or any(m not in HTTP_METHODS for m in ms):
            raise _fail(
                f"{where}: methods", f"must be a non-empty list of {', '.join(HTTP_METHODS)}"
            )
        methods = frozenset(ms)
    return Endpoint(hosts=tuple(hosts), path=pattern, methods=methods)


def _rule(where: str, prop: str, raw: object) -> Rule:
    r = _check_keys(where, raw, ("path", "reason", "not_if"), ("path", "reason"))
    try:
        path = parse_path(r["path"])
    except ValueError as e:
        raise _fail(f"{where}: path", str(e)) from None
    reason = r["reason"]
    if not isinstance(reason, str) or not (
        reason.startswith(("https://", "http://")) or reason.startswith("research note:")
    ):
        raise _fail(
            f"{where}: reason",
            "must be a public URL (https://...) or 'research note: <what was observed, where>'",
        )
    if reason.startswith("research note:") and len(reason) < len("research note: ") + 10:
        raise _fail(f"{where}: reason", "a research note must say what was observed and where")
    not_if = r.get("not_if", [])
    if not isinstance(not_if, list):
        not_if = [not_if]
    if any(isinstance(v, (dict, list)) for v in not_if):
        raise _fail(f"{where}: not_if", "must be a value or a list of values")
    fast = None
    steps = path.steps
    if len(steps) == 1 and steps[0].kind == "key" and path.container != "path":
        fast = str(steps[0].arg)
    return Rule(
        property=prop,
        path=path,
        not_if=frozenset(value_text(v) for v in not_if),
        reason=reason,
        fast=fast,
        fast_location=f"{path.container}.{_location_part(steps[0], fast)}" if fast else "",
    )


def parse_file(name: str, text: str) -> tuple[Adapter, ...]:
    """The adapters of one file; raises AdapterError naming the file, adapter and field."""
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise AdapterError(f"{name}: not valid YAML: {e}") from None
    top = _check_keys(name, doc, ("company", "adapters"), ("company", "adapters"))
    company = top["company"]
    if not isinstance(company, str) or not company.strip():
        raise _fail(f"{name}: company", "must be the company's name")
    if not isinstance(top["adapters"], list) or not top["adapters"]:
        raise _fail(f"{name}: adapters", "must be a non-empty list")
    vocab = vocabulary()
    out: list[Adapter] = []
    for n, raw in enumerate(top["adapters"]):
        label = raw.get("id") if isinstance(raw, dict) else None
        where = (
            f"{name}: adapter {label!r}" if isinstance(label, str) else f"{name}: adapter #{n + 1}"
        )
        a = _check_keys(
            where,
            raw,
            ("id", "name", "endpoints", "body", "properties"),
            ("id", "name", "endpoints", "properties"),
        )
        if not isinstance(a["id"], str) or not _ID_RE.match(a["id"]):
            raise _fail(f"{where}: id", "must be kebab-case (lower-case letters, digits, '-')")
        if not isinstance(a["name"], str) or not a["name"].strip():
            raise _fail(f"{where}: name", "must be a non-empty text")
        body = a.get("body", "auto")
        if body not in BODY_MODES:
            raise _fail(f"{where}: body", f"{body!r} is not one of {', '.join(BODY_MODES)}")
        eps = a["endpoints"]
        if not isinstance(eps, list) or not eps:
            raise _fail(f"{where}: endpoints", "must be a non-empty list")
        endpoints = tuple(_endpoint(f"{where}: endpoint #{i + 1}", e) for i, e in enumerate(eps))
        props = a["properties"]
        if not isinstance(props, dict) or not props:
            raise _fail(f"{where}: properties", "must map at least one property to its paths")
        rules: list[Rule] = []
        for prop, paths in props.items():
            if prop not in vocab:
                raise _fail(
                    f"{where}: properties",
                    f"{prop!r} is not a TrackHAR property name (see data/{VOCABULARY_FILE})",
                )
            if not isinstance(paths, list) or not paths:
                raise _fail(f"{where}: {prop}", "must be a non-empty list of {path, reason}")
            for i, p in enumerate(paths):
                rule = _rule(f"{where}: {prop} #{i + 1}", prop, p)
                if body == "none" and rule.path.container == "body":
                    raise _fail(
                        f"{where}: {prop} #{i + 1}: path",
                        "reads the body of an adapter with body: none",
                    )
                rules.append(rule)
        out.append(
            Adapter(
                id=a["id"],
                name=a["name"].strip(),
                company=company.strip(),
                file=name,
                endpoints=endpoints,
                body=body,
                rules=tuple(rules),
            )
        )
    return tuple(out)


def adapter_files(directory: Path | None = None) -> list[tuple[str, str]]:
    """(file name, text) of every adapter file, sorted by name."""
    if directory is not None:
        return [(p.name, p.read_text("utf-8")) for p in sorted(directory.glob("*.yaml"))]
    root = resources.files(ADAPTER_PACKAGE).joinpath(ADAPTER_DIR)
    if not root.is_dir():
        return []
    files = sorted((e for e in root.iterdir() if e.name.endswith(".yaml")), key=lambda e: e.name)
    return [(e.name, e.read_text("utf-8")) for e in files]


class AdapterIndex:
    """Every adapter, with endpoints indexed by host: exact names and '*.' suffixes."""

    def __init__(self, adapters: Sequence[Adapter]) -> None:
        self.adapters = tuple(adapters)
        seen: dict[str, str] = {}
        for a in self.adapters:
            if a.id in seen:
                raise AdapterError(f"{a.file}: adapter {a.id!r}: id already used in {seen[a.id]}")
            seen[a.id] = a.file
        self.exact: dict[str, list[Adapter]] = {}
        self.suffix: dict[str, list[Adapter]] = {}
        for a in self.adapters:
            for ep in a.endpoints:
                for h in ep.hosts:
                    table, key = (self.suffix, h[2:]) if h.startswith("*.") else (self.exact, h)
                    bucket = table.setdefault(key, [])
                    if a not in bucket:
                        bucket.append(a)
        self._no_suffix = not self.suffix

    def candidates(self, host: str) -> list[Adapter] | None:
        """Adapters with an endpoint for this host (None: none), before path and method."""
        found = self.exact.get(host)
        if self._no_suffix:
            return found
        suffix = self.suffix
        i = host.find(".")
        while i >= 0:
            more = suffix.get(host[i + 1 :])
            if more is not None:
                found = more if found is None else found + [a for a in more if a not in found]
            i = host.find(".", i + 1)
        return found

    def match(self, method: str, host: str, path: str) -> list[Adapter]:
        cands = self.candidates(host)
        if cands is None:
            return []
        return [a for a in cands if a.matches(method, path)]

    def learn(self, request: Request) -> tuple[Found, ...]:
        """What every matching adapter finds in the request (nothing when none matches)."""
        cands = self.candidates(request.host)
        if cands is None:
            return ()
        adapters = [a for a in cands if a.matches(request.method, request.path)]
        if not adapters:
            return ()
        return apply(adapters, request)


def apply(adapters: Sequence[Adapter], request: Request) -> tuple[Found, ...]:
    """What these adapters (matched to the request already) find in it."""
    sources = _Sources(request)
    out: list[Found] = []
    seen: set[tuple[str, str, str]] = set()
    for a in adapters:
        rules = a.rules
        hits: list[tuple[int, str, object]] = []
        not_dict: set[str] = set()
        for container, node in a.plan:
            root = sources.get(container, a.body)
            if root is None:
                continue
            if type(root) is not dict:
                not_dict.add(container)
            _run(node, root, container, hits, False)
        hits.sort(key=_rule_index)  # stable: each rule's leaves stay in walk order
        for i, loc, v in hits:
            rule = rules[i]
            fast = rule.fast is not None
            if fast and not_dict and rule.path.container in not_dict:
                continue  # one plain key reads a mapping only
            # one plain key yields its whole text; a longer path at most MAX_VALUE characters
            text = v if fast and type(v) is str else _as_text(v)
            if not text or text in rule.not_if:
                continue
            seen_key = (rule.property, loc, text)
            if seen_key not in seen:
                seen.add(seen_key)
                out.append(Found(a.id, rule.property, loc, text))
    return tuple(out)


class _Sources:
    """The containers of one request, decoded on first use."""

    def __init__(self, request: Request) -> None:
        self.request = request
        self.cache: dict[str, object] = {}

    def get(self, container: str, body_mode: str) -> object:
        key = f"body:{body_mode}" if container == "body" else container
        if key in self.cache:
            return self.cache[key]
        value = self._load(container, body_mode)
        self.cache[key] = value
        return value

    def _load(self, container: str, body_mode: str) -> object:
        r = self.request
        if container == "query":
            q: dict[str, list[str] | str] = {}
            for k, v in r.query:
                q.setdefault(k, _QueryValues()).append(v)  # type: ignore[union-attr]
            return q or None
        if container == "header":
            return {k.lower(): v for k, v in r.headers.items()} or None
        if container == "cookie":
            raw = next((v for k, v in r.headers.items() if k.lower() == "cookie"), None)
            if not raw:
                return None
            jar: dict[str, str] = {}
            for part in raw.split(";"):
                name, eq, val = part.strip().partition("=")
                if eq and name:
                    jar.setdefault(name, val)
            return jar or None
        if container == "path":
            segments = r.path.split("/")
            if segments and segments[0] == "":
                segments = segments[1:]
            return segments or None
        return self._body(body_mode)

    def _body(self, mode: str) -> object:
        raw = self.request.body
        if not raw or mode == "none":
            return None
        raw = _content_decode(raw, self.request.headers)
        if raw is None:
            return None
        if mode == "auto":
            ctype = next(
                (v for k, v in self.request.headers.items() if k.lower() == "content-type"), ""
            ).lower()
            if "json" in ctype:
                mode = "json"
            elif "x-www-form-urlencoded" in ctype:
                mode = "form"
            else:
                got = _json(raw)
                return got if got is not None else _form(raw)
        if mode == "json":
            return _json(raw)
        if mode == "form":
            return _form(raw)
        if mode == "text":
            return _text_of(raw)
        if mode == "ndjson":
            text = _text_of(raw)
            if text is None:
                return None
            items = [_json(line) for line in text.splitlines() if line.strip()]
            return [x for x in items if x is not None] or None
        if mode == "gzip+json":
            return _json(_gunzip(raw))
        if mode == "protobuf":
            return _protobuf(raw)
        return None


class _QueryValues(list[str]):
    """The values of one query key: a key step reads the first, ``*`` or an index reads all."""


def _content_decode(raw: bytes, headers: Mapping[str, str]) -> bytes | None:
    enc = next((v for k, v in headers.items() if k.lower() == "content-encoding"), "").strip()
    enc = enc.lower()
    if not enc or enc == "identity":
        return raw[:MAX_BODY]
    try:
        if enc in ("gzip", "x-gzip"):
            return zlib.decompressobj(wbits=47).decompress(raw, MAX_BODY)
        if enc == "deflate":
            try:
                return zlib.decompressobj().decompress(raw, MAX_BODY)
            except zlib.error:
                return zlib.decompressobj(-15).decompress(raw, MAX_BODY)
        if enc == "br":
            import brotli

            out: bytes = brotli.decompress(raw)
            return out[:MAX_BODY]
        if enc == "zstd":
            import zstandard

            reader = zstandard.ZstdDecompressor().stream_reader(raw)
            data: bytes = reader.read(MAX_BODY)
            return data
    except Exception:  # noqa: BLE001 - a body that does not decode yields nothing
        return None
    return None


def leaf_locations(path: PropertyPath, body_mode: str) -> tuple[str, ...]:
    """Where the leak detector's stored leaf fingerprints (``leaf_fingerprints.location``) would
    hold this path's value: ``url.query:cid``, ``body.json:$.events[*].device.ifa``,
    ``body.form:data>$.k``. Empty when the path cannot be read from them (transforms other than
    JSON inside a form field, list indexes, which the stored locations do not keep)."""
    steps = path.steps
    first = steps[0] if steps else None
    if path.container in ("query", "header", "cookie"):
        if len(steps) != 1 or first is None or first.kind != "key":
            return ()
        prefix = {"query": "url.query:", "header": "header:", "cookie": "cookie:"}[path.container]
        return (f"{prefix}{first.arg}",)
    if path.container == "path":
        if len(steps) == 1 and first is not None and first.kind == "index":
            return (f"url.path:{first.arg}",)
        return ()
    out: list[str] = []
    if body_mode in ("json", "auto", "gzip+json"):
        json_loc = _json_location(steps)
        if json_loc is not None:
            out.append(f"body.json:{json_loc}")
    if body_mode in ("form", "auto") and first is not None and first.kind == "key":
        if len(steps) == 1:
            out.append(f"body.form:{first.arg}")
        elif steps[1].kind == "json":
            inner = _json_location(steps[2:])
            if inner is not None:
                out.append(f"body.form:{first.arg}>{inner}")
    return tuple(out)


def _json_location(steps: Sequence[Step]) -> str | None:
    parts = ["$"]
    for step in steps:
        if step.kind == "key":
            parts.append(f".{step.arg}")
        elif step.kind == "star":
            parts.append("[*]")
        else:
            return None
    return "".join(parts) if len(parts) > 1 else None


@lru_cache(maxsize=1)
def load_index() -> AdapterIndex:
    """The packaged adapters, parsed, validated and indexed once per process."""
    adapters: list[Adapter] = []
    for name, text in adapter_files():
        adapters.extend(parse_file(name, text))
    return AdapterIndex(adapters)


def index_from(directory: Path) -> AdapterIndex:
    """Adapters from another directory (an author's work in progress)."""
    adapters: list[Adapter] = []
    for name, text in adapter_files(directory):
        adapters.extend(parse_file(name, text))
    return AdapterIndex(adapters)


def request_from_url(
    method: str, url: str, headers: Mapping[str, str] | None = None, body: bytes | None = None
) -> Request:
    """A Request from a full URL (examples, HAR entries)."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    host = (parts.hostname or "").lower().rstrip(".")
    query = tuple(parse_qsl(parts.query, keep_blank_values=True))
    hdrs = {k.lower(): str(v) for k, v in (headers or {}).items()}
    return Request(
        method=method.upper(),
        host=host,
        path=parts.path or "/",
        query=query,
        headers=hdrs,
        body=body,
    )
