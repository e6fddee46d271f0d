"""Keeping in touch with remembered peers: whom to dial again, when, and the loop doing it.

Why this exists: links drop for ordinary reasons (the pub restarts, a partition outlasts
the 60 s idle timeout, the laptop sleeps, the Wi-Fi changes). A node that dials its
peers once, at start, is then cut off for good. So a running node keeps a set of
addresses (the command line's, plus every remembered peer not found on the LAN) and
dials each again whenever its peer is not connected.

``Schedule`` decides, and is pure: the caller passes ``now``, the current addresses
and the connected peer keys, and gets back the addresses to dial; outcomes are told
back with ``succeeded`` / ``failed``. ``KeepInTouch`` is the asyncio adapter that runs
a schedule against a ``Node`` with a dial function it is given.

Policy, and why:

- A failed dial is retried after exponential backoff with jitter: ~1 s, 2 s, 4 s, ...
  up to 60 s, each +-20 % (so members of a pub that comes back do not all knock at the
  same instant).
- A link that closes makes its address due again after ``CLOSED_DELAY`` (2 s): a
  remote restart is recovered within seconds, yet a peer that hangs up on purpose is
  not hammered. A link that closes within ``STABLE_SECONDS`` of coming up counts as a
  failure (a peer that admits the handshake, then drops us, backs off like a refusal);
  one that held that long resets the backoff.
- A peer whose key is already connected (whichever side dialled) is not dialled, and
  one key is dialled through one address at a time (a pub's tcp:// and ws:// address
  would otherwise race each other into "already connected").
- At most ``MAX_IN_FLIGHT`` dials at once: a node with many remembered, absent peers
  must not open dozens of sockets on every wake-up.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Awaitable, Callable, Collection, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from p2pcrew.replicate.address import Address, BadAddress, parse_address

if TYPE_CHECKING:
    from p2pcrew.feed.store import Store
    from p2pcrew.replicate.node import Node

log = logging.getLogger(__name__)

BASE_DELAY = 1.0
MAX_DELAY = 60.0
JITTER = 0.2
"""Each backoff delay is scaled by a factor drawn from [1 - JITTER, 1 + JITTER)."""
CLOSED_DELAY = 2.0
STABLE_SECONDS = 10.0
MAX_IN_FLIGHT = 4
TICK_SECONDS = 1.0
"""The adapter looks at ``node.links`` at least this often, to notice closed links."""


def backoff(failures: int, draw: float) -> float:
    """Delay after ``failures`` (>= 1) failures in a row; ``draw`` in [0, 1) is the jitter."""
    delay = min(MAX_DELAY, BASE_DELAY * 2.0 ** min(failures - 1, 32))
    return delay * (1.0 - JITTER + 2.0 * JITTER * draw)


@dataclass(slots=True)
class _Slot:
    address: Address
    due: float
    failures: int = 0
    up_since: float | None = None
    """When its peer key was first seen connected (by any path); None while it is not."""
    reported: str | None = None
    """The failure last reported, so the same one is reported once, not on every retry."""


class Schedule:
    """Per address: when it is next due. No clock and no I/O of its own."""

    def __init__(
        self, *, max_in_flight: int = MAX_IN_FLIGHT, rand: Callable[[], float] = random.random
    ) -> None:
        self.max_in_flight = max_in_flight
        self._rand = rand
        self._slots: dict[str, _Slot] = {}
        self._flying: dict[str, bytes] = {}
        """Address text -> peer key of the dials in flight."""

    def tick(
        self, now: float, addresses: Iterable[Address], connected: Collection[bytes]
    ) -> list[Address]:
        """Take the current address set and connected keys; return the addresses to dial
        now (they count as in flight until ``succeeded`` or ``failed``)."""
        current = {str(a): a for a in addresses}
        for text in self._slots.keys() - current.keys():
            del self._slots[text]
        for text, address in current.items():
            if text not in self._slots:
                self._slots[text] = _Slot(address, due=now)
        for slot in self._slots.values():
            self._observe(slot, now, slot.address.key in connected)
        room = self.max_in_flight - len(self._flying)
        busy_keys = set(self._flying.values()) | set(connected)
        ready = sorted(
            (s for s in self._slots.values() if s.due <= now and self._idle(s, busy_keys)),
            key=lambda s: (s.failures, s.due, str(s.address)),
        )
        chosen: list[Address] = []
        for slot in ready:
            if len(chosen) >= room:
                break
            if slot.address.key in busy_keys:
                continue  # another address of this key was just chosen
            busy_keys.add(slot.address.key)
            self._flying[str(slot.address)] = slot.address.key
            chosen.append(slot.address)
        return chosen

    def succeeded(self, address: Address, now: float) -> None:
        """The dial worked. The backoff resets once the link has held ``STABLE_SECONDS``."""
        self._flying.pop(str(address), None)
        slot = self._slots.get(str(address))
        if slot is not None:
            slot.reported = None
            if slot.up_since is None:
                slot.up_since = now

    def failed(self, address: Address, now: float, reason: str) -> bool:
        """The dial failed; returns True when ``reason`` is news worth reporting (not the
        failure already reported for this address since it last connected)."""
        self._flying.pop(str(address), None)
        slot = self._slots.get(str(address))
        if slot is None:
            return False  # dropped from the set meanwhile
        slot.failures += 1
        slot.due = now + backoff(slot.failures, self._rand())
        slot.up_since = None
        news = reason != slot.reported
        slot.reported = reason
        return news

    def next_due(self) -> float | None:
        """The earliest time an address not connected and not in flight becomes due."""
        dues = [s.due for s in self._slots.values() if s.up_since is None and not self._flies(s)]
        return min(dues, default=None)

    def in_flight(self) -> int:
        return len(self._flying)

    def due_at(self, address: Address) -> float | None:
        """When ``address`` is next due (None: not in the set). For tests and status."""
        slot = self._slots.get(str(address))
        return None if slot is None else slot.due

    def failures(self, address: Address) -> int:
        slot = self._slots.get(str(address))
        return 0 if slot is None else slot.failures

    def _flies(self, slot: _Slot) -> bool:
        return str(slot.address) in self._flying

    def _idle(self, slot: _Slot, busy_keys: set[bytes]) -> bool:
        return not self._flies(slot) and slot.address.key not in busy_keys

    def _observe(self, slot: _Slot, now: float, up: bool) -> None:
        """Follow the peer key's link: note when it came up, and when it went away."""
        if up:
            slot.reported = None  # reachable again: its next failure is news
            if slot.up_since is None:
                slot.up_since = now
            elif now - slot.up_since >= STABLE_SECONDS:
                slot.failures = 0
            return
        if slot.up_since is None:
            return
        lived = now - slot.up_since
        slot.up_since = None
        if lived >= STABLE_SECONDS:
            slot.failures = 0
            slot.due = now + CLOSED_DELAY
        else:  # up and gone at once: the peer may be refusing us; back off
            slot.failures += 1
            slot.due = now + max(CLOSED_DELAY, backoff(slot.failures, self._rand()))


