"""``gazeback news`` and ``gazeback alerts``: what is new since each device's baseline (#16),
and the debounced ``--notify-command`` of ``gazeback run``."""

from __future__ import annotations

import re
import shlex
import subprocess
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click

from gazeback.cli.options import DbCommand, db_option, open_existing_db
from gazeback.db import alerts
from gazeback.timestamps import parse_duration


def since_iso(since: str, now: datetime | None = None) -> str:
    """``7d`` / ``12h`` / ``30m`` / ``2w`` or an ISO date → ISO time; ValueError if neither."""
    period = parse_duration(since)
    now = now or datetime.now(UTC)
    if period is not None:
        t = now - period
    else:
        try:
            t = datetime.fromisoformat(since.strip().replace("Z", "+00:00"))
        except ValueError:
            raise ValueError(
                f"--since {since!r} is neither a duration (7d, 12h, 30m, 2w) nor a date "
                "(2026-11-27)"
            ) from None
        if t.tzinfo is None:
            t = t.replace(tzinfo=UTC)
    return t.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@click.command(cls=DbCommand)
@db_option
@click.option("--since", default="7d", show_default=True, help="7d, 12h, 30m, 2w or a date.")
def news(db_path: Path, since: str) -> None:
    """What is new: companies, kinds of data, identifiers, devices and pinned hosts that
    appeared after each device's baseline (its first day, or `gazeback alerts baseline`).

    Example:

        gazeback news

        gazeback news --since 24h
    """
    try:
        start = since_iso(since)
    except ValueError as e:
        raise click.ClickException(str(e)) from None
    db = open_existing_db(db_path)
    alerts.refresh(db)
    rows = alerts.news(db, start)
    if not rows:
        click.echo(f"Nothing new since {start[:16].replace('T', ' ')} UTC.")
    for r in rows:
        when = (r["seen_at"] or r["raised_at"])[:16].replace("T", " ")
        click.echo(f"{when}  {r['text']}  (request {r['request_id']})")


@click.group(name="alerts")
def alerts_() -> None:
    """The rules behind `gazeback news`: list them, switch one off or on, set a baseline.

    Example:

        gazeback alerts rules

        gazeback alerts off pinned_host
    """


@alerts_.command(cls=DbCommand)
@db_option
def rules(db_path: Path) -> None:
    """List the alert rules and whether each is on.

    Example:

        gazeback alerts rules
    """
    db = open_existing_db(db_path)
    for r in alerts.rules(db):
        click.echo(f"{'on ' if r['enabled'] else 'off'}  {r['id']}: {r['description']}")


def _switch(db_path: Path, rule: str, on: bool) -> None:
    db = open_existing_db(db_path)
    try:
        alerts.set_enabled(db, rule, on)
    except ValueError as e:
        raise click.ClickException(str(e)) from None
    click.echo(f"alert rule {rule} is {'on' if on else 'off'}")


@alerts_.command(cls=DbCommand)
@db_option
@click.argument("rule")
def off(db_path: Path, rule: str) -> None:
    """Switch an alert rule off (its alerts are no longer shown).

    Example:

        gazeback alerts off pinned_host
    """
    _switch(db_path, rule, False)


@alerts_.command(cls=DbCommand)
@db_option
@click.argument("rule")
def on(db_path: Path, rule: str) -> None:
    """Switch an alert rule back on.

    Example:

        gazeback alerts on pinned_host
    """
    _switch(db_path, rule, True)


@alerts_.command(cls=DbCommand)
@db_option
@click.argument("device")
@click.option("--days", type=click.IntRange(min=0), help="The device's first N days.")
@click.option("--experiment", metavar="NAME", help="Or: the runs of one experiment condition…")
@click.option("--condition", metavar="LABEL", help="…this condition.")
def baseline(
    db_path: Path, device: str, days: int | None, experiment: str | None, condition: str | None
) -> None:
    """Set what counts as normal for DEVICE: its first N days (default 1), or the runs of
    an experiment condition. Only what comes after the baseline can be new.

    Example:

        gazeback alerts baseline tv --days 3
    """
    if (days is None) == (experiment is None) or (experiment is None) != (condition is None):
        raise click.ClickException("give either --days N or --experiment NAME --condition LABEL")
    db = open_existing_db(db_path)
    row = list(db.query("select id from devices where label = ?", [device]))
    if not row:
        raise click.ClickException(f"no device is called {device!r}")
    eid = None
    if experiment is not None:
        found = list(db.query("select id from experiments where name = ?", [experiment]))
        if not found:
            raise click.ClickException(f"no experiment is called {experiment!r}")
        eid = int(found[0]["id"])
    alerts.set_baseline(db, int(row[0]["id"]), days, eid, condition)
    click.echo(
        f"baseline of {device!r}: "
        + (f"its first {days} days" if days is not None else f"{experiment!r} / {condition!r}")
    )


