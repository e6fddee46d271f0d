"""The keep-in-touch schedule, without sockets or clocks: time is whatever we pass."""

from __future__ import annotations

import asyncio
import itertools

import pytest

from p2pcrew.feed.identity import Identity
from p2pcrew.feed.memory_store import MemoryStore
from p2pcrew.feed.store import PeerRecord
from p2pcrew.replicate import keep_in_touch as kit
from p2pcrew.replicate.address import Address
from p2pcrew.replicate.keep_in_touch import Outcome, Schedule, Target, backoff, remembered
from p2pcrew.replicate.node import Node


def addr(n: int, port: int = 8008, scheme: str = "tcp") -> Address:
    return Address(scheme, f"10.0.0.{n}", port, bytes([n]) * 32)


def fixed_draw(value: float) -> Schedule:
    return Schedule(rand=lambda: value)


NOBODY: frozenset[bytes] = frozenset()


def fail_until(sched: Schedule, a: Address, now: float, times: int) -> float:
    """Dial ``a`` whenever due and fail it ``times`` times; returns the time of the last."""
    for _ in range(times):
        now = sched.due_at(a) or now
        assert sched.tick(now, [a], NOBODY) == [a]
        sched.failed(a, now, "refused")
    return now


def test_new_addresses_are_due_at_once() -> None:
    sched = Schedule()
    assert sched.tick(0.0, [addr(1), addr(2)], NOBODY) == [addr(1), addr(2)]
    assert sched.in_flight() == 2
    assert sched.tick(0.5, [addr(1), addr(2)], NOBODY) == []  # in flight: not twice


def test_backoff_grows_and_caps() -> None:
    middle = [backoff(n, 0.5) for n in range(1, 12)]
    assert middle[:7] == [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 60.0]
    assert set(middle[6:]) == {60.0}
    assert backoff(10_000, 0.5) == 60.0  # no overflow after days of failures

    sched = fixed_draw(0.5)
    a = addr(1)
    last = fail_until(sched, a, 0.0, 9)
    assert sched.failures(a) == 9
    assert sched.due_at(a) == pytest.approx(last + 60.0)


@pytest.mark.parametrize("draw", [0.0, 0.25, 0.999999])
def test_jitter_is_bounded(draw: float) -> None:
    for failures in range(1, 10):
        plain = min(kit.MAX_DELAY, 2.0 ** (failures - 1))
        delay = backoff(failures, draw)
        assert plain * (1 - kit.JITTER) <= delay < plain * (1 + kit.JITTER)


def test_jitter_spreads_members_apart() -> None:
    draws = itertools.cycle([0.0, 0.5, 0.99])
    sched = Schedule(rand=lambda: next(draws))
    peers = [addr(n) for n in range(1, 4)]
    assert sched.tick(0.0, peers, NOBODY) == peers
    for a in peers:
        sched.failed(a, 0.0, "refused")
    dues = sorted(sched.due_at(a) or 0.0 for a in peers)
    assert dues[0] < dues[1] < dues[2]


def test_not_due_before_its_time() -> None:
    sched = fixed_draw(0.5)
    a = addr(1)
    sched.tick(0.0, [a], NOBODY)
    sched.failed(a, 0.0, "refused")
    assert sched.tick(0.99, [a], NOBODY) == []
    assert sched.next_due() == pytest.approx(1.0)
    assert sched.tick(1.0, [a], NOBODY) == [a]


def test_success_resets_the_backoff_once_the_link_held() -> None:
    sched = fixed_draw(0.5)
    a = addr(1)
    now = fail_until(sched, a, 0.0, 5)
    now = sched.due_at(a) or now
    assert sched.tick(now, [a], NOBODY) == [a]
    sched.succeeded(a, now)
    up = {a.key}
    assert sched.tick(now + 1, [a], up) == []  # connected: never dialled
    assert sched.tick(now + kit.STABLE_SECONDS + 1, [a], up) == []
    assert sched.failures(a) == 0
    # The link drops after a long life: due again after the short delay, not the backoff.
    gone = now + 100
    assert sched.tick(gone, [a], NOBODY) == []
    assert sched.due_at(a) == pytest.approx(gone + kit.CLOSED_DELAY)
    assert sched.tick(gone + kit.CLOSED_DELAY, [a], NOBODY) == [a]
    sched.failed(a, gone + kit.CLOSED_DELAY, "refused")
    assert sched.due_at(a) == pytest.approx(gone + kit.CLOSED_DELAY + 1.0)  # from ~1 s again


def test_a_link_dropped_at_once_counts_as_a_failure() -> None:
    """A peer that completes the handshake, then hangs up on us, is not hammered."""
    sched = fixed_draw(0.5)
    a = addr(1)
    now = 0.0
    delays = []
    for _ in range(8):
        assert sched.tick(now, [a], NOBODY) == [a]
        sched.succeeded(a, now)
        assert sched.tick(now + 0.1, [a], {a.key}) == []
        assert sched.tick(now + 0.2, [a], NOBODY) == []  # hung up on us
        due = sched.due_at(a)
        assert due is not None
        delays.append(due - (now + 0.2))
        now = due
    assert delays[0] == pytest.approx(kit.CLOSED_DELAY)
    assert delays == sorted(delays) and delays[-1] == pytest.approx(kit.MAX_DELAY)


def test_connected_peers_are_skipped_whoever_dialled() -> None:
    sched = Schedule()
    a, b = addr(1), addr(2)
    assert sched.tick(0.0, [a, b], {a.key}) == [b]  # a dialled us: nothing to do
    assert sched.next_due() is None  # b in flight, a connected


