"""Datasette plugin: who may read the dashboard, security headers, a Host check, and no
pointers out of SQLite.

Configuration cannot add response headers or refuse requests, so this is a plugin; the
decisions are pure functions (here and in ``access``), the hooks only apply them.

- Every request needs the token of this start (or the cookie the first visit exchanged it
  for), loopback included: another account on the same computer must not read the trail.
  Beyond loopback the password (HTTP Basic) is accepted too. Without either: 401 and a short
  page saying how to get in. A Datasette with this plugin but no token configured refuses
  everything, unless it was started with ``--no-token`` on purpose.
- Every response carries a Content-Security-Policy that lets pages load nothing from
  other origins (no trackers on the tracker dashboard, no exfiltration from a page that
  was made to run script), and refuses framing.
- Requests whose ``Host`` is not a loopback name are refused: a web page that rebinds its
  own domain name to 127.0.0.1 ("DNS rebinding") cannot read your trail.
- ``fts3_tokenizer()`` (which returns a memory address) is replaced on every connection.
- The WireGuard QR codes of added devices (they hold private keys) are not in the database:
  ``/-/gazeback/qr/<device id>.svg`` reads them from the owner-only file beside it.
- In a workshop (``gazeback workshop``, plugin option ``workshop``) the same server gives each
  participant their own page, ``/-/workshop/me/<their token>`` (and ``/handout``, and a POST
  to ``/share`` with Datasette's CSRF token), from the Jinja templates in
  dashboards/templates (autoescaped). These paths need the participant's token, not the
  dashboard's, and answer any Host (phones use the laptop's address); everything else stays
  for this computer only: a loopback client, a loopback Host and the dashboard's token.
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable, Iterable
from datetime import datetime
from pathlib import Path
from typing import Any

from datasette import hookimpl

from gazeback.dashboard import access
from gazeback.db.localfiles import onboarding_path

LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1", "[::1]"})
# Vega compiles chart expressions with Function(): 'unsafe-eval'. Datasette pages carry
# inline scripts and styles: 'unsafe-inline'. Nothing from any other origin.
CSP = (
    "default-src 'self'; script-src 'self' 'unsafe-inline' 'unsafe-eval'; "
    "style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; font-src 'self' data:; "
    "connect-src 'self'; object-src 'none'; base-uri 'self'; form-action 'self'; "
    "frame-ancestors 'none'"
)
SECURITY_HEADERS = [
    (b"content-security-policy", CSP.encode()),
    (b"x-frame-options", b"DENY"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"cross-origin-resource-policy", b"same-origin"),
]
Scope = dict[str, Any]
ASGIApp = Callable[[Scope, Any, Any], Awaitable[None]]
# A participant's own pages; the token is checked by the page (devices.workshop.by_token).
PARTICIPANT_PATH = re.compile(
    r"^/-/workshop/me/(?P<token>[A-Za-z0-9_-]{1,100})(?P<rest>/handout|/summary|/share)?$"
)


def host_allowed(host_header: str | None, allowed: Iterable[str]) -> bool:
    """Is ``Host`` one we serve? ``*`` in ``allowed`` accepts any (served beyond loopback)."""
    allowed = set(allowed)
    if "*" in allowed:
        return True
    if not host_header:
        return False
    host = host_header.strip().lower()
    if host.startswith("["):
        host = host.split("]", 1)[0] + "]"
    elif host.count(":") == 1:
        host = host.split(":", 1)[0]
    return host in allowed


HOW_TO_GET_IN = b"""<!doctype html><meta charset="utf-8"><title>gazeback: open the address \
with its key</title><body style="font:17px/1.45 system-ui,sans-serif;max-width:40em;margin:2em auto">
<h1>This dashboard needs its key</h1>
<p>Only the person who started gazeback can read this trail. Open the address that
<code>gazeback run</code>, <code>gazeback dashboard</code> or <code>gazeback demo</code> printed
when it started: it ends in <code>?token=...</code>.</p>
<p>Lost it? Stop gazeback (Ctrl-C) and start it again: it prints a new address.</p>
"""


async def _reply(
    send: Any,
    status: int,
    body: bytes,
    headers: list[tuple[bytes, bytes]],
    content_type: bytes = b"text/plain; charset=utf-8",
) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", content_type), *SECURITY_HEADERS, *headers],
        }
    )
    await send({"type": "http.response.body", "body": body})


def wrap(
    app: ASGIApp,
    allowed_hosts: Iterable[str],
    password_hash: str | None,
    token: str | None = None,
    no_token: bool = False,
    workshop: bool = False,
) -> ASGIApp:
    """The checks every request goes through before Datasette sees it.

    ``token`` None and not ``no_token``: nothing gets in but the password (if any).
    ``workshop``: participants' own pages pass to their route (which checks their token);
    every other request must come from this computer (a loopback client).
    """
    allowed = list(allowed_hosts)
    gate = access.PasswordGate(password_hash) if password_hash else None
    basic = [(b"www-authenticate", b'Basic realm="gazeback", charset="UTF-8"')] if gate else []

    async def gazeback_security(scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            await app(scope, receive, send)
            return
        if scope["type"] != "http":
            return  # no websockets: nothing in the dashboard uses them
        if workshop and PARTICIPANT_PATH.match(scope["path"]):
            await app(scope, receive, _with_headers(send))
            return
        if workshop and not _loopback_client(scope):
            await _reply(send, 403, b"gazeback: only participants' own pages answer here\n", [])
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        if not host_allowed(headers.get("host"), allowed):
            await _reply(send, 403, b"gazeback: this dashboard only answers on 127.0.0.1\n", [])
            return
        name = access.cookie_name((scope.get("server") or (None, None))[1])
        given, rest = access.split_token(scope.get("query_string", b"").decode("latin-1"))
        if token and access.same(given, token):
            if scope["method"] in ("GET", "HEAD"):
                location = access.local_location(scope["path"], rest)
                await _reply(send, 302, b"", [
                    (b"location", location.encode("utf-8")),
                    (b"set-cookie", access.set_cookie(name, token)),
                    (b"cache-control", b"no-store"),
                ])  # fmt: skip
                return
            scope = {**scope, "query_string": rest.encode("latin-1")}
        elif no_token and not gate:
            pass
        elif token and access.same(access.cookies(headers.get("cookie")).get(name), token):
            pass
        elif token and access.same(_bearer(headers.get("authorization")), token):
            pass
        elif gate and (password := access.basic_password(headers.get("authorization"))):
            ok, wait = await gate.check((scope.get("client") or ("?",))[0], password)
            if wait:
                await _reply(send, 429, b"gazeback: too many wrong passwords, wait a minute\n",
                             [(b"retry-after", str(wait).encode())])  # fmt: skip
                return
            if not ok:
                await _reply(send, 401, b"gazeback: wrong password\n", basic)
                return
        else:
            html_type = b"text/html; charset=utf-8"
            await _reply(send, 401, HOW_TO_GET_IN, basic, html_type)
            return

        await app(scope, receive, _with_headers(send))

    return gazeback_security


def _with_headers(send: Any) -> Callable[[dict[str, Any]], Awaitable[None]]:
    async def send_with_headers(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            message = {**message, "headers": [*message.get("headers", []), *SECURITY_HEADERS]}
        await send(message)

    return send_with_headers


def _loopback_client(scope: Scope) -> bool:
    client = (scope.get("client") or ("",))[0] or ""
    return client in ("127.0.0.1", "::1") or client.startswith("127.")


def _bearer(authorization: str | None) -> str | None:
    if authorization and authorization.lower().startswith("bearer "):
        return authorization[7:].strip()
    return None


@hookimpl  # type: ignore[untyped-decorator]
def asgi_wrapper(datasette: Any) -> Callable[[ASGIApp], ASGIApp]:
    config = datasette.plugin_config("gazeback") or {}
    allowed = config.get("allowed_hosts") or sorted(LOOPBACK_HOSTS)

    def wrapper(app: ASGIApp) -> ASGIApp:
        from gazeback.dashboard.csvsafe import csv_safe  # .csv downloads: no formulas (#17)

        return wrap(
            csv_safe(app), allowed, config.get("password_hash"), config.get("token") or None,
            bool(config.get("no_token")), bool(config.get("workshop")),
        )  # fmt: skip

    return wrapper


def _refuse(*args: Any) -> None:
    raise ValueError("fts3_tokenizer() is switched off in gazeback's dashboard")


@hookimpl  # type: ignore[untyped-decorator]
def prepare_connection(conn: Any) -> None:
    # fts3_tokenizer('simple') answers with a memory address (a gift to anyone exploiting
    # a memory bug). SQLITE_DBCONFIG_ENABLE_FTS3_TOKENIZER only governs the two-argument
    # form, so both forms are replaced by a function that refuses; FTS tables keep working
    # (they find their tokenizers without this SQL function).
    for n_args in (1, 2):
        conn.create_function("fts3_tokenizer", n_args, _refuse)


def rollup_notice(horizon: str | None) -> str | None:
    """What every page says once detail before ``horizon`` (``2026-09-03T14``) was rolled up."""
    if not horizon:
        return None
    try:
        at = datetime.strptime(horizon, "%Y-%m-%dT%H")
    except ValueError:
        return None
    when = f"{at.day} {at:%B %Y}" + ("" if at.hour == 0 else f", {at.hour:02d}:00 UTC")
    return (
        f"Detail before {when} was rolled up into hourly totals. Totals and charts still count "
        "everything; lists of single requests, the personal data found in each one and what "
        "each request carried start then."
    )


@hookimpl  # type: ignore[untyped-decorator]
def extra_body_script(datasette: Any, database: str | None) -> Any:
    async def script() -> str:
        names = [database] if database else [n for n in datasette.databases if n != "_internal"]
        for name in names[:1]:
            try:
                rows = await datasette.get_database(name).execute(
                    "select max(horizon) from rollups"
                )
            except Exception:  # not a gazeback trail, or one from before m041
                return ""
            notice = rollup_notice(rows.first()[0] if rows.first() else None)
            if notice:  # a paragraph at the top of the page (json: a safe JS string)
                return (
                    "(function(){var p=document.createElement('p');"
                    "p.className='gazeback-rollup-notice';p.setAttribute('role','note');"
                    f"p.textContent={json.dumps(notice)};"
                    "var c=document.querySelector('section.content')||document.body;"
                    "c.insertBefore(p,c.firstChild);})();"
                )
        return ""

    return script


def _qr_codes(db_path: str | None) -> dict[str, str]:
    if not db_path:
        return {}
    path = onboarding_path(Path(db_path))
    try:
        found = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return found if isinstance(found, dict) else {}


@hookimpl  # type: ignore[untyped-decorator]
def register_routes(datasette: Any) -> list[tuple[str, Any]]:
    from datasette.utils.asgi import Response

    async def qr(request: Any) -> Any:
        database = datasette.get_database()
        svg = _qr_codes(database.path).get(request.url_vars["device_id"])
        if not isinstance(svg, str):
            return Response.text("No QR code for this device: run `gazeback device add`.", 404)
        return Response(svg, content_type="image/svg+xml",
                        headers={"cache-control": "no-store"})  # fmt: skip

    async def ask_them(request: Any) -> Any:
        from datetime import date

        from sqlite_utils import Database

        from gazeback.dashboard import ask
        from gazeback.db.asks import AskError

        database = datasette.get_database()
        args = {k: request.args.getlist(k) for k in request.args.keys()}

        def page(conn: Any) -> tuple[str, Any]:
            """(template, its context), or ("", a finished page), or ("error", the reason)."""
            db = Database(conn)
            try:
                if request.path.endswith("/requests"):
                    return "ask_requests.html", ask.requests_context(db, date.today())
                if args.get("format") == ["html"]:
                    return "", ask.letter_for(db, Path(database.path), args)[0].html()
                return "ask_them.html", {"a": ask.ask_context(db, Path(database.path), args)}
            except (AskError, ValueError, OSError) as e:
                return "error", f"gazeback: {e}.\n"

        if request.method == "POST":
            form = dict(await request.post_vars())

            def write(conn: Any) -> str | None:
                try:
                    ask.record_sent(Database(conn), form)
                except (AskError, ValueError) as e:
                    return str(e)
                return None

            problem = await database.execute_write_fn(write, block=True)
            if problem:
                return Response.text(f"gazeback: {problem}. Nothing was recorded.\n", 400)
            return Response.redirect("/-/gazeback/requests")
        template, found = await database.execute_fn(page)
        if template == "error":
            return Response.text(found, 400, headers={"cache-control": "no-store"})
        if template:
            found = await datasette.render_template(template, found, request)
        return Response.html(found, headers={"cache-control": "no-store"})

    async def participant(request: Any) -> Any:
        return await participant_page(datasette, request)

    async def experiment(request: Any) -> Any:
        return await _experiment_page(datasette, request)

    async def summary(request: Any) -> Any:
        return Response.html(await summary_page(datasette.get_database(), request.args))

    return [
        (r"^/-/gazeback/qr/(?P<device_id>[0-9]+)\.svg$", qr),
        (r"^/-/gazeback/ask$", ask_them),
        (r"^/-/gazeback/requests$", ask_them),
        (r"^/-/gazeback/experiment$", experiment),
        (r"^/-/gazeback/summary$", summary),
        (PARTICIPANT_PATH.pattern, participant),
    ]


async def _experiment_page(datasette: Any, request: Any) -> Any:
    """GET: a form to start or stop a run; POST: do it (the same as `gazeback experiment
    start` / `stop`). The page is dashboards/templates/experiment.html (autoescaped)."""
    import sqlite_utils
    from datasette.utils.asgi import Response

    from gazeback.db import experiments as ex

    database = datasette.get_database()
    shown: dict[str, Any] = {"error": "", "done": None}
    status, name = 200, ""
    if request.method == "POST":
        form = await request.post_vars()
        action, name = form.get("action"), (form.get("name") or "").strip()

        def write(conn: Any) -> dict[str, Any]:
            db = sqlite_utils.Database(conn)
            if action == "start":
                return ex.start(db, name, form.get("condition") or "")
            if action == "stop":
                return ex.stop(db)
            raise ex.ExperimentError("the form asks for neither start nor stop")

        try:
            run = await database.execute_write_fn(write, block=True)
        except ex.ExperimentError as e:
            shown["error"], status = str(e), 400
        else:
            verb = "started" if action == "start" else "stopped"
            shown["done"] = {"run": run["run"], "condition": run["condition"], "verb": verb}
    going = await database.execute_fn(lambda conn: ex.running(sqlite_utils.Database(conn)))
    name = name or (going or {}).get("experiment", "")
    page = await datasette.render_template(
        "experiment.html", {**shown, "going": going, "name": name}, request
    )
    return Response.html(page, status=status)


async def summary_page(database: Any, args: Any) -> str:
    """``/-/gazeback/summary``: the one-page summary (as ``gazeback summary`` writes it),
    with a form above it (not printed) to pick the device, app, period and whether to
    name the sites visited."""
    from html import escape

    import sqlite_utils

    from gazeback.share.summary import collect
    from gazeback.share.summarypage import render_html

    def pick(name: str) -> str | None:
        value = (args.get(name) or "").strip()
        return value[:200] or None

    days_text = pick("days") or "30"
    days = int(days_text) if days_text.isdigit() and 0 < int(days_text) < 100_000 else None
    device, app, sites = pick("device"), pick("app"), args.get("sites") == "1"
    room = args.get("room") == "1"

    def build(conn: Any) -> str:
        db = sqlite_utils.Database(conn)
        devices = [r[0] for r in conn.execute("select label from devices order by label")]
        # the dashboards' App box: the name people know, "(inferred)" when only guessed
        apps = [(r[0], r[1]) for r in conn.execute(
            "select app, label from dash_apps order by label limit 500")]  # fmt: skip
        if room:  # a workshop's handout: only what at least two phones share
            return render_html(collect(db, days=days, room=True))
        s = collect(db, device=device if device in devices else None, days=days,
                    app=app if app in dict(apps) else None, include_sites=sites)  # fmt: skip

        def options(values: list[tuple[str, str]], chosen: str | None, everything: str) -> str:
            opts = [f'<option value="">{everything}</option>'] + [
                f'<option value="{escape(v)}"{" selected" if v == chosen else ""}>{escape(label)}'
                "</option>"
                for v, label in values
            ]
            return "".join(opts)

        form = (
            '<form class=noprint method=get action="/-/gazeback/summary">'
            f"<label>Device <select name=device>{options([(d, d) for d in devices], device, 'all devices')}</select></label> "
            f"<label>App <select name=app>{options(apps, app, 'all apps')}</select></label> "
            f'<label>Last <input name=days size=4 value="{escape(days_text)}"> days</label> '
            f"<label><input type=checkbox name=sites value=1{' checked' if sites else ''}> "
            "name the sites I visited</label> <button>Show</button> · print this page or save it "
            "as PDF (Ctrl-P / ⌘-P); it fits one A4 or Letter page. "
            '<a href="/-/dashboards/trail">Back to the dashboard</a></form>'
        )
        return render_html(s, form=form)

    html: str = await database.execute_fn(build)
    return html


NO_STORE = {"cache-control": "no-store"}  # a participant's page is theirs alone


async def participant_page(datasette: Any, request: Any) -> Any:
    """``/-/workshop/me/<token>``: the participant's own page; ``/handout``: the printable
    handout; ``/summary``: their one-page summary; ``POST /share`` (share=1 or 0): the opt-in to show their details to the room.
    An unknown token, another method or a workshop that is not running: 404."""
    import sqlite_utils
    from datasette.utils.asgi import Response

    from gazeback.devices import workshop as ws

    config = datasette.plugin_config("gazeback") or {}
    token, rest = request.url_vars["token"], request.url_vars.get("rest") or ""
    method = request.method
    not_found = Response.html("<!doctype html><title>Not found</title><p>Not found.</p>", 404,
                              headers=NO_STORE)  # fmt: skip
    if not config.get("workshop") or (method == "POST") != (rest == "/share"):
        return not_found
    if method not in ("GET", "HEAD", "POST"):
        return not_found
    database = datasette.get_database()

    def read(conn: Any) -> tuple[Any, dict[str, Any]] | None:
        db = sqlite_utils.Database(conn)
        participant = ws.by_token(db, token)
        return None if participant is None else (participant, ws.summary(db, participant))

    if method == "POST":
        share = (await request.post_vars()).get("share") == "1"

        def write(conn: Any) -> tuple[Any, dict[str, Any]] | None:
            db = sqlite_utils.Database(conn)
            participant = ws.by_token(db, token)
            if participant is not None:
                ws.set_shared(db, participant, share)
            return None if participant is None else (participant, {})

        found = await database.execute_write_fn(write, block=True)
    else:
        found = await database.execute_fn(read)
    if found is None:
        return not_found
    participant, summary = found
    base = f"/-/workshop/me/{participant.token}"
    if method == "POST":
        return Response.redirect(base, status=303, headers=NO_STORE)
    if rest == "/summary":  # their own one-page summary, of their phone only
        page = await database.execute_fn(
            lambda conn: ws.own_summary(sqlite_utils.Database(conn), participant)
        )
        return Response.html(page, headers=NO_STORE)
    template = "workshop_handout.html" if rest == "/handout" else "workshop_me.html"
    html = await datasette.render_template(template, {"s": summary, "base": base}, request)
    return Response.html(html, headers=NO_STORE)


@hookimpl  # type: ignore[untyped-decorator]
def render_cell(value: Any, column: str, table: str | None, database: str, datasette: Any) -> Any:
    # A request's headers are stored once per set (header_sets, #19): its page and the
    # requests table show the set itself, one "name: value" per line, not its id.
    if table != "requests" or column != "header_set_id" or not isinstance(value, int):
        return None

    async def headers() -> Any:
        from markupsafe import Markup, escape

        rows = await datasette.get_database(database).execute(
            "select headers from header_sets where id = ?", [value]
        )
        if not rows.rows:
            return None
        try:
            pairs = json.loads(rows.rows[0][0])
        except ValueError:
            return None
        lines = "<br>".join(f"{escape(str(k))}: {escape(str(v))}" for k, v in pairs)
        return Markup(
            f'<a href="/{escape(database)}/header_sets/{value}">set {value}</a><br>{lines}'
        )

    return headers
