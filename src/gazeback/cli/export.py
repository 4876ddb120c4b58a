"""``gazeback export``, ``verify-export`` and ``merge``: anonymized sharing (design (b))."""

from __future__ import annotations

import json
import os
import secrets
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

import click
from sqlite_utils import Database

from gazeback.cli.options import DbCommand, db_option, open_existing_db
from gazeback.dashboard import access, serve
from gazeback.db.localfiles import side_file

if TYPE_CHECKING:
    from gazeback.share.schema import Allowlist
    from gazeback.share.verify import Canaries


def _allowlist() -> Allowlist:
    from gazeback.knowledge.classify import load_index
    from gazeback.share.schema import Allowlist as A

    return A(load_index())


def _need_pyarrow() -> None:
    from gazeback.share.schema import require_pyarrow

    try:
        require_pyarrow()
    except ImportError as e:
        raise click.ClickException(str(e)) from e


def owner_canaries(db: Database, db_path: Path) -> Canaries:
    """Everything G1 and G3 search for, from the owner's database and its key file."""
    from gazeback.db.identities import load_identities, load_key
    from gazeback.db.localfiles import key_path
    from gazeback.share.verify import canaries

    key = load_key(db_path) if key_path(db_path).exists() else None
    stored = db.execute("select count(*) from identities where value_encrypted is not null")
    if key is None and stored.fetchone()[0]:
        raise click.ClickException(
            f"{key_path(db_path)} is missing: without it the export cannot be checked for your "
            "identifiers. Restore the key file next to the database."
        )
    identities = load_identities(db, key) if key else []
    device_keys = [r[0] for r in db.execute("select key from devices")]
    persistent = {
        r[0]
        for r in db.execute(
            "select fingerprint from persistent_ids where is_persistent = 1 or is_shared = 1"
        )
    }
    return canaries(identities, device_keys, persistent, key)


def stored_link_key(db_path: Path) -> bytes:
    """The long-lived ``<db>.export-link.key`` (0600), made on first use."""
    path = side_file(db_path, "export_link_key")
    if not path.exists():
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(secrets.token_bytes(32))
    return path.read_bytes()


def preview_command(path: Path, port: int, metadata: Path) -> list[str]:
    """Datasette on 127.0.0.1, the finished export opened immutable, the token required
    (``metadata`` from ``serve.token_metadata``; run it with ``serve.dashboard_env``)."""
    return [sys.executable, "-m", "datasette", "serve", "-i", str(path),
            "--metadata", str(metadata),
            "--host", "127.0.0.1", "--port", str(port)]  # fmt: skip


@click.command(cls=DbCommand)
@db_option
@click.argument("out", type=click.Path(path_type=Path))
@click.option("--format", "fmt", type=click.Choice(["sqlite", "csv", "parquet"]), default="sqlite",
              show_default=True, help="SQLite file, or a folder of CSV or Parquet tables.")  # fmt: skip
