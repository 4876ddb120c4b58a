"""CLI: ``gazeback trackers info|lookup|update`` and ``gazeback reclassify DB``.

Register in cli.py with ``cli.add_command(trackers)`` and ``cli.add_command(reclassify)``.
"""

from __future__ import annotations

import json
from pathlib import Path

import click

from gazeback.cli.options import DbCommand, db_option
from gazeback.db import knowledge, migrations
from gazeback.knowledge import trackerlists
from gazeback.knowledge import update as trackerupdate
from gazeback.knowledge.build import PRECEDENCE
from gazeback.knowledge.classify import load_index, registrable_domain


@click.group()
def trackers() -> None:
    """Tracker knowledge: which company is behind a host, from which list."""


@trackers.command()
def info() -> None:
    """Show the tracker lists in use: versions, licences, counts.

    Example: gazeback trackers info
    """
    index = load_index()
    user = trackerlists.user_dir() / "trackers.json.gz"
    where = f"updated copy in {user.parent}" if user.exists() else "bundled with gazeback"
    click.echo(f"Tracker knowledge: {where}")
    click.echo(
        f"{len(index.companies):,} companies, {len(index.trackers):,} trackers, "
        f"{len(index._domains):,} attributed domains, {len(index._filters):,} list-only domains"
    )
    engine = index.url_rules is not None and index.url_rules.available
    click.echo(f"URL rules: {'adblock engine' if engine else 'off (pip install adblock)'}")
    click.echo("")
    for source, meta in sorted(index.sources.items(), key=lambda s: PRECEDENCE.index(s[0])):
        click.echo(f"{source:18} {meta['version']:12} {meta['licence']}")
        click.echo(f"{'':18} {meta['attribution']} <{meta['url']}>")


@trackers.command()
@click.argument("host_or_url")
@click.option("--json", "as_json", is_flag=True, help="Output JSON")
def lookup(host_or_url: str, as_json: bool) -> None:
    """Who is behind HOST_OR_URL, and which list says so.

    Example: gazeback trackers lookup https://www.google-analytics.com/g/collect
    """
    index = load_index()
    if "/" in host_or_url:
        m = index.match_url(host_or_url if "//" in host_or_url else f"https://{host_or_url}")
    else:
        m = index.lookup(host_or_url)
    host = host_or_url.split("//")[-1].split("/")[0]
    answer: dict[str, object] = {"host": host, "registrable_domain": registrable_domain(host)}
    if m is not None:
        answer |= {k: v for k, v in m.__dict__.items()}
        history = index.companies.get(m.company_id or "", {}).get("history")
        if history:  # the overlay's ownership changes: "owned by Acxiom until 2018-10"
            answer["history"] = [
                f"{h['previous_owner'] or 'independent'} until {h['date']}"
                f"{' (as of)' if h['date_is_as_of'] else ''}, then {h['owner'] or 'independent'}:"
                f" {h['event']} <{h['source_url']}>"
                for h in history
            ]
    if as_json:
        click.echo(json.dumps(answer, indent=2))
        return
    if m is None:
        click.echo(f"{host}: not in any tracker list ({answer['registrable_domain']})")
        return
    for key, value in answer.items():
        if isinstance(value, tuple):
            value = ", ".join(value)
        if isinstance(value, list):
            value = "\n".join([value[0], *(f"{'':21}{v}" for v in value[1:])])
        click.echo(f"{key:20} {value}")


@trackers.command()
@click.option(
    "--from-file",
    "from_files",
    multiple=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Use this downloaded list file instead of the network (repeatable): "
    "trackers.json, companies.json, easyprivacy.txt, easylist.txt, entities-nostats.json",
)
def update(from_files: tuple[Path, ...]) -> None:
    """Refresh AdGuard companiesdb, EasyPrivacy/EasyList and third-party-web.

    The new lists are checked before anything is replaced; on any error the previous
    data stays in use and the command exits with status 1.

    Example: gazeback trackers update --from-file ~/Downloads/easyprivacy.txt
    """
    try:
        if from_files:
            new = {trackerupdate.match_file(p): p.read_bytes() for p in from_files}
        else:
            new = trackerupdate.fetch(trackerupdate.UPSTREAMS)
        summary = trackerupdate.update(new, trackerlists.user_dir())
    except trackerupdate.UpdateError as e:
        raise click.ClickException(f"{e}. The previous tracker data is still in use.") from None
    load_index.cache_clear()
    click.echo(
        f"Updated {', '.join(summary['changed'])}: {summary['domains']:,} attributed domains"
    )
    for source, version in summary["versions"].items():
        click.echo(f"  {source:18} {version}")


@click.command(cls=DbCommand)
@db_option
def reclassify(db_path: Path) -> None:
    """Apply the current tracker knowledge to every request stored in the database: the
    tracker lists, and the adapters that say what each tracker learned (from the stored path,
    query and headers, and identifiers from the stored leaf fingerprints; bodies are not
    stored, so other values sent in a body cannot be found again).

    Example:

        gazeback reclassify
    """
    from gazeback.cli.options import open_existing_db
    from gazeback.db.learned import relearn
    from gazeback.db.localfiles import load_or_create_key
    from gazeback.knowledge.learn import load_index as load_adapters
    from gazeback.pipeline import Context, learn_stored

    db = open_existing_db(Path(db_path))
    migrations.apply(db)
    counts = knowledge.reclassify(db, load_index())
    click.echo(
        f"{counts['requests']:,} requests, {counts['changed']:,} changed, "
        f"{counts['trackers']:,} trackers ({counts['new']:,} new to this database)"
    )
    context = Context(load_or_create_key(Path(db_path)), None, None, load_adapters())
    adapters = context.adapters
    assert adapters is not None
    learned = relearn(
        db,
        adapters,
        lambda method, host, path, headers, leaves: learn_stored(
            method, host, path, headers, leaves, context
        ),
    )
    click.echo(
        f"What they learned: {learned['requests']:,} requests to endpoints adapters know, "
        f"{learned['added']:,} new findings"
    )


@trackers.command(name="update-contacts")
@click.option(
    "--from",
    "src",
    required=True,
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="A checkout (or unpacked download) of the datenanfragen/data repository.",
)
def update_contacts(src: Path) -> None:
    """Refresh the privacy contacts, authorities and letter templates `gazeback request` uses.

    Reads a copy of the datenanfragen/data repository (CC0) you downloaded; the new data is
    checked before it replaces the previous copy, which stays in use on any error.

    Example: gazeback trackers update-contacts --from ~/Downloads/datenanfragen-data
    """
    from gazeback.knowledge import datenanfragen

    try:
        data = datenanfragen.build(src, f"{src.name} (local copy)")
        target = datenanfragen.user_path()
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_suffix(".tmp")
        tmp.write_bytes(data)
        directory = datenanfragen.Directory(datenanfragen.read(tmp))
        tmp.replace(target)
    except (datenanfragen.DataError, OSError) as e:
        raise click.ClickException(f"{e}. The previous contact data is still in use.") from None
    datenanfragen.load.cache_clear()
    click.echo(
        f"Updated the contact data: {len(directory.companies):,} companies, "
        f"{len(directory.authorities):,} supervisory authorities, "
        f"{len(directory.templates)} languages"
    )
