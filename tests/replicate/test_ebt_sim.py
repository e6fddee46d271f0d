"""Scenarios for the replication reducer, named after what they test, over many seeds."""

from __future__ import annotations

import pytest

from p2pcrew.replicate import ebt
from tests.feed.helpers import make_chain
from tests.replicate.sim import Sim, SimNode

SEEDS = range(8)


def heads(node: SimNode) -> dict[bytes, int]:
    return node.store.latest_seqs()


@pytest.mark.parametrize("seed", SEEDS)
def test_two_peers_exchange_everything(seed: int) -> None:
    sim = Sim(seed)
    a, b = sim.add("a"), sim.add("b")
    sim.want(a, b)
    sim.want(b, a)
    sim.publish(a, 300)
    sim.publish(b, 5)
    sim.connect(a, b)
    sim.run()
    assert heads(a) == heads(b) == {a.id: 300, b.id: 5}
    # Live: a new entry is pushed without reconnecting.
    sim.publish(a, 1)
    sim.run()
    assert heads(b)[a.id] == 301


@pytest.mark.parametrize("seed", SEEDS)
def test_chain_three_peers(seed: int) -> None:
    sim = Sim(seed)
    a, b, c = sim.add("a"), sim.add("b"), sim.add("c")
    sim.want(a, b)
    sim.want(b, a, c)
    sim.want(c, a, b)
    sim.publish(a, 50)
    sim.connect(a, b)
    sim.connect(b, c)
    sim.run()
    assert heads(c)[a.id] == 50
    sim.publish(a, 3)
    sim.run()
    assert heads(c)[a.id] == 53


@pytest.mark.parametrize("seed", SEEDS)
def test_ten_peer_mesh_converges_without_a_flood(seed: int) -> None:
    sim = Sim(seed)
    nodes = [sim.add(f"n{i}") for i in range(10)]
    for n in nodes:
        sim.want(n, *[m for m in nodes if m is not n])
        sim.publish(n, 20)
    for i, n in enumerate(nodes):
        for m in nodes[i + 1 :]:
            if sim.rng.random() < 0.5 or m is nodes[i + 1]:
                sim.connect(n, m)
    sim.run()
    expected = {n.id: 20 for n in nodes}
    for n in nodes:
        assert heads(n) == expected
    live_before = sum(link.messages for link in sim.links.values())
    sim.publish(nodes[0], 1)
    sim.run()
    assert all(heads(n)[nodes[0].id] == 21 for n in nodes)
    # One new entry should cost about one message per node, not one per link.
    live_messages = sum(link.messages for link in sim.links.values()) - live_before
    assert live_messages <= 2 * len(nodes), live_messages


@pytest.mark.parametrize("seed", SEEDS)
def test_reconnect_in_sync_sends_almost_nothing(seed: int) -> None:
    sim = Sim(seed)
    a, b = sim.add("a"), sim.add("b")
    others = [sim.add(f"f{i}") for i in range(30)]
    for o in others:
        sim.publish(o, 3)
        for n in (a, b):
            n.store.ingest([(s.entry.header, s.payload) for s in o.store.range(o.id)])
            sim._run(n, ebt.step(n.state, ebt.EntriesStored(None, [(o.id, 3)], sim.now)))
    sim.want(a, b, *others)
    sim.want(b, a, *others)
    sim.connect(a, b)
    sim.run()
    sim.disconnect(a, b)
    sim.connect(a, b)
    before = {k: link.bytes_sent for k, link in sim.links.items()}
    sim.run()
    for k, link in sim.links.items():
        assert link.bytes_sent - before.get(k, 0) < 100, "an in-sync reconnect resent notes"


@pytest.mark.parametrize("seed", SEEDS)
def test_lost_state_falls_back_to_full_notes(seed: int) -> None:
    sim = Sim(seed)
    a, b = sim.add("a"), sim.add("b")
    sim.want(a, b)
    sim.want(b, a)
    sim.publish(a, 10)
    sim.connect(a, b)
    sim.run()
    sim.disconnect(a, b)
    sim.publish(a, 5)
    b.clocks.clear()  # b lost its persisted clocks
    sim.connect(a, b)
    sim.run()
    assert heads(b)[a.id] == 15


@pytest.mark.parametrize("seed", SEEDS)
def test_stalled_pusher_is_replaced(seed: int) -> None:
    sim = Sim(seed)
    a, staller, c = sim.add("a"), sim.add("staller"), sim.add("c")
    for n in (a, staller, c):
        sim.want(n, *[m for m in (a, staller, c) if m is not n])
    sim.publish(a, 40)
    sim.connect(a, staller)
    sim.run()
    staller.silent = True  # still connected, announces nothing more, sends nothing
    sim.connect(staller, c)
    sim.run()
    sim.connect(a, c)
    sim.run()
    sim.tick(ebt.STALL_SECONDS + 1)
    sim.run()
    assert heads(c)[a.id] == 40


