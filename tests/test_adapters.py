"""Adapters (#14): every adapter file validates, and every example in tests/data/adapters/ holds exactly.

An example names an adapter (or null), a request, and the exact properties → values the engine must
find (order and repeats do not matter; a missing or an extra property fails). Every adapter has at
least one positive example (it claims something) and one negative one (``expect: {}``).
"""

from __future__ import annotations

import base64
import gzip
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from gazeback.knowledge import learn

EXAMPLES = Path(__file__).parent / "data" / "adapters"
EXAMPLE_KEYS = {"adapter", "title", "request", "expect"}
REQUEST_KEYS = {"method", "url", "headers", "body", "body_json"}


def _examples() -> Iterator[tuple[str, int, dict[str, Any]]]:
    for path in sorted(EXAMPLES.glob("*.yaml")):
        doc = yaml.safe_load(path.read_text("utf-8"))
        assert isinstance(doc, list), f"{path.name}: must be a list of examples"
        for i, ex in enumerate(doc):
            yield path.name, i, ex


ALL = list(_examples())


def _request(where: str, ex: dict[str, Any]) -> learn.Request:
    unknown = set(ex) - EXAMPLE_KEYS
    assert not unknown, f"{where}: unknown keys {sorted(unknown)}"
    assert isinstance(ex.get("title"), str) and ex["title"], f"{where}: missing title"
    req = ex.get("request")
    assert isinstance(req, dict), f"{where}: missing request"
    unknown = set(req) - REQUEST_KEYS
    assert not unknown, f"{where}: request: unknown keys {sorted(unknown)}"
    body: bytes | None = None
    headers = dict(req.get("headers") or {})
    if "body_json" in req:
        body = json.dumps(req["body_json"]).encode()
        headers.setdefault("Content-Type", "application/json")
    elif req.get("body"):
        body = str(req["body"]).encode()
    return learn.request_from_url(req.get("method", "GET"), req["url"], headers, body)


def _got(found: tuple[learn.Found, ...]) -> dict[str, list[str]]:
    out: dict[str, set[str]] = {}
    for f in found:
        out.setdefault(f.property, set()).add(f.value)
    return {k: sorted(v) for k, v in out.items()}


@pytest.mark.parametrize(
    "name,i,ex", ALL, ids=[f"{n}#{i}:{e.get('title', '')[:40]}" for n, i, e in ALL]
)
def test_example(name: str, i: int, ex: dict[str, Any]) -> None:
    index = learn.load_index()
    where = f"tests/data/adapters/{name} example #{i + 1} ({ex.get('title')!r})"
    request = _request(where, ex)
    adapter = ex.get("adapter", "missing")
    ids = {a.id for a in index.adapters}
    assert adapter is None or adapter in ids, f"{where}: unknown adapter {adapter!r}"
    expect = ex.get("expect")
    assert isinstance(expect, dict), f"{where}: expect must be a mapping (property → values)"
    want = {k: sorted({learn.value_text(v) for v in vs}) for k, vs in expect.items()}
    found = index.learn(request)
    assert _got(found) == want, f"{where}: {found}"
    if want:
        assert adapter in {f.adapter for f in found}, f"{where}: claimed by others, not {adapter}"


def test_every_adapter_has_a_positive_and_a_negative_example() -> None:
    positive: set[str] = set()
    negative: set[str] = set()
    has_null_negative: dict[str, bool] = {}
    index = learn.load_index()
    for name, _, ex in ALL:
        if ex.get("adapter") is None:
            has_null_negative[name] = True
        elif ex.get("expect"):
            positive.add(ex["adapter"])
        else:
            negative.add(ex["adapter"])
    missing = []
    for a in index.adapters:
        if a.id not in positive:
            missing.append(f"{a.file}: adapter {a.id!r} has no positive example")
        if a.id not in negative and not has_null_negative.get(a.file):
            missing.append(f"{a.file}: adapter {a.id!r} has no negative example")
        if not (EXAMPLES / a.file).exists():
            missing.append(f"{a.file}: no examples file tests/data/adapters/{a.file}")
    assert not missing, "\n".join(missing)


def test_every_adapter_file_validates() -> None:
    # load_index parses every packaged file (unknown keys, vocabulary, regexes, reasons, ids)
    index = learn.load_index()
    assert {a.file for a in index.adapters} >= {"google.yaml", "meta.yaml"}
    for name, text in learn.adapter_files():
        assert learn.parse_file(name, text), name


