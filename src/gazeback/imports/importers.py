"""Bring your own captures: read files other tools wrote and feed them through the pipeline.

Each reader turns an open binary file into ``Entry`` (a FlowSnapshot, as live capture
makes) and ``Problem`` (a defect it stepped over) items, or raises ``Rejected`` when the
file is not what it claims to be. ``import_file`` runs every entry through
``pipeline.process`` and ``store.save_records``, all in one transaction per file, so a
rejected file leaves the database as it was.

Readers: HAR and mitmproxy dumps in ``import_flows`` (read by mitmproxy itself, so there is
no second HTTP parser), pcap/pcapng in ``import_pcap``, other tools' logs in ``import_logs``.
"""

from __future__ import annotations

import gc
import hashlib
import json
import os
import re
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import IO, Any

from sqlite_utils import Database

from gazeback.db import imports as store_imports
from gazeback.db import store
from gazeback.imports.base import (
    PCAP_MAGICS,
    PCAPNG_MAGIC,
    SQLITE_MAGIC,
    Item,
    Reader,
    host_problem,
)

# The readers' shared types live in imports.base; callers keep importing them from here.
from gazeback.imports.base import Entry as Entry
from gazeback.imports.base import Problem as Problem
from gazeback.imports.base import Rejected as Rejected
from gazeback.imports.base import Source as Source
from gazeback.knowledge.classify import TrackerIndex
from gazeback.models import Record
from gazeback.pipeline import (
    Context,
    app_problem,
    process,
    safe_app,
    stored_only,
    unprocessed,
)

FORMATS = (
    "har",
    "mitm",
    "pcap",
    "pcapng",
    "app-privacy-report",
    "pihole",
    "adguardhome",
    "pcapdroid-csv",
    "trackercontrol-csv",
    "httptoolkit-har",
)


class WorkerDied(RuntimeError):
    """A process importing part of a file died; nothing of the file is stored."""


@dataclass
class ImportResult:
    """What one file added: the summary the CLI prints."""

    name: str
    fmt: str
    capture_id: int | None = None
    entries: int = 0
    recorded: int = 0
    problems: list[Problem] | None = None
    already: dict[str, Any] | None = None  # the earlier capture, when the file was in already


# --- format detection ---------------------------------------------------------------------


def detect_format(head: bytes) -> str | None:
    """Guess the format from the first few KB of a file; None when nothing fits."""
    if head[:4] in PCAP_MAGICS:
        return "pcap"
    if head[:4] == PCAPNG_MAGIC:
        return "pcapng"
    if head.startswith(SQLITE_MAGIC):
        return "pihole"
    text = head.removeprefix(b"\xef\xbb\xbf").lstrip()
    if text.startswith(b"IPProto,SrcIP,SrcPort,DstIp,DstPort,UID,App,PackageName"):
        return "pcapdroid-csv"
    if text.startswith((b'"uid","daddr","time"', b'"daddr","time","uncertain"')):
        return "trackercontrol-csv"
    if text[:1].isdigit() and b":" in text[:12]:
        return "mitm"  # tnetstring: "<length>:<data>"
    if text.startswith(b"{"):
        if HTTP_TOOLKIT.search(head):
            return "httptoolkit-har"
        first = text.split(b"\n", 1)[0]
        try:
            obj = json.loads(first)
        except (ValueError, RecursionError):
            return "har"  # a pretty-printed JSON document
        if isinstance(obj, dict):
            if "log" in obj:
                return "har"
            if "QH" in obj and "T" in obj:
                return "adguardhome"
            if obj.get("type") in ("access", "networkActivity"):
                return "app-privacy-report"
        return None
    return None


HTTP_TOOLKIT = re.compile(rb'"creator"\s*:\s*\{\s*"name"\s*:\s*"HTTP Toolkit"')

EXTENSIONS = {
    ".har": "har", ".mitm": "mitm", ".flow": "mitm", ".flows": "mitm", ".pcap": "pcap",
    ".cap": "pcap", ".pcapng": "pcapng", ".ndjson": "app-privacy-report", ".db": "pihole",
    ".json": "adguardhome",
}  # fmt: skip


def guess_format(head: bytes, name: str) -> str | None:
    """The format the content shows, else the one the file name claims (its reader then
    says why the content does not fit)."""
    return detect_format(head) or EXTENSIONS.get(Path(name).suffix.lower())