@pytest.mark.parametrize("seed", SEEDS)
def test_forged_entry_drops_the_peer_and_keeps_the_valid_prefix(seed: int) -> None:
    sim = Sim(seed)
    a, b = sim.add("a"), sim.add("b")
    sim.want(a, b)
    sim.want(b, a)
    sim.publish(a, 10)
    a.malicious_tamper = True
    sim.connect(a, b)
    sim.run()
    assert b.dropped and b.dropped[0][1] == "bad-signature"
    assert heads(b).get(a.id, 0) == 0


def test_fork_is_detected_and_feed_frozen() -> None:
    sim = Sim(1)
    a, b, c = sim.add("a"), sim.add("b"), sim.add("c")
    sim.want(c, a)
    sim.want(b, a)
    sim.publish(a, 3)
    # b holds a rival history of a's feed (the key was used on two machines).
    rivals = make_chain(a.key, 5, prefix=b"rival")
    b.store.ingest([(e.header, p) for e, p in rivals])
    sim._run(b, ebt.step(b.state, ebt.EntriesStored(None, [(a.id, 5)], sim.now)))
    sim.want(a, c)
    sim.connect(a, c)
    sim.run()
    sim.connect(b, c)
    sim.run()
    assert c.store.feed(a.id).forked  # type: ignore[union-attr]
    proof = c.store.forks()[0]
    assert proof.seq == 3 and not b.dropped and not c.dropped


@pytest.mark.parametrize("seed", SEEDS)
def test_blocked_feed_is_never_fetched_nor_served(seed: int) -> None:
    sim = Sim(seed)
    a, b, m = sim.add("a"), sim.add("b"), sim.add("m")
    sim.publish(m, 5)
    sim.want(a, b, m)
    sim.want(b, a, m, blocked=(m,))
    sim.connect(a, m)
    sim.run()
    assert heads(a)[m.id] == 5
    sim.connect(a, b)
    sim.run()
    assert m.id not in heads(b)
    # b holds m's feed from before the block: it still never serves it.
    c = sim.add("c")
    sim.want(c, m)
    b.store.ingest([(s.entry.header, s.payload) for s in m.store.range(m.id)])
    sim.connect(b, c)
    sim.run()
    assert m.id not in heads(c)


@pytest.mark.parametrize("seed", SEEDS)
def test_unwanted_feed_floods_drop_the_peer(seed: int) -> None:
    sim = Sim(seed)
    a, b, x = sim.add("a"), sim.add("b"), sim.add("x")
    sim.want(a, b, x)
    sim.want(b, a)
    sim.publish(x, 200)
    a.store.ingest([(s.entry.header, s.payload) for s in x.store.range(x.id)])
    sim._run(a, ebt.step(a.state, ebt.EntriesStored(None, [(x.id, 200)], sim.now)))
    sim.connect(a, b)
    sim.run()
    # b never asked for x; a honest a never pushes it.
    assert x.id not in heads(b) and not b.dropped
    # A dishonest a pushes anyway: b drops it once the budget is spent.
    sim._run(a, [ebt.SendEntries(b.id, x.id, 1, 200)])
    sim.run()
    assert b.dropped and b.dropped[-1][1] == "unwanted-entries"
    assert x.id not in heads(b)


@pytest.mark.parametrize("seed", SEEDS)
def test_reconnect_in_sync_then_live_push_still_works(seed: int) -> None:
    sim = Sim(seed)
    a, b = sim.add("a"), sim.add("b")
    sim.want(a, b)
    sim.want(b, a)
    sim.publish(a, 5)
    sim.connect(a, b)
    sim.run()
    sim.disconnect(a, b)
    sim.connect(a, b)
    sim.run()
    sim.publish(a, 1)
    sim.run()
    assert heads(b)[a.id] == 6


def test_caught_up_needs_every_announced_entry() -> None:
    sim = Sim(3)
    a, b = sim.add("a"), sim.add("b")
    sim.want(a, b)
    sim.want(b, a)
    sim.publish(a, 10)
    sim.connect(a, b)
    assert not ebt.caught_up(b.state, a.id)  # nothing announced yet
    sim.run()
    assert ebt.caught_up(b.state, a.id)
    b.state.local[a.id] = 9  # as if the last entry had not arrived
    assert not ebt.caught_up(b.state, a.id)