# -- --notify-command --------------------------------------------------------------------

CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def notify_argv(template: str, text: str) -> list[str]:
    """The command to run: ``template`` split like a shell would (once, from the person's
    own option), then ``{text}`` replaced inside each argument. The text (which holds host
    names a tracker chose) never goes through a shell, so it cannot run anything."""
    try:
        argv = shlex.split(template)
    except ValueError as e:
        raise ValueError(f"--notify-command {template!r} cannot be split into words: {e}") from e
    if not argv:
        raise ValueError("--notify-command is empty")
    clean = CONTROL.sub(" ", text)
    return [a.replace("{text}", clean) for a in argv]


def message(items: list[dict[str, Any]]) -> str:
    if len(items) == 1:
        return str(items[0]["text"])
    return (
        f"{len(items)} new things: {items[0]['text']} … and {len(items) - 1} more (gazeback news)"
    )


class Debouncer:
    """Collects alerts; :meth:`due` hands them over as one burst once nothing new came for
    ``quiet`` seconds, or ``longest`` seconds after the first (a steady trickle still
    speaks). The clock is given, so tests can move time."""

    def __init__(
        self,
        quiet: float = 30.0,
        longest: float = 300.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.quiet, self.longest, self.clock = quiet, longest, clock
        self.pending: list[dict[str, Any]] = []
        self.first = self.last = 0.0

    def add(self, items: list[dict[str, Any]]) -> None:
        if not items:
            return
        now = self.clock()
        if not self.pending:
            self.first = now
        self.last = now
        self.pending.extend(items)

    def due(self) -> list[dict[str, Any]]:
        if not self.pending:
            return []
        now = self.clock()
        if now - self.last >= self.quiet or now - self.first >= self.longest:
            out, self.pending = self.pending, []
            return out
        return []


def run_notify(template: str, text: str, timeout: float = 30.0) -> int:
    """Run the notify command (no shell); its exit code, or -1 if it could not start."""
    try:
        done = subprocess.run(
            notify_argv(template, text),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            timeout=timeout,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return -1
    return done.returncode


class Notifier(threading.Thread):
    """During ``gazeback run``: every ``every`` seconds raise new alerts (the dashboard's
    "What's new" panel reads them) and, given a command, pass each burst to it. Only
    alerts raised after it started are sent."""

    def __init__(
        self, db_path: Path, template: str | None, every: float = 30.0, quiet: float = 30.0
    ):
        super().__init__(name="gazeback-notify", daemon=True)
        self.db_path, self.template, self.every = db_path, template, every
        self.debounce = Debouncer(quiet=quiet)
        self.stopping = threading.Event()
        self.ready = threading.Event()  # set once what came before the start is counted

    def run(self) -> None:
        import sqlite_utils

        db = sqlite_utils.Database(self.db_path)
        try:
            alerts.refresh(db)  # what was new before this start is not news now
            seen = self._last(db)
            self.ready.set()
            while not self.stopping.wait(self.every):
                try:
                    last = self._last(db)
                    if last != seen:  # nothing recorded since: nothing can be new
                        seen = last
                        self.debounce.add(alerts.refresh(db))
                    burst = self.debounce.due()
                    if burst and self.template is not None:
                        code = run_notify(self.template, message(burst))
                        if code == 0:
                            alerts.mark_notified(db, [int(a["id"]) for a in burst])
                        else:
                            click.secho(
                                f"gazeback: --notify-command failed (exit {code})", err=True
                            )
                except Exception as e:  # noqa: BLE001 - alerts must never stop the proxy
                    click.secho(f"gazeback: alerts could not be checked: {e}", err=True)
        finally:
            db.close()

    @staticmethod
    def _last(db: Any) -> Any:
        return db.execute("select max(id) from requests").fetchone()[0]
