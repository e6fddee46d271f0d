"""Group commit: many concurrent publishes, one durable transaction.

An own entry must be durable (fsynced) before anything can offer it to a peer, and
an fsync costs about as much as a few hundred signatures. So callers that publish at
the same time queue their payloads; one writer task takes everything queued, appends
it in one transaction on a worker thread, and resolves each caller with its entries.
One caller alone still gets its own commit; a burst shares them.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

from p2pcrew.feed.entry import Entry

MAX_GROUP = 512
"""Payloads per transaction at most, so one huge burst does not stall the others."""

AppendMany = Callable[[list[bytes]], list[Entry]]


class GroupCommitter:
    def __init__(self, append_many: AppendMany) -> None:
        self._append_many = append_many
        self._queue: asyncio.Queue[tuple[list[bytes], asyncio.Future[list[Entry]]]] = (
            asyncio.Queue()
        )
        self._task: asyncio.Task[None] | None = None
        self.commits = 0

    async def append(self, payloads: list[bytes]) -> list[Entry]:
        """Durably append ``payloads`` (in order); raises what the append raised."""
        if self._task is None:
            self._task = asyncio.create_task(self._run())
        future: asyncio.Future[list[Entry]] = asyncio.get_running_loop().create_future()
        await self._queue.put((payloads, future))
        return await future

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        while True:
            group = [await self._queue.get()]
            # Publishers woken by the previous commit are runnable now: let them queue
            # their next payload before we take the group, or groups stay tiny.
            await asyncio.sleep(0)
            size = len(group[0][0])
            while not self._queue.empty() and size < MAX_GROUP:
                group.append(self._queue.get_nowait())
                size += len(group[-1][0])
            payloads = [p for item, _ in group for p in item]
            try:
                entries = await asyncio.to_thread(self._append_many, payloads)
            except Exception as exc:  # one bad payload: retry each caller alone
                await self._one_by_one(group, exc)
                continue
            self.commits += 1
            start = 0
            for item, future in group:
                if not future.done():
                    future.set_result(entries[start : start + len(item)])
                start += len(item)

    async def _one_by_one(
        self, group: list[tuple[list[bytes], asyncio.Future[list[Entry]]]], first: Exception
    ) -> None:
        if len(group) == 1:
            if not group[0][1].done():
                group[0][1].set_exception(first)
            return
        for item, future in group:
            try:
                result = await asyncio.to_thread(self._append_many, item)
            except Exception as exc:
                if not future.done():
                    future.set_exception(exc)
            else:
                self.commits += 1
                if not future.done():
                    future.set_result(result)
