"""Replication at scale, by simulation: the engine against naive flooding.

500 peers and 50 pubs in one seeded simulation (real stores, real signatures, the
real reducer and codec; see tests/replicate/sim.py). Crews of 3 to 32 members; each
crew relies on one pub; most members reach each other only through it, and some
crews also meet on a LAN (their members connect directly). Every peer publishes a
few entries, then the simulation runs until no message is left. Figures: entries
sent per entry delivered, bytes sent per entry delivered, and rounds to convergence
(a round delivers every message queued at its start), for the engine and for naive
flooding (every node pushes every new entry to every neighbour that replicates its
feed, the behaviour of gossip without a spanning tree).
"""

from __future__ import annotations

import random

from benchmarks import Context, Row
from p2pcrew.replicate.messages import Entries
from tests.replicate.sim import Sim, SimNode

GROUP = "simulation"
ROW_NAMES = (
    "sim: entries sent per delivered, engine",
    "sim: entries sent per delivered, flooding",
    "sim: bytes per delivered entry, engine",
    "sim: rounds to convergence, engine",
)


class CountingSim(Sim):
    def __init__(self, seed: int) -> None:
        super().__init__(seed)
        self.entries_sent = 0
        self.entry_bytes = 0

    def _send(self, src: SimNode, dst: bytes, message: object) -> None:  # type: ignore[override]
        if isinstance(message, Entries) and (src.id, dst) in self.links:
            self.entries_sent += len(message.items)
            self.entry_bytes += sum(len(h) + len(p or b"") for h, p in message.items)
        super()._send(src, dst, message)  # type: ignore[arg-type]

    def run_rounds(self, limit: int = 10_000) -> int:
        rounds = 0
        while any(link.queue for link in self.links.values()):
            batch = [(k, len(link.queue)) for k, link in self.links.items() if link.queue]
            self.rng.shuffle(batch)
            for (src, dst), count in batch:
                for _ in range(count):
                    link = self.links.get((src, dst))
                    if link is None or not link.queue:
                        break
                    self._deliver(self.nodes[src], self.nodes[dst], link.queue.popleft())
            rounds += 1
            if rounds > limit:
                raise RuntimeError("simulation did not converge")
        return rounds


def build(seed: int, peers: int, pubs: int, per_peer: int) -> tuple[CountingSim, int]:
    rng = random.Random(seed)
    sim = CountingSim(seed)
    people = [sim.add(f"p{i}") for i in range(peers)]
    relays = [sim.add(f"pub{i}") for i in range(pubs)]
    crews: list[list[SimNode]] = []
    pool = people[:]
    rng.shuffle(pool)
    while pool:
        size = min(len(pool), rng.randint(3, 32))
        crews.append(pool[:size])
        pool = pool[size:]
    wants: dict[bytes, set[bytes]] = {n.id: set() for n in [*people, *relays]}
    crew_pub = {}
    for index, members in enumerate(crews):
        pub = relays[index % pubs]
        crew_pub[index] = pub
        ids = {m.id for m in members}
        for m in members:
            wants[m.id].update(ids)
        wants[pub.id].update(ids)
    for node in [*people, *relays]:
        sim.want(node, *[sim.nodes[o] for o in wants[node.id] if o != node.id])
    for person in people:
        sim.publish(person, per_peer)
    expected = sum(per_peer * len(wants[n.id] - {n.id}) for n in [*people, *relays])
    sim.people = {p.id for p in people}  # type: ignore[attr-defined]
    for index, members in enumerate(crews):
        for m in members:
            sim.connect(m, crew_pub[index])
        if rng.random() < 0.3:  # this crew also met on a LAN
            for i, a in enumerate(members):
                for b in members[i + 1 : i + 4]:
                    if (a.id, b.id) not in sim.links:
                        sim.connect(a, b)
    return sim, expected


def flooding_cost(sim: CountingSim, per_peer: int) -> int:
    """Entries a naive flood sends on the same topology and wants."""
    sent = 0
    for (src, dst), _link in sim.links.items():
        a, b = sim.nodes[src], sim.nodes[dst]
        shared = a.state.wanted & b.state.wanted
        # Every entry of every shared feed crosses the link once in this direction.
        sent += per_peer * len(
            [
                f
                for f in shared
                if f in sim.nodes
                and sim.nodes[f].name[0] == "p"
                and not sim.nodes[f].name.startswith("pub")
            ]
        )
    return sent


def run(ctx: Context) -> list[Row]:
    peers, pubs = (60, 6) if ctx.config.quick else (500, 50)
    per_peer = 3
    ctx.progress(f"simulating {peers} peers and {pubs} pubs")
    sim, expected = build(2026, peers, pubs, per_peer)
    rounds = sim.run_rounds()
    sim.tick(1.0)
    rounds += sim.run_rounds()
    # Live phase: everyone posts once more while connected (this is where floods
    # produce duplicates and pusher choice matters).
    for node in list(sim.nodes.values()):
        if node.id in sim.people:  # type: ignore[attr-defined]
            sim.publish(node, 1)
    rounds += sim.run_rounds()
    sim.tick(1.0)
    rounds += sim.run_rounds()
    per_peer += 1
    delivered = sum(
        sum(seq for feed, seq in n.store.latest_seqs().items() if feed != n.id)
        for n in sim.nodes.values()
    )
    if delivered < expected:
        raise RuntimeError(f"simulation delivered {delivered} of {expected} wanted entries")
    flood = flooding_cost(sim, per_peer)
    note = f"{peers} peers, {pubs} pubs, crews of 3-32, {per_peer} entries each; seed 2026"
    return [
        Row(ROW_NAMES[0], sim.entries_sent / delivered, "sent/delivered", None, None, note),
        Row(ROW_NAMES[1], flood / delivered, "sent/delivered", None, None, "same topology"),
        Row(ROW_NAMES[2], sim.entry_bytes / delivered, "bytes", None, None, "headers+payloads"),
        Row(ROW_NAMES[3], rounds, "rounds", None, None, f"{delivered:,} entries delivered"),
    ]
