"""Run the writer in a child process, so classification and leak detection never compete
with the proxy's event loop for Python's GIL.

The proxy side only batches snapshots and hands them to the child through a pipe. If the
child dies, the proxy side falls back to an in-process Writer and says so loudly: the
person's traffic is never held up, and records keep being stored.
"""

from __future__ import annotations

import hashlib
import logging
import multiprocessing
import multiprocessing.spawn
import os
import queue
import shlex
import signal
import tempfile
import threading
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from gazeback.capture.writer import Intake, Stats, Writer

logger = logging.getLogger("gazeback")

_STOP = object()
WRITER_NICENESS = 10
START_TIMEOUT = 120.0  # seconds for the child to import, open the db and load the knowledge


def child_main(conn: Connection, db_path: str, key: bytes, kwargs: dict[str, Any]) -> None:
    """The child process: a normal Writer fed from the pipe."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C: the parent decides when we stop
    try:
        # When the machine is busy, the person's traffic goes first: the writer catches up
        # from its queue as soon as there is CPU to spare.
        os.nice(WRITER_NICENESS)
    except OSError:
        pass
    writer = Writer(Path(db_path), key, **kwargs)
    try:
        writer.start()
    except Exception as e:
        conn.send(("error", f"{type(e).__name__}: {e}"))
        return
    conn.send(("ready", writer.pinned))
    while True:
        try:
            msg = conn.recv()
        except (EOFError, OSError):
            break  # the proxy went away: store what we have
        if msg == "stop":
            break
        for item in msg:
            writer.queue.put(item)
    writer.stop()
    try:
        conn.send(("stats", writer.stats.as_dict()))
    except OSError:
        pass


class ProcessWriter(Intake):
    """The Writer's interface, with the work done in a child process."""

    def __init__(
        self,
        db_path: Path,
        key: bytes,
        *,
        batch_size: int = 16,  # bounds how long pickling a batch holds the GIL (~0.2 ms)
        interval: float = 0.2,
        maxsize: int = 100_000,
        **writer_kwargs: Any,
    ) -> None:
        self.db_path = Path(db_path)
        self.key = key
        self.batch_size = batch_size
        self.interval = interval
        self.queue: queue.Queue[Any] = queue.Queue(maxsize=maxsize)
        self.writer_kwargs = writer_kwargs
        self.stats = Stats()
        self.pinned: dict[str, float] = {}
        self.fallback: Writer | None = None
        self._proc: Any = None
        self._conn: Connection | None = None
        self._thread: threading.Thread | None = None
        self._last_drop_log = 0.0

    # -- lifecycle -------------------------------------------------------------------------
    def start(self) -> None:
        """Start the child and wait until it has opened the database (or raise why not)."""
        for attempt in (1, 2):
            parent, payload = self._launch()
            if parent is not None:
                break
            # Killed by a Ctrl-C in the few milliseconds before its launcher ignores it: the
            # same Ctrl-C is on its way to mitmproxy, which stops us cleanly; start again so
            # that stop finds a writer (a second death is a real failure).
            if attempt == 2:
                raise OSError("the gazeback writer process exited at start")
        assert parent is not None
        self._finish_start(parent, payload)

    def _launch(self) -> tuple[Connection | None, Any]:
        mp = multiprocessing.get_context("spawn")  # no fork of mitmproxy's threads and loop
        parent, child = mp.Pipe()
        self._proc = mp.Process(
            target=child_main,
            args=(child, str(self.db_path), self.key, self.writer_kwargs),
            name="gazeback-writer",
            daemon=True,
        )
        # The child ignores Ctrl-C from birth: a terminal sends SIGINT to the whole process
        # group, and one pressed while the child still imports (a second or more) would kill
        # it. The parent keeps its own handler (a process-wide SIG_IGN here would drop a Ctrl-C
        # meant for mitmproxy); the child is started through `sh -c "trap '' INT; exec python"`,
        # and an ignored signal stays ignored across exec. The parent decides when it stops.
        executable = multiprocessing.spawn.get_executable()
        mp.set_executable(_ignoring_sigint(os.fsdecode(executable)))
        try:
            self._proc.start()
        finally:
            mp.set_executable(executable)
        child.close()
        if not parent.poll(START_TIMEOUT):
            self._proc.kill()
            raise TimeoutError("the gazeback writer process did not start")
        try:
            return parent, parent.recv()
        except EOFError:
            self._proc.join(5)
            if self._proc.exitcode in (-signal.SIGINT, 128 + signal.SIGINT):
                return None, None
            raise OSError("the gazeback writer process exited at start") from None

    def _finish_start(self, parent: Connection, message: Any) -> None:
        kind, payload = message
        if kind == "error":
            self._proc.join(5)
            raise OSError(payload)
        self.pinned = dict(payload)
        self._conn = parent
        self._thread = threading.Thread(target=self._forward, name="gazeback-forward", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 60.0) -> None:
        """Hand over everything queued, let the child flush and close, collect its counts."""
        if self._thread is None:
            return
        self.queue.put(_STOP)
        self._thread.join(timeout)
        self._thread = None
        if self._proc is not None:
            self._proc.join(timeout)
            if self._proc.is_alive():
                self._proc.kill()

    # -- forwarding thread -----------------------------------------------------------------
    def _forward(self) -> None:
        stopping = False
        while not stopping:
            # Hand over whatever is queued right away (up to a batch): what sits in this
            # process is what a crash of the proxy would lose.
            batch: list[Any] = []
            try:
                item = self.queue.get(timeout=self.interval)
            except queue.Empty:
                continue
            while True:
                if item is _STOP:
                    stopping = True
                    break
                batch.append(item)
                if len(batch) >= self.batch_size:
                    break
                try:
                    item = self.queue.get_nowait()
                except queue.Empty:
                    break
            if batch:
                self._send(batch)
        self._finish()

    def _send(self, batch: list[Any]) -> None:
        if self.fallback is None and self._conn is not None:
            try:
                self._conn.send(batch)
                return
            except (OSError, ValueError) as e:
                logger.error(
                    "gazeback: the writer process failed (%s); storing from the proxy process",
                    e,
                )
                self._start_fallback()
        if self.fallback is not None:
            for item in batch:
                self.fallback.queue.put(item)

    def _start_fallback(self) -> None:
        self._conn = None
        self.fallback = Writer(self.db_path, self.key, **self.writer_kwargs)
        self.fallback.start()

    def _finish(self) -> None:
        if self._conn is not None:
            try:
                self._conn.send("stop")
                if self._conn.poll(60):
                    kind, counts = self._conn.recv()
                    if kind == "stats":
                        for name, value in counts.items():
                            if name not in ("queued", "dropped"):
                                setattr(self.stats, name, value)
            except (OSError, EOFError):
                logger.error("gazeback: the writer process ended before confirming its counts")
        if self.fallback is not None:
            self.fallback.stop()
            for name, value in self.fallback.stats.as_dict().items():
                if name not in ("queued", "dropped"):
                    setattr(self.stats, name, getattr(self.stats, name) + value)


def _ignoring_sigint(python: str) -> str:
    """A private launcher that starts ``python`` with SIGINT ignored (see ProcessWriter.start)."""
    folder = Path(tempfile.gettempdir()) / f"gazeback-{os.getuid()}"
    folder.mkdir(mode=0o700, exist_ok=True)
    if folder.stat().st_uid != os.getuid() or folder.stat().st_mode & 0o077:
        return python  # not ours: never run a launcher someone else could have written
    launcher = folder / f"python-nointr-{hashlib.sha256(python.encode()).hexdigest()[:12]}"
    text = f"#!/bin/sh\ntrap '' INT\nexec {shlex.quote(python)} \"$@\"\n"
    if not launcher.exists() or launcher.read_text() != text:
        tmp = launcher.with_suffix(f".{os.getpid()}")
        tmp.write_text(text)
        tmp.chmod(0o700)
        tmp.replace(launcher)
    return str(launcher)