def reader_for(fmt: str) -> Reader:
    if fmt in ("har", "mitm"):
        from gazeback.imports.flows import read_har, read_mitm

        return read_har if fmt == "har" else read_mitm
    if fmt == "httptoolkit-har":
        from gazeback.imports.flows import read_httptoolkit_har

        return read_httptoolkit_har
    if fmt in ("pcap", "pcapng"):
        from gazeback.imports.pcap import read_pcap

        return read_pcap
    if fmt in ("pcapdroid-csv", "trackercontrol-csv"):
        from gazeback.imports.android import READERS as ANDROID

        return ANDROID[fmt]
    from gazeback.imports.logs import READERS

    return READERS[fmt]


# --- one file into the database -----------------------------------------------------------


def content_hash(fp: IO[bytes]) -> str:
    """sha256 of the whole file, read in 1 MiB blocks (then rewound)."""
    h = hashlib.sha256()
    while block := fp.read(1 << 20):
        h.update(block)
    fp.seek(0)
    return h.hexdigest()


# Formats whose records can be parsed in other processes: (split, parse) in import_flows.
PARALLEL_FORMATS = ("har", "mitm")
PARALLEL_MIN_BYTES = 1 << 20  # smaller files are done before worker processes would start
CHUNK = 200  # records per piece sent to a worker
START_METHOD: str | None = None  # None: fork where there is fork, else spawn


def import_file(
    db: Database,
    fp: IO[bytes],
    src: Source,
    fmt: str,
    context: Context,
    *,
    index: TrackerIndex | None = None,
    progress: Callable[[int], None] | None = None,
    batch_size: int = 500,
    workers: int | None = None,
) -> ImportResult:
    """Import one file in one transaction; raise ``Rejected`` (nothing stored) if it is not ``fmt``.

    A file whose bytes were imported before adds nothing (``result.already`` says when).

    :param workers: processes that parse and check records (HAR and mitmproxy dumps) while
        this one writes; None: one per core for files of 1 MB or more. Rows, ids and
        problems are the same as with 0 (everything in this process).
    """
    result = ImportResult(src.name, fmt, problems=[])
    earlier = store_imports.find_import(db, src.content_hash)
    if earlier:
        result.already = earlier
        return result
    if workers is None:
        big = fmt in PARALLEL_FORMATS and src.size >= PARALLEL_MIN_BYTES
        workers = _cores() if big else 0
    # What is loaded before the import (the tracker index, the profile: millions of
    # objects) is left out of garbage collection meanwhile: ≈ 10 % of the CPU otherwise.
    gc.freeze()
    try:
        return _import(db, fp, src, fmt, context, result, index, progress, batch_size, workers)
    finally:
        gc.unfreeze()


def _import(
    db: Database,
    fp: IO[bytes],
    src: Source,
    fmt: str,
    context: Context,
    result: ImportResult,
    index: TrackerIndex | None,
    progress: Callable[[int], None] | None,
    batch_size: int,
    workers: int,
) -> ImportResult:
    problems: list[Problem] = []
    device_cache: dict[str, int] = {}
    known: set[str] = set()
    with db.atomic():
        versions = index.versions() if index is not None else {}
        capture_id = store.start_capture(
            db, fmt, versions, file_name=src.name, content_hash=src.content_hash
        )
        result.capture_id = capture_id
        records: list[Record] = []

        def flush() -> None:
            result.recorded += store.save_records(
                db, capture_id, records, index=index, device_cache=device_cache,
                known_trackers=known,
            )  # fmt: skip
            if progress:
                progress(len(records))
            records.clear()

        if workers > 1 and fmt in PARALLEL_FORMATS:
            done: Iterable[Problem | Record] = _parallel(fp, src, fmt, context, workers)
        else:
            done = _processed(reader_for(fmt)(fp, src), context)
        for got in done:
            if isinstance(got, Problem):
                problems.append(got)
                continue
            result.entries += 1
            records.append(got)
            if len(records) >= batch_size:
                flush()
        flush()
        if result.entries == 0 and problems:
            # nothing of it could be stored: not marked as imported (the capture row goes
            # with the transaction), so the file can be fixed and imported again
            first = problems[0]
            raise Rejected(
                f"none of its entries could be stored ({len(problems)} problem"
                f"{'s' if len(problems) > 1 else ''}; the first, {first.position}: "
                f"{first.reason}). Fix the file and import it again"
            )
        store_imports.save_problems(
            db, capture_id, src.name, ((p.position, p.reason) for p in problems)
        )
        store.end_capture(db, capture_id, result.recorded, 0)
    result.problems = problems
    return result


