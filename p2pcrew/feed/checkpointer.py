"""Copying the write-ahead log back into the database, off the writer's thread.

SQLite's automatic checkpoint runs inside the COMMIT that crosses its threshold, on
the writing thread. During bulk ingest that cost about 20 us of every entry on the
writer's critical path (``python -m benchmarks --profile``), time in which nothing
else in the batch moves. Here a second connection, on its own thread, runs PASSIVE
checkpoints instead: a passive checkpoint never blocks the writer or any reader,
and SQLite releases the GIL while it copies pages, so the writer keeps validating
the next batch meanwhile.

Durability is unchanged: a commit is durable once it is in the log, whoever later
copies it into the database file, and a crash mid-checkpoint is ordinary SQLite
recovery. The writer keeps an automatic threshold of its own (``BACKSTOP_PAGES``,
much larger than SQLite's default) so the log stays bounded even if this thread
never gets to run.
"""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path
from typing import Final

BACKSTOP_PAGES: Final = 16_384
"""The writer's own automatic checkpoint threshold (64 MiB of 4 KiB pages)."""
MIN_INTERVAL: Final = 0.25
"""Seconds between checkpoints at most: each one ends with an fsync of the database."""
JOIN_TIMEOUT: Final = 10.0


class Checkpointer:
    """A thread that checkpoints ``path`` soon after commits, at most every interval."""

    def __init__(self, path: Path, *, interval: float = MIN_INTERVAL) -> None:
        self._path = path
        self._interval = interval
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self.checkpoints = 0
        self.error: str | None = None
        """The last checkpoint failure, if any (the writer's backstop still bounds the log)."""
        self._thread = threading.Thread(target=self._run, name="p2pcrew-checkpoint", daemon=True)
        self._thread.start()

    def committed(self) -> None:
        """The writer committed: there is something to copy."""
        self._wake.set()

    def close(self) -> None:
        """Stop after at most one more checkpoint; the writer's close does the last one."""
        self._stopping.set()
        self._wake.set()
        self._thread.join(JOIN_TIMEOUT)

    def _run(self) -> None:
        try:
            db = sqlite3.connect(self._path, isolation_level=None, check_same_thread=True)
        except sqlite3.Error as exc:
            self.error = str(exc)
            return  # the writer's backstop checkpoints instead
        try:
            db.execute("PRAGMA busy_timeout=1000")
            while True:
                self._wake.wait()
                if self._stopping.is_set():
                    return
                self._wake.clear()
                try:
                    db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
                    self.checkpoints += 1
                except sqlite3.Error as exc:
                    self.error = str(exc)
                self._stopping.wait(self._interval)  # let commits pile up into one
        finally:
            db.close()
