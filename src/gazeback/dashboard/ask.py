"""Dashboard pages for "Ask them what they know": the letter with evidence, and the deadlines.

``/-/gazeback/ask?company=NAME`` shows the recipient, the identifiers the company received as
checkboxes (none ticked until the person ticks them), the letter, a ``mailto:`` link and a
printable page; a form records it as sent. ``/-/gazeback/requests`` lists what was sent, what
is due or overdue, and offers the reminder and the complaint once the deadline has passed.
"""

from __future__ import annotations

import html
from datetime import date
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from sqlite_utils import Database

from gazeback.db import asks
from gazeback.knowledge import datenanfragen, letters
from gazeback.knowledge.classify import load_index

e = html.escape
STYLE = (
    "<style>body{font:16px/1.5 system-ui,sans-serif;max-width:52em;margin:1.5em auto;padding:0 1em}"
    "pre{white-space:pre-wrap;background:#f6f6f6;padding:1em}.warn{border:2px solid #b00;padding:.5em}"
    "table{border-collapse:collapse}td,th{padding:.3em .6em;border-bottom:1px solid #ddd;text-align:left}"
    ".overdue{color:#b00;font-weight:bold}.due{color:#a60}</style>"
)


def _page(title: str, body: str) -> str:
    return (
        f'<!doctype html><html lang="en"><meta charset="utf-8"><title>{e(title)}</title>{STYLE}'
        f'<body><p><a href="/-/dashboards/company">← companies</a> · '
        f'<a href="/-/gazeback/requests">requests sent</a></p>{body}</body></html>'
    )


def _ints(values: list[str]) -> list[int]:
    return [int(v) for v in values if v.isdigit()]


def letter_for(
    db: Database, db_path: Path, args: dict[str, list[str]]
) -> tuple[letters.Letter, letters.Company, list[dict[str, Any]], list[int]]:
    """The letter the query string asks for (company or sent request; lang; include)."""
    one = {k: v[0] for k, v in args.items() if v}
    lang = one.get("lang", "en") if one.get("lang") in datenanfragen.LANGUAGES else "en"
    law = one.get("law", "gdpr") if one.get("law") in letters.LAWS else "gdpr"
    include = _ints(args.get("include", []))
    index, directory = load_index(), datenanfragen.load()
    follow = one.get("followup")
    if follow in ("admonition", "complaint") and one.get("request", "").isdigit():
        row = next(
            iter(db.query("select * from requests_sent where id = ?", [int(one["request"])])), None
        )
        if row is None:
            raise asks.AskError(f"no sent request with id {one['request']}")
        comp, tids = asks.resolve(db, index, row["company_id"])
        chosen = asks.chosen_identifiers(db, db_path, tids, include, False)
        letter = letters.follow_up(directory, follow, comp, asks.evidence(db, tids), chosen,
                                   date.fromisoformat(row["sent_on"]), row["lang"] or lang)  # fmt: skip
    else:
        comp, tids = asks.resolve(db, index, one.get("company", ""))
        chosen = asks.chosen_identifiers(db, db_path, tids, include, False)
        letter = letters.access_letter(directory, comp, asks.evidence(db, tids), chosen, lang, law)
    return letter, comp, asks.received_identities(db, tids), include