def test_adapter_companies_are_named_as_the_tracker_data_names_them() -> None:
    import gzip as gz

    data = json.loads(gz.open(Path(learn.__file__).parents[1] / "data" / "trackers.json.gz").read())
    names = {c["name"] for c in data["companies"].values()}
    bad = [
        f"{a.file}: company {a.company!r}"
        for a in learn.load_index().adapters
        if a.company not in names
    ]
    assert not bad, "not a company name in trackers.json.gz: " + "; ".join(sorted(set(bad)))


def test_vocabulary_is_trackhar_list() -> None:
    vocab = learn.vocabulary()
    assert len(vocab) == 104
    assert {"advertisingId", "model", "viewedPage", "latitude", "carrier"} <= vocab


# -- the validator names file, adapter and field ---------------------------------------------

GOOD = """
company: Example
adapters:
  - id: ex-one
    name: Example
    endpoints:
      - hosts: [t.example.com]
        path: "^/c(/|$)"
    properties:
      userId:
        - path: query.u
          reason: https://example.com/docs
"""


@pytest.mark.parametrize(
    "old,new,message",
    [
        (
            "    name: Example\n",
            "    name: Example\n    colour: red\n",
            "ex.yaml: adapter 'ex-one': unknown key 'colour'",
        ),
        (
            "userId:",
            "userIdentifier:",
            "ex.yaml: adapter 'ex-one': properties: 'userIdentifier' is not a TrackHAR property",
        ),
        (
            'path: "^/c(/|$)"',
            'path: "^/c(/|$"',
            "ex.yaml: adapter 'ex-one': endpoint #1: path: bad regular expression",
        ),
        (
            "          reason: https://example.com/docs\n",
            "",
            "ex.yaml: adapter 'ex-one': userId #1: missing 'reason'",
        ),
        (
            "reason: https://example.com/docs",
            "reason: because",
            "ex.yaml: adapter 'ex-one': userId #1: reason: must be a public URL",
        ),
        (
            "path: query.u",
            "path: query.u|rot13",
            "ex.yaml: adapter 'ex-one': userId #1: path: path 'query.u|rot13': unknown transform 'rot13'",
        ),
        (
            "path: query.u",
            "path: url.u",
            "must start with one of query, body, header, cookie, path",
        ),
        (
            "hosts: [t.example.com]",
            "hosts: [https://t.example.com]",
            "endpoint #1: hosts: 'https://t.example.com' is not a lower-case host name",
        ),
        ("company: Example\n", "", "ex.yaml: missing 'company'"),
        ("    name: Example\n", "    name: Example\n    body: xml\n", "body: 'xml' is not one of"),
    ],
)
def test_bad_adapter_file_is_named(old: str, new: str, message: str) -> None:
    assert old in GOOD
    with pytest.raises(learn.AdapterError) as err:
        learn.parse_file("ex.yaml", GOOD.replace(old, new))
    assert message in str(err.value)


def test_duplicate_adapter_ids_are_refused() -> None:
    a = learn.parse_file("a.yaml", GOOD)
    b = learn.parse_file("b.yaml", GOOD)
    with pytest.raises(
        learn.AdapterError, match="b.yaml: adapter 'ex-one': id already used in a.yaml"
    ):
        learn.AdapterIndex([*a, *b])


# -- paths and transforms ----------------------------------------------------------------------


def _one(
    path: str, request: learn.Request, body: str = "auto", not_if: str = ""
) -> list[tuple[str, str]]:
    text = GOOD.replace("path: query.u", f"path: '{path}'")
    text = text.replace("    name: Example\n", f"    name: Example\n    body: {body}\n")
    if not_if:
        text = text.replace("          reason:", f"          not_if: {not_if}\n          reason:")
    index = learn.AdapterIndex(learn.parse_file("ex.yaml", text))
    return [(f.location, f.value) for f in index.learn(request)]


def _req(
    url: str = "https://t.example.com/c", body: bytes | None = None, **headers: str
) -> learn.Request:
    return learn.request_from_url(
        "POST", url, {k.replace("_", "-"): v for k, v in headers.items()}, body
    )


