"""Large batches are verified in worker processes, so Python work runs on both cores.

Threads were enough for libsodium (it releases the GIL), but on a bulk ingest the
rest of the work (decoding headers and payloads, applying the chain rules, driving
SQLite) is Python, and threads share one interpreter lock: measured, the writer and
the verify threads spent much of their time waiting on each other. In a worker
process the decode, the signature check and the payload's index row run beside the
writer instead of against it.

One pool serves the whole process (every store, every peer link), started on the
first large batch and sized to the machine, so memory and process count stay
bounded however many links ingest at once. Workers are spawned, never forked (a
fork of a process with an event loop and threads is unsafe), and exit when their
parent dies, so a SIGKILLed node leaves nothing behind. If worker processes cannot
be started or die, the caller falls back to threads: slower, never wrong.

What crosses the process boundary is plain data: the worker sends the decoded
header fields and the index row as tuples (pickling the dataclasses cost more than
the work saved), and the parent rebuilds them around the header bytes it already
holds. The worker is our own code in our own process tree; it is trusted as the
verify threads are.
"""

from __future__ import annotations

import atexit
import logging
import multiprocessing
import os
import threading
import time
from collections.abc import Sequence
from concurrent.futures import Future, ProcessPoolExecutor

from p2pcrew.feed.entry import Entry, decode_entry, verify_signature
from p2pcrew.feed.errors import EntryRejected
from p2pcrew.feed.indexing import NOT_YET, IndexRow, RowHint, index_row

log = logging.getLogger(__name__)

PROCESS_MIN_BATCH = 256
"""Smaller batches stay on threads: the hand-off would cost more than it saves."""
PROCESS_CHUNK = 128
"""Entries per task: enough to amortise the pipe, few enough to stream results."""
PARENT_CHECK_SECONDS = 1.0

Item = tuple[bytes, bytes | None]
"""A received (header, payload) pair; payload None when it was deleted."""
WireEntry = tuple[bytes, int, bytes | None, bytes | None, bytes, int, bytes, bytes, int]
WireRow = tuple[
    str, int, bytes | None, bytes | None, bytes | None, bytes | None, str | None, str | None
]
WireResult = tuple[WireEntry | EntryRejected, WireRow | RowHint]
Prepared = tuple[Entry | EntryRejected, RowHint]


# ---- in the worker process -------------------------------------------------------


def _watch_parent(parent: int) -> None:
    """Exit once the parent is gone (we were reparented); a pipe alone may not tell."""

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(PARENT_CHECK_SECONDS)
        os._exit(0)

    threading.Thread(target=watch, name="p2pcrew-parent-watch", daemon=True).start()


def prepare(items: Sequence[Item]) -> list[Prepared]:
    """Decode, verify and index ``items``: the work a verify thread or worker does."""
    out: list[Prepared] = []
    for header, payload in items:
        try:
            entry = decode_entry(header)
            verify_signature(entry)
        except EntryRejected as exc:
            out.append((exc, NOT_YET))
            continue
        if payload is None or len(payload) != entry.payload_size:
            out.append((entry, NOT_YET))  # the store rejects or skips it; no work here
        else:
            out.append((entry, index_row(payload)))
    return out


def prepare_wire(items: Sequence[Item]) -> list[WireResult]:
    """``prepare`` in the plain form that pickles fast (the header bytes stay behind)."""
    return [
        (_entry_to_wire(decoded) if isinstance(decoded, Entry) else decoded, _row_to_wire(hint))
        for decoded, hint in prepare(items)
    ]


def _entry_to_wire(entry: Entry) -> WireEntry:
    return (
        entry.author,
        entry.seq,
        entry.backlink,
        entry.lipmaa_link,
        entry.payload_hash,
        entry.payload_size,
        entry.signature,
        entry.id,
        entry.version,
    )


def _row_to_wire(hint: RowHint) -> WireRow | RowHint:
    if not isinstance(hint, IndexRow):
        return hint
    return (
        hint.type,
        hint.claimed_time,
        hint.root,
        hint.parent,
        hint.target,
        hint.crew,
        hint.name,
        hint.action,
    )


# ---- in the parent -----------------------------------------------------------------


def from_wire(items: Sequence[Item], results: list[WireResult]) -> list[Prepared]:
    """Rebuild entries and rows around the header bytes the parent already holds."""
    out: list[Prepared] = []
    for (header, _), (decoded, hint) in zip(items, results, strict=True):
        if isinstance(decoded, EntryRejected):
            out.append((decoded, NOT_YET))
            continue
        author, seq, backlink, lipmaa_link, payload_hash, size, signature, entry_id, version = (
            decoded
        )
        entry = Entry(
            author,
            seq,
            backlink,
            lipmaa_link,
            payload_hash,
            size,
            signature,
            header,
            entry_id,
            version,
        )
        out.append((entry, IndexRow(*hint) if isinstance(hint, tuple) else hint))
    return out


class _SharedPool:
    """The process-wide worker pool: lazily started, shut down at exit, given up if broken."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._executor: ProcessPoolExecutor | None = None
        self._disabled = os.environ.get("P2PCREW_VERIFY_PROCESSES", "1") == "0"

    def get(self) -> ProcessPoolExecutor | None:
        with self._lock:
            if self._disabled:
                return None
            if self._executor is None:
                try:
                    self._executor = ProcessPoolExecutor(
                        max_workers=os.cpu_count() or 1,
                        mp_context=multiprocessing.get_context("spawn"),
                        initializer=_watch_parent,
                        initargs=(os.getpid(),),
                    )
                except (OSError, ImportError, NotImplementedError) as exc:
                    self._give_up(exc)
                    return None
                atexit.register(self.shutdown)
            return self._executor

    def submit(self, items: Sequence[Item]) -> Future[list[WireResult]] | None:
        executor = self.get()
        if executor is None:
            return None
        try:
            return executor.submit(prepare_wire, items)
        except (RuntimeError, OSError) as exc:  # BrokenProcessPool is a RuntimeError
            with self._lock:
                self._give_up(exc)
            return None

    def broken(self, exc: BaseException) -> None:
        """A worker died or could not start: use threads from now on."""
        with self._lock:
            self._give_up(exc)

    def _give_up(self, exc: BaseException) -> None:
        if not self._disabled:
            log.warning("verify worker processes unavailable (%s); verifying on threads", exc)
        self._disabled = True
        executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=False, cancel_futures=True)

    def shutdown(self) -> None:
        with self._lock:
            executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=True, cancel_futures=True)


SHARED_POOL = _SharedPool()