def _cores() -> int:
    """Cores this process may run on (a container's limit, not the machine's)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def _processed(got: Iterable[Item], context: Context) -> Iterator[Problem | Record]:
    """What a reader found, in order: its problems, and each entry as a record to store
    (after the problem that processing it hit, if any), without its body: records wait in
    batches and cross from worker processes."""
    for g in got:
        if isinstance(g, Problem):
            yield g
        else:
            yield from _item(g, context)


def _item(entry: Entry, context: Context) -> Iterator[Problem | Record]:
    if why := host_problem(entry.snap.host):
        # text from another tool's file (a CSV cell) is stored only when it is a host name
        yield Problem(entry.position, f"host {shown(entry.snap.host)} {why}; skipped")
        return
    try:
        record = process(entry.snap, context)
    except Exception as e:
        # our code failed on this entry: keep it unclassified and say so, as the writer does
        yield Problem(entry.position, f"stored without leak detection ({e})")
        try:
            record = process(entry.snap, Context(context.key))
        except Exception:
            record = unprocessed(entry.snap)
    record = stored_only(record)
    app = entry.app
    if app and (why := app_problem(app)):
        # a file's app name is text from outside (a CSV cell): never stored unchecked
        yield Problem(entry.position, f"app {shown(app)} left out: {why}")
        app = None
    if app and (entry.app_source == "reported" or not record.observation.app):
        safe = safe_app(app, context)
        obs = replace(record.observation, app=safe, app_source=entry.app_source if safe else None)
        record = replace(record, observation=obs)
    yield record


def shown(text: str, limit: int = 40) -> str:
    """``text`` quoted for a message, cut short and with control characters escaped."""
    cut = text if len(text) <= limit else text[:limit] + "…"
    return repr(cut)


# --- worker processes ---------------------------------------------------------------------
#
# The parent cuts the file into pieces (cheap: HAR entries already parsed as JSON, or the
# byte ranges of whole flows in a dump) and writes; workers run mitmproxy's parser, the
# snapshot and the whole pipeline, and send back the records and problems of a piece, in
# order. At most two pieces per worker are in flight, so memory stays bounded.

_worker_context: Context | None = None


def _init_worker(context: Context) -> None:
    global _worker_context
    _worker_context = context


def _work(fmt: str, src: Source, chunk: Any) -> list[Problem | Record]:
    from gazeback.imports import flows as import_flows

    assert _worker_context is not None
    parse = import_flows.parse_har if fmt == "har" else import_flows.parse_mitm
    return list(_processed(parse(chunk, src), _worker_context))


def _parallel(
    fp: IO[bytes], src: Source, fmt: str, context: Context, workers: int
) -> Iterator[Problem | Record]:
    import multiprocessing
    from concurrent.futures import Future, ProcessPoolExecutor
    from concurrent.futures.process import BrokenProcessPool

    from gazeback.imports import flows as import_flows

    split = import_flows.split_har if fmt == "har" else import_flows.split_mitm
    # fork hands the loaded tracker index and profile over for free (spawn would pickle
    # them and re-import mitmproxy in each worker: ≈ 0.4 s before the first record)
    methods = multiprocessing.get_all_start_methods()
    mp = multiprocessing.get_context(START_METHOD or ("fork" if "fork" in methods else "spawn"))
    # Keep the collector in the workers off the objects they inherit (the tracker index,
    # the profile): walking them would copy every page of them into each worker.
    gc.freeze()
    pool = ProcessPoolExecutor(
        workers, mp_context=mp, initializer=_init_worker, initargs=(context,)
    )
    pending: deque[Future[list[Problem | Record]]] = deque()
    try:
        chunks = split(fp, src, CHUNK)
        more = True
        while more or pending:
            while more and len(pending) < 2 * workers:
                chunk = next(chunks, None)
                if chunk is None:
                    more = False
                else:
                    pending.append(pool.submit(_work, fmt, src, chunk))
            if not pending:
                break
            out = pending.popleft().result()
            yield from out
            if out and isinstance(out[-1], Problem) and out[-1].last:
                return  # the rest of the file cannot be read
    except BrokenProcessPool as e:
        raise WorkerDied(
            f"{src.name}: a worker process importing it died ({e}); nothing of it was stored"
        ) from e
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        gc.unfreeze()