def test_paths_and_transforms() -> None:
    doc = {
        "events": [{"device": {"ifa": "A"}}, {"device": {"ifa": "0000"}}, {"x": 1}],
        "ev.name": "buy",
    }
    body = json.dumps(doc).encode()
    assert _one("body.events.*.device.ifa", _req(body=body)) == [
        ("body.events.0.device.ifa", "A"),
        ("body.events.1.device.ifa", "0000"),
    ]
    assert _one("body.events.*.device.ifa", _req(body=body), not_if='"0000"') == [
        ("body.events.0.device.ifa", "A")
    ]
    assert _one('body."ev.name"', _req(body=body)) == [('body."ev.name"', "buy")]
    q = (
        "https://t.example.com/c?x=1&x=2&sr=10x20&d="
        + base64.b64encode(b'{"k": [5, true]}').decode()
    )
    assert _one("query.x", _req(q)) == [("query.x", "1")]
    assert _one("query.x.*", _req(q)) == [("query.x.0", "1"), ("query.x.1", "2")]
    assert _one("query.sr|split:x|1", _req(q)) == [("query.sr.1", "20")]
    assert _one("query.d|base64|json|k.*", _req(q)) == [
        ("query.d.k.0", "5"),
        ("query.d.k.1", "true"),
    ]
    jwt = ".".join(
        base64.urlsafe_b64encode(json.dumps(p).encode()).decode().rstrip("=")
        for p in ({"alg": "none"}, {"sub": "u1"}, {})
    )
    assert _one("header.authorization|jwt|sub", _req(authorization=jwt)) == [
        ("header.authorization.sub", "u1")
    ]
    assert _one("cookie._ga", _req(cookie="a=1; _ga=GA1.2.3")) == [("cookie._ga", "GA1.2.3")]
    assert _one("path.1", _req("https://t.example.com/c/seg/x")) == [("path.1", "seg")]
    form = b"a=1&data=%7B%22m%22%3A%22Pixel%207%22%7D"
    assert _one(
        "body.data|json|m", _req(body=form, content_type="application/x-www-form-urlencoded")
    ) == [("body.data.m", "Pixel 7")]
    assert _one("body.m", _req(body=gzip.compress(b'{"m": "x"}')), body="gzip+json") == [
        ("body.m", "x")
    ]
    assert _one("body.m", _req(body=gzip.compress(b'{"m": "y"}'), content_encoding="gzip")) == [
        ("body.m", "y")
    ]
    assert _one("body.*.m", _req(body=b'{"m": 1}\n{"m": 2}\n'), body="ndjson") == [
        ("body.0.m", "1"),
        ("body.1.m", "2"),
    ]
    lines = _one("body|split:\\n|1", _req(body=b"one\ntwo"), body="text")
    assert lines == [("body.1", "two")]
    # a path that does not resolve yields nothing, silently
    assert _one("body.nope.x", _req(body=body)) == []
    assert _one("query.d|jwt|sub", _req(q)) == []
    assert _one("body.events", _req(body=body)) == []  # a container is no value


def test_protobuf() -> None:
    # field 1: "Pixel 7", field 2: varint 150, field 3 twice (repeated), field 4: nested {1: "x"} (not UTF-8)
    nested = b"\x08\x96\x01\x12\x01\xff"
    msg = (
        b"\x0a\x07Pixel 7"
        + b"\x10\x96\x01"
        + b"\x18\x01\x18\x02"
        + b"\x22"
        + bytes([len(nested)])
        + nested
    )
    assert learn.parse_protobuf(msg)["1"] == "Pixel 7"
    assert learn.parse_protobuf(msg)["2"] == 150
    assert learn.parse_protobuf(msg)["3"] == [1, 2]
    assert learn.parse_protobuf(msg)["4"]["1"] == 150
    assert _one("body.1", _req(body=msg), body="protobuf") == [("body.1", "Pixel 7")]
    assert _one("body.3.*", _req(body=msg), body="protobuf") == [
        ("body.3.0", "1"),
        ("body.3.1", "2"),
    ]
    assert _one(
        "body.1|base64|protobuf|1", _req(body=b'{"1": "' + base64.b64encode(msg) + b'"}')
    ) == [("body.1.1", "Pixel 7")]


