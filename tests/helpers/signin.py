"""Getting into a dashboard the way a person does: open the address with ``?token=``, keep
the cookie the dashboard hands back, use it for every request after."""

from __future__ import annotations

import http.cookiejar
import re
import urllib.request
from typing import Any

TOKEN_URL = re.compile(r"https?://\S+\?token=[A-Za-z0-9_-]+")


def printed_url(text: str) -> str:
    """The dashboard address a command printed (the one with the token)."""
    found = TOKEN_URL.search(text)
    assert found, f"no address with a token in: {text!r}"
    return found.group(0)


def cookie_from(response: Any) -> str:
    """``name=value`` of the cookie a dashboard set when it took the token."""
    header = response.headers["set-cookie"]
    return header.split(";", 1)[0]


class _Client:
    def __init__(self, ds: Any, cookie: str) -> None:
        self._ds, self._cookie = ds, cookie

    def _headers(self, kw: dict[str, Any]) -> dict[str, Any]:
        headers = dict(kw.pop("headers", None) or {})
        headers.setdefault("cookie", self._cookie)
        return {**kw, "headers": headers}

    async def get(self, path: str, **kw: Any) -> Any:
        return await self._ds.client.get(path, **self._headers(kw))

    async def post(self, path: str, **kw: Any) -> Any:
        return await self._ds.client.post(path, **self._headers(kw))


class SignedIn:
    """A Datasette (from ``serve.make_datasette``) whose ``client`` carries the cookie."""

    def __init__(self, ds: Any, cookie: str) -> None:
        self._ds = ds
        self.client = _Client(ds, cookie)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._ds, name)


async def signed_in(ds: Any) -> SignedIn:
    r = await ds.client.get(f"/-/dashboards/trail?token={ds.gazeback_token}")
    assert r.status_code == 302, r.text
    return SignedIn(ds, cookie_from(r))


def browser_opener() -> urllib.request.OpenerDirector:
    """A urllib opener that keeps cookies and follows redirects, as a browser does."""
    return urllib.request.build_opener(
        urllib.request.ProxyHandler({}),
        urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()),
    )
