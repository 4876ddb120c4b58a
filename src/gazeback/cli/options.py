"""Opening a database for a command: private files, current schema, clear errors.

Kept apart from cli.py so that every command module can import it without importing the
command group (which imports them all).
"""

from __future__ import annotations

import errno
import socket
import sqlite3
import stat
from pathlib import Path
from typing import Any

import click
import sqlite_utils

from gazeback.db import migrations
from gazeback.db.localfiles import default_db_path, prepare_db_path

SQLITE_MAGIC = b"SQLite format 3\x00"


def check_db_file(path: Path, folder_must_exist: bool = False) -> None:
    """ClickException, before anything is changed, if ``path`` exists and is not a SQLite
    database (a text file, a folder, a FIFO), or (``folder_must_exist``) if its folder is
    missing."""
    path = Path(path)
    if not path.exists():
        if folder_must_exist and not path.parent.is_dir():
            raise click.ClickException(
                f"cannot create {path}: the folder {path.parent} does not exist "
                "(create it first, or give another path)"
            )
        return
    mode = path.stat().st_mode
    if not stat.S_ISREG(mode):
        raise click.ClickException(f"{path} is not a database file (it is {_kind(mode)})")
    with open(path, "rb") as f:
        head = f.read(len(SQLITE_MAGIC))
    if head and head != SQLITE_MAGIC:
        raise click.ClickException(
            f"{path} is not a SQLite database (it starts with {head[:8]!r}); "
            "nothing was changed. Give the database gazeback records into."
        )