def test_hosts_match_exactly_or_as_subdomains() -> None:
    text = GOOD.replace("hosts: [t.example.com]", 'hosts: ["*.t.example.com"]')
    index = learn.AdapterIndex(learn.parse_file("ex.yaml", text))
    assert index.learn(_req("https://a.b.t.example.com/c?u=1"))
    assert not index.learn(_req("https://t.example.com/c?u=1"))  # "*." is not the bare domain
    assert not index.learn(_req("https://xt.example.com/c?u=1"))
    assert not index.learn(_req("https://a.t.example.com/cc?u=1"))  # path regex


# -- gazeback adapters list|test ---------------------------------------------------------------


def _har(tmp_path: Path, entries: list[dict[str, Any]]) -> Path:
    path = tmp_path / "c.har"
    path.write_text(json.dumps({"log": {"version": "1.2", "entries": entries}}))
    return path


def _entry(method: str, url: str, text: str | None = None, mime: str = "") -> dict[str, Any]:
    req: dict[str, Any] = {
        "method": method,
        "url": url,
        "headers": [{"name": "User-Agent", "value": "x"}],
    }
    if text is not None:
        req["postData"] = {"mimeType": mime, "text": text}
    return {"request": req, "response": {"status": 200, "content": {}}}


def test_cli_adapters_list_and_test(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from gazeback.cli import cli

    listed = CliRunner().invoke(cli, ["adapters", "list"])
    assert listed.exit_code == 0, listed.output
    assert "google-analytics-ua  (Google: " in listed.output
    assert "^/(r/|j/)?collect$" in listed.output
    har = _har(
        tmp_path,
        [
            _entry("GET", "https://www.google-analytics.com/analytics.js"),
            _entry("POST", "https://www.google-analytics.com/j/collect", "v=1&tid=UA-7-7&cid=3.4", "text/plain"),
            {"request": {"method": "GET"}},
        ],
    )  # fmt: skip
    result = CliRunner().invoke(cli, ["adapters", "test", str(har), "--all"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert "entry 0: GET www.google-analytics.com/analytics.js — no adapter" in lines
    assert "entry 1: POST www.google-analytics.com/j/collect — google-analytics-ua" in lines
    assert any(line.split() == ["propertyId", "body.tid", "UA-7-7"] for line in lines)
    assert any(line.split() == ["browserId", "body.cid", "3.4"] for line in lines)
    assert lines[4].startswith("entry 2: not a HAR request (KeyError")
    assert lines[-1] == "3 requests, 1 matched an adapter, 2 properties found"


def test_cli_adapters_bad_input_is_one_sentence(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from gazeback.cli import cli

    bad = tmp_path / "x.har"
    bad.write_text("{not json")
    result = CliRunner().invoke(cli, ["adapters", "test", str(bad)])
    assert result.exit_code == 1 and f"Error: {bad} is not a HAR file:" in result.output
    folder = tmp_path / "wip"
    folder.mkdir()
    (folder / "ex.yaml").write_text(GOOD.replace("userId:", "userIdentifier:"))
    result = CliRunner().invoke(cli, ["adapters", "list", "--adapters", str(folder)])
    assert result.exit_code == 1
    assert (
        "Error: ex.yaml: adapter 'ex-one': properties: 'userIdentifier' is not a TrackHAR"
        in result.output
    )


@pytest.mark.parametrize("mode", learn.BODY_MODES)
def test_odd_bodies_never_raise(mode: str) -> None:
    from hypothesis import given, settings
    from hypothesis import strategies as st

    paths = ["body.a", "body.*.b", "body.1|protobuf|2", "body.x|base64|json|y", "body.j|jwt|sub",
             "body.g|gunzip|json|k", "body.0|split:,|1", "body.q|urldecode|form|z"]  # fmt: skip
    indexes = [
        learn.AdapterIndex(
            learn.parse_file(
                "ex.yaml",
                GOOD.replace("path: query.u", f"path: '{p}'").replace(
                    "    name: Example\n", f"    name: Example\n    body: {mode}\n"
                ),
            )
        )
        for p in paths
        if mode != "none"
    ]

    @settings(max_examples=25, deadline=None)
    @given(st.binary(max_size=300), st.sampled_from(["", "gzip", "br", "deflate", "zstd"]))
    def run(body: bytes, encoding: str) -> None:
        request = _req(body=body, content_encoding=encoding, content_type="application/json")
        for index in indexes:
            for found in index.learn(request):
                assert isinstance(found.value, str) and found.value

    run()