@click.option("--bucket", default=3600, show_default=True, help="Time bucket in seconds (daily for cameras, locks, health devices and wearables).")  # fmt: skip
@click.option("--min-cell", default=3, show_default=True, type=click.IntRange(2), help="Merge cells with fewer requests.")  # fmt: skip
@click.option("--link-key", is_flag=True, help="Use a long-lived key so your exports can be linked to each other.")  # fmt: skip
@click.option("--preview", is_flag=True, help="Open the export in Datasette (127.0.0.1) afterwards.")  # fmt: skip
@click.option("--port", default=8002, show_default=True, help="Preview port.")
def export(
    db_path: Path, out: Path, fmt: str, bucket: int, min_cell: int, link_key: bool, preview: bool,
    port: int,
) -> None:  # fmt: skip
    """Write an anonymized export of a trail for researchers.

    Only allowlisted tables and columns; device pseudonyms from a key made for this
    export and then forgotten; destinations only when they are trackers, CDNs or
    vendor clouds (sites you opened are "(site)", everything else "(other)"; health,
    sexuality, religion, politics and finance sites never appear); hourly buckets; small
    cells merged. The verifier runs first (G1-G8, including a search of every byte for your own
    identifiers): a file that fails is not written.

    Example:

        gazeback export share.db

        gazeback export share.db --bucket 86400 --preview

        gazeback export share-parquet --format parquet
    """
    from gazeback.knowledge.classify import load_index
    from gazeback.share.export import (
        ExportRefused,
        Options,
        build_tables,
        finish_tables,
        new_key,
        write_export,
    )
    from gazeback.share.schema import Allowlist
    from gazeback.share.verify import verify

    if preview and fmt != "sqlite":
        raise click.ClickException("--preview opens SQLite exports; leave out --format")
    if fmt == "parquet":
        _need_pyarrow()
    if out.exists():
        raise click.ClickException(f"{out} already exists: choose a new name")
    folder = out.absolute().parent
    if not folder.is_dir():
        raise click.ClickException(f"cannot write {out}: the folder {folder} does not exist")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise click.ClickException(
            f"cannot write {out}: the folder {folder} is not writable (or is on a read-only "
            "disk); nothing was written. Choose another folder."
        )
    db = open_existing_db(db_path)
    allow = Allowlist(load_index())
    secret = owner_canaries(db, db_path)
    opts = Options(
        bucket_s=bucket, min_cell=min_cell, link_key=stored_link_key(db_path) if link_key else None
    )
    try:
        tables = build_tables(db, allow, opts.link_key or new_key(), opts)
        finish_tables(tables, allow.index, opts, secret.profile.needle_count)
        checks = write_export(tables, out, fmt, lambda p: verify(p, allow, secret))
    except ExportRefused as e:
        for c in e.checks:
            click.echo(c.line, err=True)
        raise click.ClickException("the export failed verification; nothing was written") from e
    except (ValueError, FileExistsError) as e:
        raise click.ClickException(str(e)) from e
    except OSError as e:  # the disk filled up, or the folder changed meanwhile
        raise click.ClickException(f"cannot write {out}: {e}; nothing was written") from e
    for c in checks:
        click.echo(c.line)
    click.echo(f"Wrote {out}" + (f" and {out.name}.md" if fmt == "sqlite" else ""))
    if link_key:
        click.echo("Note: --link-key was used, so your exports can be linked to each other.")
    if preview:
        token = access.new_token()
        click.echo(
            f"Preview: {serve.dashboard_url('127.0.0.1', port, token, '/')}  (Ctrl-C to stop)"
        )
        with tempfile.TemporaryDirectory(prefix="gazeback-preview-") as tmp:
            metadata = Path(tmp) / "metadata.json"
            metadata.write_text(json.dumps(serve.token_metadata()))
            code = serve.serve_until_interrupted(
                preview_command(out, port, metadata), env=serve.dashboard_env(token)
            )
        sys.exit(code)


@click.command(name="verify-export")
@click.argument("out", type=click.Path(exists=True, path_type=Path))
@click.option("--against", "against", type=click.Path(dir_okay=False, exists=True, path_type=Path),
              help="Your own trail: also search every byte for your identifiers (G1).")  # fmt: skip
def verify_export(out: Path, against: Path | None) -> None:
    """Check an export's guarantees, one line each; exit 0 only when all hold.

    Without --against this is the recipient's view (schema, pseudonyms, allowlists, time
    buckets, cell sizes, file hygiene). With --against it is the owner's view: also
    every byte of the export searched for every registered identity and promoted
    persistent identifier, in every form the leak detector knows.

    Example:

        gazeback verify-export share.db

        gazeback verify-export share.db --against ~/.local/share/gazeback/trail.db
    """
    from gazeback.share.verify import verify

    secret = owner_canaries(open_existing_db(against), against) if against else None
    checks = verify(out, _allowlist(), secret)
    for c in checks:
        click.echo(c.line)
    if not all(c.ok for c in checks):
        sys.exit(1)


