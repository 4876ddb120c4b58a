import pytest

from gazeback.leaks.redact import (
    fingerprint,
    is_secret_name,
    redact_cookie,
    redact_header,
    redact_query,
)

KEY = b"k" * 32


@pytest.mark.parametrize(
    "name,expected",
    [
        ("password", True), ("pass", True), ("pwd", True), ("access_token", True),
        ("sessionId", True), ("X-Auth-Token", True), ("client_secret", True), ("otp", True),
        ("api_key", True), ("PHPSESSID", False), ("q", False), ("uid", False),
        ("passenger", False), ("footprint", False), ("tid", False), ("em", False),
        ("code", True), ("authorization_code", True), ("country_code", False),
    ],
)  # fmt: skip
def test_is_secret_name(name, expected):
    assert is_secret_name(name) is expected


def test_fingerprint_is_keyed_and_stable():
    assert fingerprint("hunter2", KEY) == fingerprint("hunter2", KEY)
    assert fingerprint("hunter2", KEY) != fingerprint("hunter2", b"x" * 32)
    assert fingerprint("hunter2", KEY).startswith("[secret:") and "hunter2" not in fingerprint(
        "hunter2", KEY
    )


@pytest.mark.parametrize(
    "name,value,kept,gone",
    [
        ("Authorization", "Bearer abc.def.ghi", "Bearer [secret:", "abc.def.ghi"),
        ("Authorization", "Basic dXNlcjpwdw==", "Basic [secret:", "dXNlcjpwdw=="),
        ("Proxy-Authorization", "Basic cDpx", "Basic [secret:", "cDpx"),
        ("Cookie", "sid=s3cr3t; _ga=GA1.2.3", "_ga=[secret:", "GA1.2.3"),
        ("Set-Cookie", "id=abc; Path=/; Max-Age=10", "Path=/", "abc;"),
        ("X-Api-Token", "tok123", "[secret:", "tok123"),
        ("X-Custom", "Bearer zzz", "Bearer [secret:", "zzz"),
    ],
)
def test_redact_header(name, value, kept, gone):
    out, changed = redact_header(name, value, KEY)
    assert changed and kept in out and gone not in out


def test_harmless_header_untouched():
    assert redact_header("User-Agent", "curl/8", KEY) == ("curl/8", False)


def test_redact_cookie_keeps_names():
    out = redact_cookie("a=1; b=2", KEY)
    assert out.startswith("a=[secret:") and "; b=[secret:" in out


def test_redact_query():
    out, names = redact_query("q=shoes&password=hunter2&token=t%20k&x", KEY)
    assert names == ["password", "token"]
    assert out.startswith("q=shoes&password=[secret:") and "hunter2" not in out
    assert out.endswith("&x")
