"""Dashboard pages for "Ask them what they know": the letter with evidence, and the deadlines.

``/-/gazeback/ask?company=NAME`` shows the recipient, the identifiers the company received as
checkboxes (none ticked until the person ticks them), the letter, a ``mailto:`` link and a
printable page; a form records it as sent. ``/-/gazeback/requests`` lists what was sent, what
is due or overdue, and offers the reminder and the complaint once the deadline has passed.
The pages are the Jinja templates ``ask_them.html`` and ``ask_requests.html`` in
dashboards/templates (autoescaped); this module gives them what they show.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from sqlite_utils import Database

from gazeback.db import asks
from gazeback.knowledge import datenanfragen, letters
from gazeback.knowledge.classify import load_index


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


def ask_context(db: Database, db_path: Path, args: dict[str, list[str]]) -> dict[str, Any]:
    """What ``ask_them.html`` shows: the letter the query string asks for, the identifiers the
    company received (ticked only if asked for), and the links to send or print it."""
    letter, comp, received, include = letter_for(db, db_path, args)
    one = {k: v[0] for k, v in args.items() if v}
    query = [(k, v) for k, vs in args.items() for v in vs if k != "format"]
    title = {"access": "Ask them what they know", "admonition": "Reminder",
             "complaint": "Complaint to the supervisory authority"}[letter.kind]  # fmt: skip
    return {
        "kind": letter.kind,
        "title": title,
        "company": comp.name,
        "company_id": comp.id,
        "note": letters.ownership_note(comp),
        "warning": letter.warning,
        "recipient_name": letter.recipient_name,
        "recipient_address": ", ".join(letter.recipient_address.splitlines()),
        "contact": letter.email or letter.webform or "no e-mail known",
        "hidden": [(k, v) for k, v in one.items() if k in ("company", "followup", "request")],
        "received": [{**r, "checked": r["id"] in include} for r in received],
        "langs": datenanfragen.LANGUAGES,
        "lang": letter.lang,
        "law": letter.law,
        "mailto": letter.mailto(),
        "printable": "/-/gazeback/ask?" + urlencode([*query, ("format", "html")]),
        "text": letter.text(),
        "today": date.today().isoformat(),
    }


def requests_context(db: Database, today: date) -> dict[str, Any]:
    """What ``ask_requests.html`` shows: every request sent, when it is due, what comes next."""
    rows = []
    for r in asks.sent_requests(db, today):
        step = r["next_step"]
        rows.append({
            **r,
            "step_href": f"/-/gazeback/ask?{urlencode({'followup': step, 'request': r['id']})}"
            if step else "",
            "step_label": "Write the reminder" if step == "admonition" else "Write the complaint",
        })  # fmt: skip
    return {"rows": rows}


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