# ---- the asyncio adapter ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Target:
    """An address to keep in touch with, and how we learnt it (kept in the peer record)."""

    address: Address
    source: str = "manual"


@dataclass(frozen=True, slots=True)
class Outcome:
    """A dial's result: ``error`` None means connected. ``news`` is False for a failure
    already reported for this address (callers that print should stay quiet)."""

    address: Address
    error: str | None = None
    news: bool = True


Dial = Callable[[Address, str], Awaitable[object]]
"""(address, source) -> anything; raises on failure (its message is the reason)."""


def remembered(store: Store, fixed: Iterable[Address] = ()) -> list[Target]:
    """``fixed`` (e.g. the command line's addresses), then every known peer not found on
    the LAN (discovery finds those again), as ``connect``, ``join`` and ``serve`` saved
    them. A known peer's source is kept, so re-dialling a pub does not relabel it."""
    known: dict[str, Target] = {}
    for record in store.known_peers():
        if record.source == "lan":
            continue
        try:
            known[record.address] = Target(parse_address(record.address), record.source)
        except BadAddress:
            continue  # an incoming peer's socket address: nothing to dial
    targets = {str(a): known.get(str(a), Target(a)) for a in fixed}
    for text, target in known.items():
        targets.setdefault(text, target)
    return list(targets.values())


class KeepInTouch:
    """Runs a ``Schedule`` against a node: ticks, dials, reports. ``close`` stops it."""

    def __init__(
        self,
        node: Node,
        dial: Dial,
        report: Callable[[Outcome], None],
        *,
        fixed: Iterable[Address] = (),
        schedule: Schedule | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.node = node
        self.fixed = tuple(fixed)
        self.schedule = schedule or Schedule()
        self._dial = dial
        self._report = report
        self._clock = clock
        self._targets: list[Target] = [Target(a) for a in self.fixed]
        self._wake = asyncio.Event()
        self._runner: asyncio.Task[None] | None = None
        self._dials: set[asyncio.Task[None]] = set()

    def start(self) -> None:
        if self._runner is None:
            self._runner = asyncio.create_task(self._run())

    def wake(self) -> None:
        """Tick now (the address set or the links changed)."""
        self._wake.set()

    async def close(self) -> None:
        """Stop ticking and cancel the dials in flight; returns once they have ended."""
        tasks = [t for t in (self._runner, *self._dials) if t is not None]
        for task in tasks:
            task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.gather(*tasks, return_exceptions=True)
        self._runner = None

    async def _run(self) -> None:
        while True:
            self._wake.clear()
            await self._refresh_targets()
            sources = {str(t.address): t.source for t in self._targets}
            now = self._clock()
            addresses = [t.address for t in self._targets]
            for address in self.schedule.tick(now, addresses, self.node.links.keys()):
                task = asyncio.create_task(self._dial_one(address, sources[str(address)]))
                self._dials.add(task)
                task.add_done_callback(self._dials.discard)
            due = self.schedule.next_due()
            delay = TICK_SECONDS if due is None else min(TICK_SECONDS, max(0.05, due - now))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), delay)

    async def _refresh_targets(self) -> None:
        """Re-read the known peers: ``p2pcrew connect`` may have added one meanwhile. On a
        worker thread, because the store's lock may be held by an ingest for a while."""
        try:
            self._targets = await asyncio.to_thread(remembered, self.node.store, self.fixed)
        except Exception:  # a busy or closing store: keep the last set, try next tick
            log.exception("could not read the known peers")

    async def _dial_one(self, address: Address, source: str) -> None:
        try:
            await self._dial(address, source)
        except Exception as exc:
            now = self._clock()
            if address.key in self.node.links:  # connected meanwhile by another path
                self.schedule.succeeded(address, now)
            else:
                reason = str(exc) or type(exc).__name__
                news = self.schedule.failed(address, now, reason)
                self._tell(Outcome(address, reason, news))
        else:
            self.schedule.succeeded(address, self._clock())
            self._tell(Outcome(address))
        finally:
            self._wake.set()  # a slot is free: the next due address need not wait a tick

    def _tell(self, outcome: Outcome) -> None:
        try:
            self._report(outcome)
        except Exception:  # a broken reporter must not stop the redialling
            log.exception("reporting %s failed", outcome.address)
