"""The dashboard's ``.csv`` downloads, safe to open in a spreadsheet (#17).

A stored value from another tool's file or from a tracker (a host name, an app name, a
header) can start with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return: Excel,
LibreOffice and Google Sheets run such a cell as a formula (``=cmd|'/c calc'!A1``,
``=HYPERLINK(…)``). Datasette 0.65 has no hook for CSV cells (``render_cell`` is HTML only),
so this ASGI wrapper rewrites each CSV body as it streams: such a cell gets a leading ``'``
(the OWASP advice), which spreadsheets show as text. Numbers (``-3``, ``+1.5``) stay as they
are. Importers also refuse such host and app names (``imports.base.host_problem``,
``pipeline.app_problem``): this is the second line of defence, for every table and query.
"""

from __future__ import annotations

import codecs
import csv
import io
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any
from urllib.parse import parse_qs

Scope = dict[str, Any]
Message = MutableMapping[str, Any]
ASGIApp = Callable[[Scope, Any, Any], Awaitable[None]]

FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def neutralise(cell: str) -> str:
    """``cell`` as a spreadsheet must show it: text, never a formula."""
    if not cell.startswith(FORMULA_START):
        return cell
    try:
        float(cell)
        return cell  # a number: -3, +1.5, -1e3
    except ValueError:
        return "'" + cell


def rewrite(text: str) -> str:
    """Whole CSV rows with every formula-like cell neutralised."""
    out = io.StringIO()
    writer = csv.writer(out)
    for row in csv.reader(io.StringIO(text, newline="")):
        writer.writerow([neutralise(c) for c in row])
    return out.getvalue()


def _is_csv(scope: Scope) -> bool:
    query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
    if "_trace" in query:
        return False  # the HTML debug page: Datasette escapes it, nobody opens it as CSV
    return str(scope.get("path", "")).endswith(".csv") or query.get("_format") == ["csv"]


def csv_safe(app: ASGIApp) -> ASGIApp:
    """``app`` with its CSV responses neutralised (see the module's docstring)."""

    async def wrapped(scope: Scope, receive: Any, send: Any) -> None:
        if scope.get("type") != "http" or not _is_csv(scope):
            await app(scope, receive, send)
            return
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        carry = ""
        rewriting = False

        async def send_safe(message: Message) -> None:
            nonlocal carry, rewriting
            if message["type"] == "http.response.start":
                headers = message.get("headers") or []
                kind = dict(headers).get(b"content-type", b"")
                rewriting = kind.startswith((b"text/plain", b"text/csv"))
                if rewriting:  # the length changes
                    headers = [(k, v) for k, v in headers if k.lower() != b"content-length"]
                await send({**message, "headers": headers})
                return
            if message["type"] != "http.response.body" or not rewriting:
                await send(message)
                return
            more = message.get("more_body", False)
            carry += decoder.decode(message.get("body", b""), final=not more)
            # Datasette writes one row per chunk; a row cut inside a quoted cell waits
            if more and not (carry.endswith("\n") and carry.count('"') % 2 == 0):
                return
            body, carry = rewrite(carry), ""
            await send({**message, "body": body.encode("utf-8")})

        await app(scope, receive, send_safe)

    return wrapped