def test_an_incoming_link_that_closes_is_redialled_soon() -> None:
    sched = Schedule()
    a = addr(1)
    assert sched.tick(0.0, [a], {a.key}) == []
    assert sched.tick(30.0, [a], {a.key}) == []
    assert sched.tick(31.0, [a], NOBODY) == []
    assert sched.due_at(a) == pytest.approx(31.0 + kit.CLOSED_DELAY)
    assert sched.tick(31.0 + kit.CLOSED_DELAY, [a], NOBODY) == [a]


def test_dials_in_flight_are_bounded() -> None:
    sched = Schedule(max_in_flight=3)
    peers = [addr(n) for n in range(1, 9)]
    first = sched.tick(0.0, peers, NOBODY)
    assert len(first) == 3 and sched.in_flight() == 3
    assert sched.tick(0.1, peers, NOBODY) == []
    sched.failed(first[0], 0.2, "refused")
    sched.succeeded(first[1], 0.2)
    second = sched.tick(0.3, peers, {first[1].key})
    assert len(second) == 2 and not set(second) & set(first)
    assert sched.in_flight() == 3


def test_one_key_is_dialled_through_one_address_at_a_time() -> None:
    sched = Schedule()
    tcp, ws = addr(1), addr(1, 80, "ws")
    assert sched.tick(0.0, [tcp, ws], NOBODY) in ([tcp], [ws])
    assert sched.tick(0.1, [tcp, ws], NOBODY) == []
    assert sched.in_flight() == 1


def test_the_address_set_changes_at_run_time() -> None:
    sched = fixed_draw(0.5)
    a, b = addr(1), addr(2)
    assert sched.tick(0.0, [a], NOBODY) == [a]
    sched.failed(a, 0.0, "refused")
    assert sched.tick(0.5, [a, b], NOBODY) == [b]  # `p2pcrew connect` added b
    sched.failed(b, 0.5, "refused")
    assert sched.tick(0.6, [b], NOBODY) == []  # a forgotten
    assert sched.due_at(a) is None
    assert sched.tick(1.2, [b], NOBODY) == []  # a is never dialled again
    assert sched.tick(5.0, [a, b], NOBODY) == [a, b]  # a back: a fresh slot, due at once
    assert sched.failures(a) == 0
    # The outcome of a dial whose address left the set meanwhile is ignored.
    assert sched.tick(5.1, [b], NOBODY) == []
    assert sched.failed(a, 5.2, "refused") is False
    assert sched.due_at(a) is None
    assert sched.failed(b, 5.3, "refused") is False  # same reason as last time
    assert sched.in_flight() == 0


def test_a_failure_is_news_once_until_it_changes_or_succeeds() -> None:
    sched = Schedule(rand=lambda: 0.0)
    a = addr(1)

    def attempt(now: float, reason: str | None) -> bool:
        assert sched.tick(now, [a], NOBODY) == [a]
        if reason is None:
            sched.succeeded(a, now)
            sched.tick(now, [a], {a.key})
            sched.tick(now + 0.1, [a], NOBODY)  # and it went away again
            return True
        return sched.failed(a, now, reason)

    assert attempt(0.0, "refused")
    assert not attempt(10.0, "refused")
    assert not attempt(20.0, "refused")
    assert attempt(30.0, "timed out")
    assert attempt(40.0, "refused")
    attempt(100.0, None)
    assert attempt(200.0, "refused")


def test_remembered_keeps_sources_and_skips_lan_and_socket_addresses() -> None:
    store = MemoryStore()
    pub, lan, fixed = addr(1), addr(2), addr(3)
    store.save_peer(PeerRecord(str(pub), pub.key, "pub"))
    store.save_peer(PeerRecord(str(lan), lan.key, "lan"))
    store.save_peer(PeerRecord("('127.0.0.1', 5555)", bytes(32), "manual"))
    targets = remembered(store, [fixed, pub])
    assert targets == [Target(fixed, "manual"), Target(pub, "pub")]


# ---- the adapter against a real Node, with a dial that fails on purpose ------------------


async def test_adapter_reports_each_failure_once_and_stops_cleanly() -> None:
    store = MemoryStore()
    node = Node(store, Identity.generate())
    a, b = addr(1), addr(2)
    attempts: list[tuple[Address, str]] = []
    outcomes: list[Outcome] = []

    async def dial(address: Address, source: str) -> None:
        attempts.append((address, source))
        raise ConnectionRefusedError("refused")

    times = itertools.count(0.0, 3.0)  # every tick looks 3 s later: retries come quickly
    touch = kit.KeepInTouch(node, dial, outcomes.append, fixed=[a], clock=lambda: next(times))
    touch.start()
    deadline = asyncio.get_running_loop().time() + 10
    while len([x for x in attempts if x[0] == a]) < 3:
        assert asyncio.get_running_loop().time() < deadline, attempts
        await asyncio.sleep(0.01)
    store.save_peer(PeerRecord(str(b), b.key, "pub"))  # added at run time
    touch.wake()
    while (b, "pub") not in attempts:
        assert asyncio.get_running_loop().time() < deadline, attempts
        await asyncio.sleep(0.01)
    await touch.close()
    news = [(o.address, o.error) for o in outcomes if o.news]
    assert news == [(a, "refused"), (b, "refused")]
    assert all(o.error == "refused" for o in outcomes)
    count = len(attempts)
    await asyncio.sleep(0.05)
    assert len(attempts) == count  # nothing dials after close
