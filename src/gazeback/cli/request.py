"""``gazeback request COMPANY``: the data access request, with evidence, and its deadlines."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import click

from gazeback.cli.options import DbCommand, db_hint, db_option, open_existing_db
from gazeback.db import asks
from gazeback.db.localfiles import write_private
from gazeback.knowledge import datenanfragen, letters
from gazeback.knowledge.classify import load_index


def _day(value: str | None, option: str) -> date:
    if value is None:
        return date.today()
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(
            f"{value!r} is not a date like 2026-12-02", param_hint=option
        ) from None


@click.command(cls=DbCommand)
@db_option
@click.argument("company", required=False)
@click.option("--lang", default="en", show_default=True,
              type=click.Choice(datenanfragen.LANGUAGES), help="Language of the letter.")  # fmt: skip
@click.option("--law", default="gdpr", show_default=True, type=click.Choice(letters.LAWS),
              help="The law you ask under.")  # fmt: skip
@click.option("--include", "include", multiple=True, type=int, metavar="ID",
              help="Put this identifier of yours (an id listed below the letter) into it (repeatable).")  # fmt: skip
@click.option(
    "--include-all", is_flag=True, help="Put every identifier this company received into it."
)
@click.option("--format", "fmt", default="text", show_default=True,
              type=click.Choice(["text", "mailto", "html"]), help="Plain text, a mailto: link, or a printable page.")  # fmt: skip
@click.option(
    "--output", "-o", type=click.Path(dir_okay=False, path_type=Path), help="Write it to this file."
)
@click.option(
    "--mark-sent", is_flag=True, help="Record that you sent it (starts the one-month clock)."
)
@click.option("--method", default="email", show_default=True, type=click.Choice(asks.METHODS))
@click.option("--on", "on", metavar="DATE", help="Date you sent it (default: today).")
@click.option("--list", "list_", is_flag=True, help="List the requests you sent and what is due.")
@click.option(
    "--reminder", type=int, metavar="N", help="Write the reminder (admonition) for sent request N."
)
@click.option(
    "--complaint",
    type=int,
    metavar="N",
    help="Write the complaint to the authority for sent request N.",
)
@click.option("--answered", type=int, metavar="N", help="Record that sent request N was answered.")
@click.option(
    "--reminded", type=int, metavar="N", help="Record that you sent the reminder for request N."
)
@click.option(
    "--complained", type=int, metavar="N", help="Record that you sent the complaint for request N."
)
@click.option(
    "--country",
    default="",
    metavar="CC",
    help="Your country (two letters), for the authority a complaint goes to.",
)
@click.option("--today", hidden=True, help="Pretend today is this date (tests).")
def request(
    db_path: Path, company: str | None, lang: str, law: str, include: tuple[int, ...],
    include_all: bool, fmt: str, output: Path | None, mark_sent: bool, method: str,
    on: str | None, list_: bool, reminder: int | None, complaint: int | None,
    answered: int | None, reminded: int | None, complained: int | None, country: str,
    today: str | None,
) -> None:  # fmt: skip
    """Ask COMPANY what it knows about you: the letter, with evidence from your trail.

    The letter goes to the company's privacy contact (datenanfragen.de records) and carries an
    annex: when and from which devices your trail reached it, the hosts, the kinds of data,
    and those of your identifiers you choose to include (--include ID, --include-all).
    gazeback sends nothing: you send it, then record that with --mark-sent.

    Example:

        gazeback request "LiveRamp" --lang de --include 1

        gazeback request Google --format mailto --mark-sent

        gazeback request --list
    """
    db = open_existing_db(db_path)
    now = _day(today, "--today")
    try:
        for field, rid in (("answered_on", answered), ("reminded_on", reminded),
                           ("complained_on", complained)):  # fmt: skip
            if rid is not None:
                asks.mark(db, rid, field, _day(on, "--on"))
                click.echo(f"Sent request {rid}: {field.replace('_on', '')} on {_day(on, '--on')}.")
                return
        if list_:
            _list(db, now, db_path)
            return
        index = load_index()
        directory = datenanfragen.load()
        if reminder is not None or complaint is not None:
            rid = reminder if reminder is not None else complaint
            found = list(db.query("select * from requests_sent where id = ?", [rid]))
            if not found:
                raise asks.AskError(
                    f"no sent request with id {rid} (see `gazeback request --list`)"
                )
            sent = found[0]
            comp, tids = asks.resolve(db, index, sent["company_id"])
            chosen = asks.chosen_identifiers(db, db_path, tids, list(include), include_all)
            kind = "admonition" if reminder is not None else "complaint"
            # --lang on the command line wins; else the language the request was sent in
            ctx = click.get_current_context()
            given = ctx.get_parameter_source("lang") == click.core.ParameterSource.COMMANDLINE
            letter = letters.follow_up(
                directory, kind, comp, asks.evidence(db, tids), chosen,
                date.fromisoformat(sent["sent_on"]), lang if given else sent["lang"] or lang,
                country,
            )  # fmt: skip
            if kind == "complaint" and not country:
                click.echo(
                    "Note: a complaint goes to the supervisory authority of the country you "
                    "live in: give it as --country XX (e.g. --country de); without it the "
                    "letter is addressed to the company's first relevant country.",
                    err=True,
                )
            if asks.status(sent, now) != "overdue":
                click.echo(
                    f"Note: request {rid} is not overdue yet (due {sent['due_on']}).", err=True
                )
            _emit(letter, fmt, output)
            return
        if not company:
            raise click.UsageError("name a COMPANY (or use --list)")
        comp, tids = asks.resolve(db, index, company)
        chosen = asks.chosen_identifiers(db, db_path, tids, list(include), include_all)
        letter = letters.access_letter(
            directory, comp, asks.evidence(db, tids), chosen, lang, law, country
        )
        _emit(letter, fmt, output)
        note = letters.ownership_note(comp)
        if note:
            click.echo(f"\n{comp.name}: {note}.", err=True)
        for n in letter.notes:
            click.echo(n, err=True)
        received = asks.received_identities(db, tids)
        if received and not mark_sent:
            click.echo(
                "\nYour identifiers this company received (add with --include ID):", err=True
            )
            for r in received:
                tick = "x" if include_all or r["id"] in include else " "
                click.echo(
                    f"  [{tick}] {r['id']:>3}  {r['kind']:10} {r['label']:16} {r['masked']}  ({r['times']} times)",
                    err=True,
                )
        if mark_sent:
            rid = asks.mark_sent(
                db, comp, letter.record, law, letter.lang, method, _day(on, "--on")
            )
            due = db.execute("select due_on from requests_sent where id = ?", [rid]).fetchone()[0]
            click.echo(f"\nRecorded as sent request {rid}; the answer is due by {due}.", err=True)
    except (asks.AskError, datenanfragen.DataError, ValueError, OSError) as e:
        raise click.ClickException(f"{e}. Nothing was recorded.") from None


def _emit(letter: letters.Letter, fmt: str, output: Path | None) -> None:
    if fmt == "html":
        text = letter.html()
    elif fmt == "mailto":
        link = letter.mailto()
        if link is None:
            raise asks.AskError("this recipient has no e-mail address: use --format text or html")
        text = link + "\n"
    else:
        text = letter.text()
    if output is None:
        click.echo(text, nl=False)
        return
    try:
        write_private(output, text)
    except OSError as e:
        raise asks.AskError(f"cannot write {output}: {e.strerror}") from None
    click.echo(f"Wrote {output}", err=True)


def _list(db: object, today: date, db_path: Path) -> None:
    rows = asks.sent_requests(db, today)  # type: ignore[arg-type]
    if not rows:
        click.echo("No requests recorded as sent.")
        return
    for r in rows:
        step = (
            f" → write the {r['next_step']}: gazeback request --{'reminder' if r['next_step'] == 'admonition' else 'complaint'} {r['id']}{db_hint(db_path)}"
            if r["next_step"]
            else ""
        )
        click.echo(
            f"{r['id']:>3}  {r['company_name']:28} sent {r['sent_on']}  due {r['due_on']}  {r['status']}{step}"
        )