def _kind(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "a folder"
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a regular file"


def open_db(path: Path) -> sqlite_utils.Database:
    """Open (or create) ``path`` with private file modes, WAL and the current schema."""
    check_db_file(path)
    try:
        prepare_db_path(path)
    except OSError as e:
        raise click.ClickException(f"cannot use {path}: {e}") from e
    try:
        db = sqlite_utils.Database(path)
        db.enable_wal()
        migrations.apply(db)
    except sqlite3.DatabaseError as e:  # damaged inside, past a valid header
        raise click.ClickException(f"cannot open {path} as a gazeback database: {e}") from e
    return db


def open_existing_db(path: Path) -> sqlite_utils.Database:
    """Open a database that must already exist (a typo in --db must not create an empty one);
    the default trail is created on first use, as `gazeback run` would."""
    if not Path(path).exists() and Path(path).expanduser() != default_db_path():
        raise click.ClickException(
            f"{path} does not exist. Leave out --db for the trail gazeback records into "
            f"({default_db_path()}), or create this one with `gazeback migrate --db {path}`."
        )
    return open_db(Path(path).expanduser())


def db_hint(path: Path) -> str:
    """`` --db PATH`` when ``path`` is not the default trail, for commands we suggest."""
    return "" if Path(path).expanduser() == default_db_path() else f" --db {path}"


def db_option(f: Any) -> Any:
    """``--db PATH``, defaulting to the database ``gazeback run`` records into."""
    return click.option(
        "--db",
        "db_path",
        type=click.Path(dir_okay=False, path_type=Path),
        default=default_db_path,
        show_default="~/.local/share/gazeback/trail.db",
        help="The database gazeback records into.",
    )(f)


def check_port(host: str, port: int, option: str) -> None:
    """ClickException if ``host:port`` cannot be listened on (another program has it),
    checked before anything starts, so that nothing runs half-up."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the servers bind
        try:
            s.bind((host, port))
        except OSError as e:
            raise click.ClickException(
                f"cannot listen on {host}:{port} ({e.strerror or e}): another program is "
                f"using it. Stop it, or choose another port with {option} PORT."
            ) from None


class DbCommand(click.Command):
    """A command that takes its database as ``--db`` (default: the trail ``gazeback run``
    records into), and for one release still accepts it the old way, as the first argument,
    with a warning (sqlite-utils and Dogsheep put it first; gazeback's own commands did both)."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        return super().parse_args(ctx, legacy_db_args(self, list(args)))


def legacy_db_args(command: click.Command, args: list[str]) -> list[str]:
    """``args`` with an old-style first-argument database turned into ``--db PATH``."""
    if any(a == "--db" or a.startswith("--db=") for a in args) or "--help" in args:
        return args
    options = {
        name: p for p in command.params if isinstance(p, click.Option)
        for name in (*p.opts, *p.secondary_opts)
    }  # fmt: skip
    positions: list[int] = []
    i = 0
    while i < len(args):
        token = args[i]
        if token == "--":
            positions += range(i + 1, len(args))
            break
        if token.startswith("-") and token != "-" and "=" not in token:
            option = options.get(token)
            if option is not None and not option.is_flag and not option.count:
                i += max(option.nargs, 1)
        elif not token.startswith("-") or token == "-":
            positions.append(i)
        i += 1
    arguments = [p for p in command.params if isinstance(p, click.Argument)]
    variadic = any(p.nargs == -1 for p in arguments)
    fixed = sum(p.nargs for p in arguments if p.nargs > 0)
    if variadic:
        legacy = len(positions) >= fixed + 2 and _is_trail(Path(args[positions[0]]))
    else:
        legacy = len(positions) == fixed + 1
    if not legacy:
        return args
    db = args.pop(positions[0])
    click.echo(
        f"gazeback: giving the database as the first argument is deprecated and will stop "
        f"working in the next release; use --db {db}",
        err=True,
    )
    return ["--db", db, *args]


def _is_trail(path: Path) -> bool:
    """Named like a database (the old `import trail.db ...`), unless it is another tool's
    SQLite file (a Pi-hole database is something to import): never let a damaged or
    mistyped trail be read as a file to import into the default trail."""
    if path.suffix not in (".db", ".sqlite", ".sqlite3"):
        return False
    if not path.is_file():
        return True
    try:
        with open(path, "rb") as f:
            if f.read(16) != SQLITE_MAGIC:
                return True  # not SQLite at all: opening it as the database says so
        con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            row = con.execute(
                "select 1 from sqlite_master where name = '_sqlite_migrations'"
            ).fetchone()
        finally:
            con.close()
        return row is not None
    except (OSError, sqlite3.Error):
        return False


# --- a full disk, for every command ----------------------------------------------------------

NO_SPACE = (errno.ENOSPC, errno.EDQUOT)


def disk_full(error: BaseException) -> bool:
    """Is ``error`` (or what caused it) a full disk: ENOSPC, a quota, SQLite's ``database
    or disk is full``?"""
    seen: set[int] = set()
    e: BaseException | None = error
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        if isinstance(e, OSError) and e.errno in NO_SPACE:
            return True
        if isinstance(e, sqlite3.OperationalError) and "disk is full" in str(e):
            return True
        e = e.__cause__ or e.__context__
    return False


def _folders(error: BaseException, args: list[str]) -> list[Path]:
    """Existing folders the command wrote to: the failing file's, then each path argument's."""
    names = [getattr(error, "filename", None), *args]
    db_path = default_db_path()
    if "--db" not in args and not any(a.startswith("--db=") for a in args):
        names.append(str(db_path))
    out: list[Path] = []
    for name in names:
        if not isinstance(name, str) or not name or name.startswith("-"):
            name = name.split("=", 1)[1] if isinstance(name, str) and "=" in name else None
            if not name:
                continue
        p = Path(name).expanduser()
        folder = p if p.is_dir() else p.parent
        if folder.is_dir() and folder not in out and (p.exists() or p.parent.is_dir()):
            out.append(folder)
    return out


def disk_full_sentence(error: BaseException, command: str, args: list[str]) -> str:
    """One sentence: which command, which disk (the least free of the folders it wrote to),
    how much room is left there, what to do."""
    import shutil

    where = ""
    free: list[tuple[int, Path]] = []
    for folder in _folders(error, args):
        try:
            free.append((shutil.disk_usage(folder).free, folder))
        except OSError:
            continue
    if free:
        room, folder = min(free)
        where = f" in {folder} ({room / 2**20:.1f} MiB free)"
    return (
        f"the disk is full{where}: `gazeback {command}` stopped and wrote nothing (anything "
        "written before is unchanged). Free some space there or choose a folder on another "
        "disk, then run it again."
    )


class GazebackGroup(click.Group):
    """The ``gazeback`` group: a full disk in any command is one sentence and exit 1, not a
    traceback (each command removes what it had started writing)."""

    def invoke(self, ctx: click.Context) -> Any:
        # the command's name and its arguments (click 8.2 renamed protected_args)
        first = getattr(ctx, "_protected_args", None)
        args = [*(first if first is not None else ctx.protected_args), *ctx.args]
        try:
            return super().invoke(ctx)
        except (OSError, sqlite3.Error) as e:
            if not disk_full(e):
                raise
            raise click.ClickException(
                disk_full_sentence(e, args[0] if args else "", args[1:])
            ) from None
