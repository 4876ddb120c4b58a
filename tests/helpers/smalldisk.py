"""A small disk for fault tests: a tmpfs mounted in a private mount namespace.

``unshare -m`` keeps the mount out of the machine's own namespace. A holder process keeps
the namespace alive; processes started with ``preexec_fn=disk.enter`` join it, and the test
reads and writes inside it through ``/proc/<holder>/root``. Closing the holder removes it all.
"""

from __future__ import annotations

import ast
import ctypes
import errno
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

CLONE_NEWNS = 0x00020000


class SmallDisk:
    def __init__(self, where: Path, size: str, options: str = "") -> None:
        where.mkdir(parents=True, exist_ok=True)
        self.where = where
        self.holder = subprocess.Popen(
            ["unshare", "-m", "--propagation", "private", "sh", "-c",
             'mount -t tmpfs -o "size=$1,mode=0700$3" tmpfs "$2" && echo mounted && exec sleep 900',
             "sh", size, str(where), f",{options}" if options else ""],
            stdout=subprocess.PIPE,
        )  # fmt: skip
        line = self.holder.stdout.readline() if self.holder.stdout else b""
        if line != b"mounted\n":
            self.close()
            raise RuntimeError("could not mount a tmpfs in a mount namespace (root needed)")

    def path(self, inside: Path) -> Path:
        """``inside`` as this test process reaches it (through the holder's root)."""
        return Path(f"/proc/{self.holder.pid}/root") / Path(inside).absolute().relative_to("/")

    def enter(self) -> None:
        """``preexec_fn``: the child joins the namespace before it runs anything."""
        libc = ctypes.CDLL(None, use_errno=True)
        fd = os.open(f"/proc/{self.holder.pid}/ns/mnt", os.O_RDONLY)
        if libc.setns(fd, CLONE_NEWNS) != 0:
            raise OSError(ctypes.get_errno(), "setns")
        os.close(fd)

    def query(self, db_path: Path, sql: str) -> object:
        """The first value ``sql`` gives on a database on this disk, read from inside the
        namespace (SQLite resolves /proc/<pid>/root back to this namespace's own files)."""
        code = (
            "import sqlite3, sys; c = sqlite3.connect(f'file:{sys.argv[1]}?mode=ro', uri=True); "
            "print(repr(c.execute(sys.argv[2]).fetchone()[0]))"
        )
        out = subprocess.run(
            [sys.executable, "-c", code, str(db_path), sql],
            preexec_fn=self.enter, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        if out.returncode:
            raise sqlite3.OperationalError(out.stderr.strip().splitlines()[-1])
        return ast.literal_eval(out.stdout.strip())

    def fill(self) -> None:
        """Take every free byte."""
        chunk = b"\0" * (1 << 20)
        with open(self.path(self.where / "filler"), "ab", buffering=0) as f:
            while len(chunk) >= 512:
                try:
                    f.write(chunk)
                except OSError as e:
                    if e.errno != errno.ENOSPC:
                        raise
                    chunk = chunk[: len(chunk) // 2]

    def free(self) -> None:
        self.path(self.where / "filler").unlink()

    def close(self) -> None:
        if self.holder.poll() is None:
            self.holder.kill()
        self.holder.wait()