def ask_page(db: Database, db_path: Path, args: dict[str, list[str]], csrftoken: str) -> str:
    letter, comp, received, include = letter_for(db, db_path, args)
    one = {k: v[0] for k, v in args.items() if v}
    note = letters.ownership_note(comp)
    hidden = "".join(
        f'<input type="hidden" name="{e(k)}" value="{e(v)}">'
        for k, v in one.items() if k in ("company", "followup", "request")
    )  # fmt: skip
    boxes = (
        "".join(
            f'<label><input type="checkbox" name="include" value="{r["id"]}"'
            f"{' checked' if r['id'] in include else ''}> {e(r['label'])} ({e(r['kind'])}, "
            f"{e(r['masked'])}), received {r['times']} times</label><br>"
            for r in received
        )
        or "<p>No identifier you registered reached this company.</p>"
    )
    langs = "".join(
        f"<option{' selected' if x == letter.lang else ''}>{x}</option>"
        for x in datenanfragen.LANGUAGES
    )
    query = [(k, v) for k, vs in args.items() for v in vs if k != "format"]
    printable = "/-/gazeback/ask?" + urlencode([*query, ("format", "html")])
    mailto = letter.mailto()
    warn = f'<p class="warn">{e(letter.warning)}</p>' if letter.warning else ""
    title = {"access": "Ask them what they know", "admonition": "Reminder",
             "complaint": "Complaint to the supervisory authority"}[letter.kind]  # fmt: skip
    sent_form = ""
    if letter.kind == "access":
        sent_form = (
            '<form method="post" action="/-/gazeback/requests">'
            f'<input type="hidden" name="csrftoken" value="{e(csrftoken)}">'
            f'<input type="hidden" name="company" value="{e(comp.id)}">'
            f'<input type="hidden" name="lang" value="{e(letter.lang)}">'
            f'<input type="hidden" name="law" value="{e(letter.law)}">'
            '<p>Sent it? <select name="method"><option>email</option><option>post</option>'
            "<option>webform</option><option>other</option></select> on "
            f'<input type="date" name="on" value="{date.today().isoformat()}"> '
            "<button>Record as sent (the one-month clock starts)</button></p></form>"
        )
    return _page(
        title,
        f"<h1>{title}: {e(comp.name)}</h1>"
        + (f"<p>{e(comp.name)}: {e(note)}.</p>" if note else "")
        + warn
        + f"<p>To: <strong>{e(letter.recipient_name)}</strong>, "
        + e(", ".join(letter.recipient_address.splitlines()))
        + f" — {e(letter.email or letter.webform or 'no e-mail known')}</p>"
        + '<form method="get" action="/-/gazeback/ask">'
        + hidden
        + "<h2>Which of your identifiers go into the letter?</h2>"
        + "<p>They are yours; including them lets the company find your data. Nothing is sent "
        "by gazeback.</p>"
        + boxes
        + f'<p>Language: <select name="lang">{langs}</select> <button>Update the letter</button></p></form>'
        + (f'<p><a href="{e(mailto)}">Open in your e-mail program</a> · ' if mailto else "<p>")
        + f'<a href="{e(printable)}">Printable page</a></p>'
        + f"<pre>{e(letter.text())}</pre>"
        + sent_form,
    )


def requests_page(db: Database, today: date) -> str:
    rows = asks.sent_requests(db, today)
    if not rows:
        return _page("Requests sent", "<h1>Requests sent</h1><p>None recorded yet. Open a "
                     "company's page and press “Ask them what they know”.</p>")  # fmt: skip
    out = ["<h1>Requests sent</h1><table><tr><th>Company</th><th>Sent</th><th>Due</th>"
           "<th>Status</th><th>Next</th></tr>"]  # fmt: skip
    for r in rows:
        step = ""
        if r["next_step"]:
            q = urlencode({"followup": r["next_step"], "request": r["id"]})
            label = (
                "Write the reminder" if r["next_step"] == "admonition" else "Write the complaint"
            )
            step = f'<a href="/-/gazeback/ask?{q}">{label}</a>'
        out.append(
            f"<tr><td>{e(r['company_name'])}</td><td>{r['sent_on']}</td><td>{r['due_on']}</td>"
            f'<td class="{r["status"]}">{r["status"]}</td><td>{step}</td></tr>'
        )
    out.append("</table>")
    return _page("Requests sent", "".join(out))


def record_sent(db: Database, form: dict[str, str]) -> None:
    index = load_index()
    comp, _ = asks.resolve(db, index, form.get("company", ""))
    lang = form.get("lang", "en")
    directory = datenanfragen.load()
    slug, _, _ = letters.recipient(directory, comp, lang)
    try:
        on = date.fromisoformat(form.get("on") or date.today().isoformat())
    except ValueError:
        raise asks.AskError(f"{form.get('on')!r} is not a date") from None
    asks.mark_sent(db, comp, slug, form.get("law", "gdpr"), lang, form.get("method", "email"), on)
