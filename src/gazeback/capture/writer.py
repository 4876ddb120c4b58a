"""The one writer thread: takes snapshots off a bounded queue, processes and commits them.

The proxy's hooks only ``submit()`` (a ``put_nowait``); everything slow happens here, off
the event loop. If the database fails, the batch goes to a spill file (JSONL, 0600; see
``spill``) that the next start replays. If no disk has room for that either, the batch waits
in a bounded backlog in memory and is retried every few seconds; what overflows it is
counted and logged as lost. Nothing is dropped quietly.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import sqlite_utils

from gazeback.capture import spill
from gazeback.db import migrations, store
from gazeback.db.identities import load_profile, profile_stamp
from gazeback.knowledge.classify import TrackerIndex, load_index
from gazeback.knowledge.learn import load_index as load_adapters
from gazeback.models import FlowSnapshot, Record
from gazeback.pipeline import Context, process, stored_only, unprocessed

logger = logging.getLogger("gazeback")

_STOP = object()


class Stats:
    """Counters the dashboard banner, ``done()`` and tests read."""

    def __init__(self) -> None:
        self.queued = 0
        self.recorded = 0
        self.spilled = 0  # requests written to the spill file because the db failed
        self.dropped = 0  # queue full: the writer could not keep up (logged loudly)
        self.process_errors = 0  # our code failed on a flow; stored with what we had
        self.store_errors = 0
        self.replayed = 0
        self.spill_skipped = 0  # spill-file lines that were not a recorded request
        self.backlog = 0  # held in memory now: no disk had room (retried)
        self.lost = 0  # the memory backlog overflowed or the writer stopped with it full

    def as_dict(self) -> dict[str, int]:
        return dict(vars(self))


class Intake:
    """The event-loop side every writer shares: non-blocking hand-over onto a bounded queue.

    Subclasses set ``self.queue``, ``self.stats`` and ``self._last_drop_log``.
    """

    queue: queue.Queue[Any]
    stats: Stats
    _last_drop_log: float

    def submit(self, snap: FlowSnapshot) -> bool:
        """Hand a snapshot to the writer without blocking; False if the queue was full."""
        try:
            self.queue.put_nowait(snap)
        except queue.Full:
            self.stats.dropped += 1
            now = time.monotonic()
            if now - self._last_drop_log > 5:
                self._last_drop_log = now
                logger.error(
                    "gazeback: the database writer is behind; %d requests not recorded so far",
                    self.stats.dropped,
                )
            return False
        self.stats.queued += 1
        return True

    def note_pinned(self, host: str, error: str | None) -> None:
        """Remember (in the db, from the writer) that a client refused our certificate."""
        try:
            self.queue.put_nowait(("pinned", host, error))
        except queue.Full:
            pass  # only an optimisation for later connections; the flow itself is recorded


class Writer(Intake):
    """Batches records into the database from its own thread.

    :param process_fn: (snapshot, context) → Record; injectable for tests
    :param index: tracker knowledge; by default the bundled (or updated) index, loaded
        in the writer thread so the proxy starts at once
    """

    def __init__(
        self,
        db_path: Path,
        key: bytes,
        *,
        source: str = "proxy",
        batch_size: int = 500,
        interval: float = 0.5,
        maxsize: int = 100_000,
        process_fn: Callable[[FlowSnapshot, Context], Record] = process,
        index: TrackerIndex | None = None,
        detect_leaks: bool = True,
        learn: bool = True,
        busy_timeout_ms: int = 5000,
        keep_days: int = 0,
        keep_detail_days: int = 0,
        backlog_max: int = 20_000,
        retry_interval: float = 2.0,
    ) -> None:
        self.db_path = Path(db_path)
        self.key = key
        self.source = source
        self.batch_size = batch_size
        self.interval = interval
        self.queue: queue.Queue[Any] = queue.Queue(maxsize=maxsize)
        self.process_fn = process_fn
        self.index = index
        self.detect_leaks = detect_leaks
        self.learn = learn  # apply the adapters (what each tracker learned)
        self.context = Context(key)
        self._stamp = ""
        self._stamp_checked = 0.0
        self.busy_timeout_ms = busy_timeout_ms
        self.keep_days = keep_days
        self.keep_detail_days = keep_detail_days  # older live traffic: hourly totals only
        self._next_prune = 0.0
        self.stats = Stats()
        self.capture_id: int | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._device_cache: dict[str, int] = {}
        self._known_trackers: set[str] = set()
        self._last_drop_log = 0.0
        self.pinned: dict[str, float] = {}  # host -> when a client last refused our certificate
        self.backlog: list[Record] = []
        self.backlog_max = backlog_max
        self.retry_interval = retry_interval
        self._next_retry = 0.0
        self._last_full_log = 0.0

    # -- lifecycle -------------------------------------------------------------------
    def start(self) -> None:
        """Open the database in the writer thread; raise here if that fails."""
        self._thread = threading.Thread(target=self._run, name="gazeback-writer", daemon=True)
        self._thread.start()
        self._ready.wait()
        if self._error is not None:
            raise self._error

    def stop(self, timeout: float = 30.0) -> None:
        """Flush everything queued, close the capture row and end the thread."""
        if self._thread is None:
            return
        self.queue.put(_STOP)
        self._thread.join(timeout)
        self._thread = None

    def flush(self, timeout: float = 10.0) -> None:
        """Wait until everything submitted so far is stored (for tests and commands)."""
        deadline = time.monotonic() + timeout
        while self.queue.unfinished_tasks and time.monotonic() < deadline:
            time.sleep(0.01)

    # -- writer thread ---------------------------------------------------------------
    def _open(self) -> sqlite_utils.Database:
        db = sqlite_utils.Database(self.db_path)
        db.enable_wal()
        db.execute("PRAGMA synchronous=NORMAL")
        db.conn.execute(f"PRAGMA busy_timeout={int(self.busy_timeout_ms)}")
        migrations.apply(db)
        return db

    def _run(self) -> None:
        try:
            db = self._open()
            if self.index is None:
                self.index = load_index()
            self._load_profile()
            self.capture_id = store.start_capture(db, self.source, self.index.versions())
            self.pinned = store.pinned_hosts(db)
            self._replay_spill(db)
        except BaseException as e:  # reported to start()'s caller
            self._error = e
            self._ready.set()
            return
        self._ready.set()
        # after start() returned: the first rollup of a long trail takes minutes (about 190 µs
        # per request rolled up, docs/benchmarks.md) and the proxy must not wait for it;
        # traffic meanwhile waits in the queue
        self._prune(db)
        pending: list[Record] = []
        deadline = time.monotonic() + self.interval
        stopping = False
        while not stopping:
            timeout = max(0.0, deadline - time.monotonic())
            try:
                got = self.queue.get(timeout=timeout)
            except queue.Empty:
                got = None
            if got is _STOP:
                stopping = True
                self.queue.task_done()
            elif isinstance(got, tuple):
                self._note_pinned(db, *got[1:])
                self.queue.task_done()
            elif got is not None:
                self._refresh_profile()  # before processing: new identities apply at once
                pending.append(self._record(got))
            if pending and (
                stopping or len(pending) >= self.batch_size or time.monotonic() >= deadline
            ):
                self._commit(db, pending)
                for _ in pending:
                    self.queue.task_done()
                pending = []
            if time.monotonic() >= deadline:
                deadline = time.monotonic() + self.interval
                self._prune(db)
                self._retry(db)
        self._retry(db, final=True)
        try:
            unsaved = self.stats.spilled + self.stats.dropped + self.stats.lost
            store.end_capture(db, self.capture_id, self.stats.recorded, unsaved)
        except Exception:
            logger.exception("gazeback: could not close the capture row")
        db.close()

    def _prune(self, db: sqlite_utils.Database) -> None:
        # retention and rollup: at start, then hourly
        if (self.keep_days <= 0 and self.keep_detail_days <= 0) or (
            time.monotonic() < self._next_prune
        ):
            return
        self._next_prune = time.monotonic() + 3600
        if self.keep_days > 0:
            try:
                n = store.prune(db, self.keep_days)
            except Exception as e:
                logger.error(
                    "gazeback: could not delete requests older than %d days: %s", self.keep_days, e
                )
            else:
                if n:
                    logger.info(
                        "gazeback: deleted %d requests older than %d days", n, self.keep_days
                    )
        if self.keep_detail_days > 0:
            try:
                done = store.rollup(db, self.keep_detail_days)
            except Exception as e:
                logger.error(
                    "gazeback: could not roll up detail older than %d days: %s",
                    self.keep_detail_days, e,
                )  # fmt: skip
                return
            if done and done.requests:
                logger.info(
                    "gazeback: rolled %d requests older than %d days into hourly totals "
                    "(detail kept from %s:00 UTC)",
                    done.requests, self.keep_detail_days, done.horizon,
                )  # fmt: skip

    def _note_pinned(self, db: sqlite_utils.Database, host: str, error: str | None) -> None:
        try:
            store.save_pinned(db, host, error)
        except Exception as e:
            logger.error("gazeback: could not remember pinned host %s: %s", host, e)

    def _load_profile(self) -> None:
        profile = load_profile(self.db_path) if self.detect_leaks else None
        adapters = load_adapters() if self.learn else None
        self.context = Context(self.key, self.index, profile, adapters)
        self._stamp = profile_stamp(self.db_path) if self.detect_leaks else ""
        self._stamp_checked = time.monotonic()

    def _refresh_profile(self) -> None:
        # identities added with `gazeback identity add` while the proxy runs apply within 5 s
        if not self.detect_leaks or time.monotonic() - self._stamp_checked < 5:
            return
        self._stamp_checked = time.monotonic()
        if profile_stamp(self.db_path) != self._stamp:
            try:
                self._load_profile()
            except Exception as e:
                logger.error("gazeback: could not reload identities: %s", e)

    def _record(self, snap: FlowSnapshot) -> Record:
        try:
            return self.process_fn(snap, self.context)
        except Exception:
            # Our code failed on this flow: keep what we safely can, and say so.
            self.stats.process_errors += 1
            logger.exception(
                "gazeback: could not process flow %s; stored unclassified", snap.flow_id
            )
        try:
            return process(snap, Context(self.key))
        except Exception:
            return unprocessed(snap)

    def _save(self, db: sqlite_utils.Database, records: list[Record]) -> int:
        return store.save_records(
            db,
            self.capture_id or 0,
            records,
            index=self.index,
            device_cache=self._device_cache,
            known_trackers=self._known_trackers,
        )

    def _commit(self, db: sqlite_utils.Database, records: list[Record]) -> None:
        try:
            self.stats.recorded += self._save(db, records)
        except Exception as e:
            self.stats.store_errors += 1
            self._device_cache.clear()
            self._known_trackers.clear()
            self._spill_or_keep(records, f"could not write {len(records)} requests to "
                                f"{self.db_path} ({e})")  # fmt: skip

    def _spill_or_keep(self, records: list[Record], why: str) -> bool:
        """Spill ``records`` where there is room, else keep them in the memory backlog."""
        try:
            path = spill.write(self.db_path, records)
        except OSError as e:
            self._keep(records, f"{why}; no disk has room for a spill file ({e})")
            return False
        self.stats.spilled += len(records)
        logger.error("gazeback: %s; kept in %s for the next start", why, path)
        return True

    def _keep(self, records: list[Record], why: str) -> None:
        if records is not self.backlog:
            self.backlog.extend(stored_only(r) for r in records)  # no bodies held in memory
        over = len(self.backlog) - self.backlog_max
        if over > 0:
            del self.backlog[:over]  # the oldest go: the newest say most about now
            self.stats.lost += over
        self.stats.backlog = len(self.backlog)
        now = time.monotonic()
        if over > 0:
            logger.critical(
                "gazeback: %s; the memory backlog is full: %d requests LOST so far, %d kept in "
                "memory and retried every %g s. Free some disk space.",
                why, self.stats.lost, len(self.backlog), self.retry_interval,
            )  # fmt: skip
        elif now - self._last_full_log > 5:
            self._last_full_log = now
            logger.critical(
                "gazeback: %s; %d requests kept in memory and retried every %g s (up to %d, "
                "then they are lost). Free some disk space.",
                why, len(self.backlog), self.retry_interval, self.backlog_max,
            )  # fmt: skip

    def _retry(self, db: sqlite_utils.Database, final: bool = False) -> None:
        """Store the memory backlog (or spill it) once a disk has room again."""
        if not self.backlog or (not final and time.monotonic() < self._next_retry):
            return
        self._next_retry = time.monotonic() + self.retry_interval
        kept = len(self.backlog)
        try:
            for start in range(0, kept, self.batch_size):
                self.stats.recorded += self._save(db, self.backlog[start : start + self.batch_size])
            self.backlog.clear()
        except Exception as e:
            self._device_cache.clear()
            self._known_trackers.clear()
            if self._spill_or_keep(self.backlog, f"still cannot write to {self.db_path} ({e})"):
                self.backlog.clear()
        else:
            logger.warning("gazeback: stored the %d requests that were kept in memory", kept)
        self.stats.backlog = len(self.backlog)
        if final and self.backlog:
            self.stats.lost += len(self.backlog)
            logger.critical(
                "gazeback: stopping with no room on any disk: %d requests LOST (%d in all)",
                len(self.backlog), self.stats.lost,
            )  # fmt: skip
            self.backlog.clear()
            self.stats.backlog = 0

    def _replay_spill(self, db: sqlite_utils.Database) -> None:
        def save(records: list[Record]) -> int:
            return store.save_records(db, self.capture_id or 0, records, index=self.index)

        for path in spill.spill_files(self.db_path):
            if path.is_file():
                stored, skipped = spill.replay(path, save, self.batch_size)
                self.stats.replayed += stored
                self.stats.spill_skipped += skipped