@click.command()
@click.argument("pool", type=click.Path(dir_okay=False, path_type=Path))
@click.argument("exports", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@click.option("-k", "--k", "k", default=10, show_default=True, type=click.IntRange(2), help="Households a value needs before it is released.")  # fmt: skip
@click.option("--l0", default=50, show_default=True, type=click.IntRange(1), help="Values one household may contribute per table.")  # fmt: skip
@click.option("--dataset", is_flag=True, help="Write POOL as a research dataset instead: every row of every export, partitioned Parquet by month and contributor bucket, streamed (needs the research extra).")  # fmt: skip
@click.option("--buckets", default=16, show_default=True, type=click.IntRange(1, 256), help="With --dataset: contributor buckets (partitions per month).")  # fmt: skip
def merge(
    pool: Path, exports: tuple[Path, ...], k: int, l0: int, dataset: bool, buckets: int
) -> None:
    """Pool many households' exports: release a value only when k households have it.

    Every input is verified first (recipient's view). Writes POOL (SQLite) and a folder
    of Parquet files next to it (POOL with .parquet) for DuckDB or Spark.

    With --dataset, POOL is a folder: the research dataset R1 (every row of every export,
    no export id or device pseudonym, households numbered at random), in Hive-style
    partitions traffic/month=YYYY-MM/contributor_bucket=NN/ that DuckDB, Spark or any
    Arrow engine read in place; queries.sql in it holds the documented query set.

    Example:

        gazeback merge pool.db alice.db bob.db carol.db -k 10

        duckdb -c "select * from 'pool.parquet/pool_destinations.parquet' order by households desc"

        gazeback merge research alice.db bob.db carol.db --dataset
    """
    from gazeback.share import merge as m
    from gazeback.share.verify import load, verify

    _need_pyarrow()
    allow = _allowlist()
    if dataset:
        merge_dataset(pool, exports, allow, buckets)
        return
    loaded = []
    for path in exports:
        exp = load(path)
        if exp.problem:
            raise click.ClickException(f"{path}: {exp.problem}")
        loaded.append((str(path), exp.meta, exp.rows))
    try:
        m.combine(loaded)  # schema versions and duplicates first: the clearest message
    except m.MergeRefused as e:
        raise click.ClickException(str(e)) from e
    for path in exports:
        failed = [c for c in verify(path, allow) if not c.ok]
        if failed:
            raise click.ClickException(f"{path} fails verification: {failed[0].line}")
    households = m.combine(loaded)
    rows = m.pool(households, k, l0)
    try:
        parquet = m.write_pool(rows, pool, k, l0, len(households))
    except FileExistsError as e:
        raise click.ClickException(str(e)) from e
    released = sum(len(r) for r in rows.values())
    click.echo(f"{len(households)} households, {released} values released (k={k}, l0={l0}).")
    click.echo(f"Wrote {pool} and {parquet}/")


def merge_dataset(out: Path, exports: tuple[Path, ...], allow: Allowlist, buckets: int) -> None:
    """``merge --dataset``: verify every export (one process per core), then stream them all."""
    from gazeback.share import dataset as ds
    from gazeback.share.merge import MergeRefused

    if out.exists():
        raise click.ClickException(f"{out} already exists: choose a new name")
    folder = out.absolute().parent
    if not folder.is_dir() or not os.access(folder, os.W_OK | os.X_OK):
        raise click.ClickException(f"cannot write {out}: the folder {folder} is not writable")
    try:
        with click.progressbar(length=len(exports), label="Verifying", file=sys.stderr) as bar:
            sources = ds.verified_sources(list(exports), allow, progress=lambda _: bar.update(1))
        counts = ds.write_dataset(sources, out, allow, buckets)
    except MergeRefused as e:
        raise click.ClickException(f"{e}; nothing was written") from e
    except FileExistsError as e:
        raise click.ClickException(str(e)) from e
    except OSError as e:
        raise click.ClickException(f"cannot write {out}: {e}; nothing was written") from e
    click.echo(
        f"{counts['contributors']} households from {counts['exports']} exports, "
        f"{counts['rows']:,} rows."
    )
    click.echo(f'Wrote {out}/ (query it with DuckDB: cd {out} && duckdb -c ".read queries.sql")')
