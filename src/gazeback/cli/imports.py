"""``gazeback import``: bring captures and other tools' logs into a trail (thin click command)."""

from __future__ import annotations

import stat
from pathlib import Path

import click

from gazeback.cli.options import DbCommand, db_option
from gazeback.imports.importers import (
    FORMATS,
    ImportResult,
    Rejected,
    Source,
    WorkerDied,
    content_hash,
    guess_format,
)
from gazeback.models import DeviceKey

MAX_SHOWN_PROBLEMS = 10


@click.command(name="import", cls=DbCommand)
@db_option
@click.argument(
    "files", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path)
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["auto", *FORMATS]),
    default="auto",
    show_default=True,
    help="What the files are; auto looks at their first bytes.",
)
@click.option(
    "--device",
    metavar="LABEL",
    help="Put every record on this device (the same as `gazeback run --device LABEL`) "
    "instead of one device per client address or MAC.",
)
@click.option(
    "--experiment",
    metavar="NAME",
    help="Make each file one run of a condition of this experiment (with --condition).",
)
@click.option("--condition", metavar="LABEL", help='The condition, e.g. "reject all".')
@click.option("-s", "--silent", is_flag=True, help="Don't show a progress bar.")
def import_(
    db_path: Path,
    files: tuple[Path, ...],
    fmt: str,
    device: str | None,
    experiment: str | None,
    condition: str | None,
    silent: bool,
) -> None:
    """Import HAR files, mitmproxy dumps, pcap/pcapng captures, Apple App Privacy
    Reports, Pi-hole FTL databases, AdGuard Home query logs, PCAPdroid captures and CSVs,
    TrackerControl CSVs and HTTP Toolkit HARs (the last three with the app of each
    connection). Every request is classified and checked for your identifiers like live
    traffic. Importing the same file again adds nothing. Defects that can be stepped
    over are listed and kept in the import_problems table; a file that is not what it
    claims is rejected whole (exit code 1).

    Example:

        gazeback import session.har phone.pcapng --device phone

        gazeback import --db /tmp/research.db crawl.har

        gazeback import before.har --experiment update --condition before
    """
    from gazeback.cli.options import open_existing_db
    from gazeback.db.identities import load_profile
    from gazeback.db.localfiles import load_or_create_key
    from gazeback.imports.importers import import_file
    from gazeback.knowledge.classify import load_index
    from gazeback.pipeline import Context

    if (experiment is None) != (condition is None) or (
        condition is not None and not condition.strip()
    ):
        raise click.ClickException(
            "--experiment and --condition go together: --experiment NAME --condition LABEL"
        )
    for path in files:  # before anything is opened: a FIFO or a device would never end
        if not stat.S_ISREG(path.stat().st_mode):
            raise click.ClickException(
                f"{path} is not a regular file (a FIFO, a device or a socket): nothing was "
                "imported. Save the capture to a file and import that."
            )
    db = open_existing_db(db_path)
    index = load_index()
    context = Context(load_or_create_key(db_path), index, load_profile(db_path))
    key = DeviceKey(f"user:{device}", device) if device else None
    rejected = 0
    for path in files:
        with open(path, "rb") as fp:
            head = fp.read(4096)
            fp.seek(0)
            kind = guess_format(head, path.name) if fmt == "auto" else fmt
            if kind is None:
                rejected += _reject(path, "its format is not recognised; name it with --format")
                continue
            src = Source(path.name, content_hash(fp), path.stat().st_size, key, path)
            try:
                with _progress(silent, path.name) as bar:
                    result = import_file(db, fp, src, kind, context, index=index, progress=bar)
            except Rejected as e:
                rejected += _reject(path, str(e))
                continue
            except WorkerDied as e:
                click.secho(str(e), fg="red", err=True)
                rejected += 1
                continue
        _summary(result)
        if experiment and condition:
            _add_run(db, experiment, condition, result)
    db.close()
    if rejected:
        raise SystemExit(1)


def _add_run(db, experiment: str, condition: str, r: ImportResult) -> None:  # type: ignore[no-untyped-def]
    from gazeback.db import experiments as ex

    cid = r.capture_id if r.capture_id is not None else (r.already or {}).get("id")
    if cid is None:
        return
    run = ex.add_capture(db, experiment, condition, int(cid))
    click.echo(f"  experiment {experiment!r}: condition {condition!r}, run {run['run']}")


def _reject(path: Path, why: str) -> int:
    click.secho(f"{path}: rejected, nothing imported: {why}", fg="red", err=True)
    return 1


class _progress:
    """A tqdm bar counting records, with their rate; nothing when silent."""

    def __init__(self, silent: bool, name: str) -> None:
        self.bar = None
        if not silent:
            from tqdm import tqdm

            self.bar = tqdm(desc=name, unit=" records", leave=False, mininterval=0.5)

    def __enter__(self) -> _progress:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.bar is not None:
            self.bar.close()

    def __call__(self, n: int) -> None:
        if self.bar is not None:
            self.bar.update(n)


def _summary(r: ImportResult) -> None:
    if r.already:
        a = r.already
        click.echo(
            f"{r.name}: already imported (capture {a['id']} on {a['started_at']}); nothing added"
        )
        return
    problems = r.problems or []
    line = f"{r.name}: {r.recorded} requests imported as {r.fmt} (capture {r.capture_id})"
    if r.entries != r.recorded:
        line += f", {r.entries - r.recorded} already in the database"
    click.echo(line + (f", {len(problems)} problems:" if problems else ""))
    for p in problems[:MAX_SHOWN_PROBLEMS]:
        click.echo(f"  {p.position}: {p.reason}")
    if len(problems) > MAX_SHOWN_PROBLEMS:
        click.echo(f"  … and {len(problems) - MAX_SHOWN_PROBLEMS} more (table import_problems)")
