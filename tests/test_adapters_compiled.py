"""The compiled adapter paths (#19) find exactly what following each path on its own finds."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator, Sequence
from typing import Any

import pytest

from gazeback.knowledge import learn
from gazeback.leaks.detect import scrub_identities, scrub_identities_many
from gazeback.leaks.needles import build_profile
from gazeback.models import IdentityValue
from tests.test_adapters import ALL, _request


def _walk(value: object, steps: tuple[learn.Step, ...], i: int, loc: str) -> Iterator[tuple[str, object]]:  # fmt: skip
    """One path followed on its own: the engine before #19, kept here as the reference."""
    while i < len(steps):
        step = steps[i]
        if step.kind == "key":
            if isinstance(value, dict):
                value = value.get(step.arg)
            elif isinstance(value, list) and isinstance(step.arg, str) and step.arg.isdigit():
                idx = int(step.arg)
                value = value[idx] if idx < len(value) else None
            else:
                return
            if value is None:
                return
            if isinstance(value, learn._QueryValues) and (
                i + 1 == len(steps) or steps[i + 1].kind not in ("star", "index")
            ):
                value = value[0]
            loc += "." + (learn._location_part(step, step.arg) or "")
        elif step.kind == "index":
            assert isinstance(step.arg, int)
            if isinstance(value, list):
                if step.arg >= len(value):
                    return
                value = value[step.arg]
            elif isinstance(value, dict):
                value = value.get(str(step.arg))
                if value is None:
                    return
            else:
                return
            loc += f".{step.arg}"
        elif step.kind == "star":
            if isinstance(value, list):
                items: Sequence[tuple[object, object]] = list(enumerate(value))
            elif isinstance(value, dict):
                items = list(value.items())
            else:
                return
            for k, v in items:
                yield from _walk(v, steps, i + 1, f"{loc}.{learn._location_part(step, k)}")
            return
        else:
            value = learn._transform(step, value)
            if value is None:
                return
        i += 1
    yield loc, value


def _reference(adapters: Sequence[learn.Adapter], request: learn.Request) -> tuple[learn.Found, ...]:  # fmt: skip
    sources = learn._Sources(request)
    out: list[learn.Found] = []
    seen: set[tuple[str, str, str]] = set()
    for a in adapters:
        for rule in a.rules:
            root = sources.get(rule.path.container, a.body)
            if root is None:
                continue
            if rule.fast is not None:
                if not isinstance(root, dict) or root.get(rule.fast) is None:
                    continue
                value = root[rule.fast]
                if type(value) is learn._QueryValues:
                    value = value[0]
                pairs = [(rule.fast_location, value)]
            else:
                pairs = list(_walk(root, rule.path.steps, 0, rule.path.container))
            for loc, v in pairs:
                text = v if rule.fast is not None and type(v) is str else learn._as_text(v)
                if not text or text in rule.not_if:
                    continue
                if (rule.property, loc, text) not in seen:
                    seen.add((rule.property, loc, text))
                    out.append(learn.Found(a.id, rule.property, loc, text))
    return tuple(out)


INDEX = learn.load_index()


@pytest.mark.parametrize("name,i,ex", ALL, ids=[f"{n}#{i}" for n, i, _ in ALL])
def test_every_example_as_each_path_alone(name: str, i: int, ex: dict[str, Any]) -> None:
    request = _request(f"{name}#{i}", ex)
    adapters = INDEX.match(request.method, request.host, request.path)
    # every adapter of the host, matched or not, so each adapter's paths meet other bodies too
    every = INDEX.candidates(request.host) or []
    assert learn.apply(adapters, request) == _reference(adapters, request)
    assert learn.apply(every, request) == _reference(every, request)


ODD = """
company: Example
adapters:
  - id: odd
    name: Odd
    endpoints: [{hosts: [t.example.com]}]
    body: {body}
    properties:
"""
PATHS = [
    "query.a", "query.a.*", "query.a.1", "query.a|split:,|*", "query.*", "query.*.0", "query.b|json.x",
    "query.b|json.*", 'query."c.d"', "query.b|json.l.*.v", "query.b|json.l.1.v", "query.b|json.l.*",
    "body.0", 'body."0"', "body.*.k", "body.1.k|base64|json.n", "body.*.k|base64|json.*",
    "body.*.p|protobuf|1", "body.*.p|protobuf|*", "header.x-a", "cookie.c", "path.1", "path.*",
]  # fmt: skip


@pytest.mark.parametrize("body_mode", ["auto", "json", "text"])
def test_odd_paths_as_each_path_alone(body_mode: str) -> None:
    text = ODD.replace("{body}", body_mode)
    for n, path in enumerate(PATHS):
        prop = sorted(learn.vocabulary())[n]
        text += f"      {prop}:\n        - {{path: '{path}', reason: 'https://example.org/{n}'}}\n"
        text += f"        - {{path: '{path}', reason: 'https://example.org/{n}', not_if: ['2']}}\n"
    adapters = learn.parse_file("odd.yaml", text)
    proto = base64.b64encode(b"\x0a\x02hi\x10\x05\x10\x06").decode()
    inner = base64.b64encode(json.dumps({"n": "v", "m": [1, 2]}).encode()).decode()
    body = json.dumps([{"k": "a", "p": proto}, {"k": inner}, "x", {"k": None}, [1, 2]]).encode()
    request = learn.request_from_url(
        "POST",
        "https://t.example.com/seg/2/x?a=1,2&a=2&a=3&b=" + '{"x": 1, "l": [{"v": 2}, {"v": "w"}]}'
        + "&c.d=dot",
        {"X-A": "h", "Cookie": "c=1; c=2"},
        body,
    )  # fmt: skip
    got = learn.apply(adapters, request)
    assert got == _reference(adapters, request)
    assert len(got) >= 20  # many paths find something: the comparison is not vacuous


PROFILE = build_profile(
    [
        IdentityValue(1, "email", "jane.doe@example.org"),
        IdentityValue(2, "phone", "+44 7700 900123"),
    ]
)


def test_identities_scrubbed_in_one_pass_as_one_by_one() -> None:
    email_b64 = base64.b64encode(b"jane.doe@example.org").decode()
    texts = [
        "jane.doe@example.org",
        "mail JANE.DOE@EXAMPLE.ORG now",
        f"id={email_b64}",
        "İstanbul jane.doe@example.org",  # its lower case is longer: searched on its own
        "call +447700900123",
        "",
        "nothing here",
        "mail JANE.DOE@EXAMPLE.ORG now",
        "xjane.doe@example.orgx",
    ]
    many = scrub_identities_many(texts, PROFILE)
    assert many == [scrub_identities(t, PROFILE) for t in texts]
    assert many[0] == "[your email]"
    assert many[1] == "mail [your email] now"
    assert "jane" not in many[3] and many[3].startswith("İstanbul ")
    assert many[5] == "" and many[6] == "nothing here"
    assert scrub_identities_many(texts, None) == texts
