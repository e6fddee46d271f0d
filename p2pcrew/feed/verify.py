"""Signature verification spread over the machine's cores.

Ed25519 verification dominates ingest cost. PyNaCl releases the GIL inside
libsodium, so a small thread pool verifies a batch on every core while the caller
keeps the single SQLite writer busy. Decoding and verifying are pure, so doing
them before the store's transaction changes nothing about what is accepted.

The workers also decode each plaintext payload into its index row (``prepare``):
that is pure too, and doing it here lets it run while the writer thread waits on
SQLite (which releases the GIL), instead of after, on the writer's critical path.
The row is only a hint: the store uses it after the payload hash has been checked.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import BrokenExecutor, Future, ThreadPoolExecutor
from typing import Generic, TypeVar

from p2pcrew.feed.entry import Entry, decode_entry, verify_signature
from p2pcrew.feed.errors import EntryRejected
from p2pcrew.feed.verify_processes import (
    PROCESS_CHUNK,
    PROCESS_MIN_BATCH,
    SHARED_POOL,
    Item,
    Prepared,
    WireResult,
    from_wire,
    prepare,
)

T = TypeVar("T")
R = TypeVar("R")

CHUNK = 64
"""Entries per task: large enough that thread hand-off costs little."""

Decoded = Entry | EntryRejected


def _decode_and_verify(headers: Sequence[bytes]) -> list[Decoded]:
    out: list[Decoded] = []
    for header in headers:
        try:
            entry = decode_entry(header)
            verify_signature(entry)
        except EntryRejected as exc:
            out.append(exc)
        else:
            out.append(entry)
    return out


class Started(Generic[R]):
    """Work handed to the pool (or, for small batches and one worker, run when read)."""

    def __init__(self, run: Callable[[], list[R]] | None, futures: list[Future[list[R]]]):
        self._run = run
        self._futures = futures

    def chunks(self) -> Iterator[list[R]]:
        """The results, chunk by chunk, in order; what is not read is cancelled."""
        if self._run is not None:
            yield self._run()
            return
        try:
            for future in self._futures:
                yield future.result()
        finally:
            self.cancel()

    def cancel(self) -> None:
        for future in self._futures:
            future.cancel()


class _InProcesses(Started[Prepared]):
    """Chunks verified by the shared worker processes, rebuilt here as they are read.

    If the pool breaks (a worker killed, say), the chunks not yet read are prepared
    on this thread instead: the batch still completes, with the same results.
    """

    def __init__(self, parts: list[tuple[Sequence[Item], Future[list[WireResult]]]]) -> None:
        super().__init__(None, [])
        self._parts = parts

    def chunks(self) -> Iterator[list[Prepared]]:
        broken = False
        try:
            for items, future in self._parts:
                if not broken:
                    try:
                        yield from_wire(items, future.result())
                        continue
                    except BrokenExecutor as exc:
                        SHARED_POOL.broken(exc)
                        broken = True
                yield prepare(items)
        finally:
            self.cancel()

    def cancel(self) -> None:
        for _, future in self._parts:
            future.cancel()


class Verifier:
    """Decodes and verifies headers, in parallel when the batch is large enough."""

    def __init__(self, workers: int | None = None) -> None:
        self._workers = workers or min(4, os.cpu_count() or 1)
        self._pool: ThreadPoolExecutor | None = None

    def verify(self, headers: Sequence[bytes]) -> list[Decoded]:
        """Return, per header, the verified Entry or the rejection it earned."""
        results: list[Decoded] = []
        for part in self.verify_chunks(headers):
            results.extend(part)
        return results

    def verify_chunks(self, headers: Sequence[bytes]) -> Iterator[list[Decoded]]:
        """Yield results chunk by chunk, in order, while later chunks are still verified.

        All chunks are submitted at once, so the caller can store chunk 1 while the
        pool works on chunk 2: verification and the database overlap.
        """
        yield from self._chunks(_decode_and_verify, headers)

    def prepare_chunks(self, items: Sequence[Item]) -> Iterator[list[Prepared]]:
        """``verify_chunks`` over received pairs, each with its payload's index row."""
        yield from self.start_prepare(items).chunks()

    def start_prepare(self, items: Sequence[Item]) -> Started[Prepared]:
        """Hand ``items`` to the pool now; read the results later, in order.

        ``Store.ingest_batches`` starts the next batch this way before it stores the
        current one, so the pool is not idle while the writer commits.
        """
        if self._workers > 1 and len(items) >= PROCESS_MIN_BATCH:
            parts: list[tuple[Sequence[Item], Future[list[WireResult]]]] = []
            for i in range(0, len(items), PROCESS_CHUNK):
                part = items[i : i + PROCESS_CHUNK]
                future = SHARED_POOL.submit(part)
                if future is None:
                    for _, submitted in parts:
                        submitted.cancel()
                    break
                parts.append((part, future))
            else:
                return _InProcesses(parts)
        return self._start(prepare, items)

    def _chunks(
        self, work: Callable[[Sequence[T]], list[R]], todo: Sequence[T]
    ) -> Iterator[list[R]]:
        yield from self._start(work, todo).chunks()

    def _start(self, work: Callable[[Sequence[T]], list[R]], todo: Sequence[T]) -> Started[R]:
        if self._workers <= 1 or len(todo) <= CHUNK:
            return Started(lambda: work(todo), [])
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self._workers, thread_name_prefix="p2pcrew-verify")
        pool = self._pool
        futures = [pool.submit(work, todo[i : i + CHUNK]) for i in range(0, len(todo), CHUNK)]
        return Started(None, futures)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None
