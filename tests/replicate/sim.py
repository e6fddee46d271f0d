"""A seeded, deterministic simulator: many peers, one process, no sockets, no sleeps.

Each simulated node has a real store (the in-memory backend, with real signatures
and validation) and an ``EngineState``; links are FIFO queues, and a seeded RNG picks
which link delivers next, so each seed is one reproducible interleaving. The
simulator executes the engine's actions exactly as the asyncio adapter does:
messages are queued, ``SendEntries`` reads the range from the sender's store, and
received entries are ingested and reported back as ``EntriesStored``.
"""

from __future__ import annotations

import random
from collections import deque
from dataclasses import dataclass, field

import nacl.signing

from p2pcrew import codec
from p2pcrew.feed.memory_store import MemoryStore
from p2pcrew.feed.verify import Verifier
from p2pcrew.replicate import ebt
from p2pcrew.replicate.messages import (
    MAX_ENTRIES_PER_MESSAGE,
    Entries,
    Message,
    decode_message,
    encode_message,
)


@dataclass
class SimNode:
    name: str
    key: nacl.signing.SigningKey
    store: MemoryStore
    state: ebt.EngineState
    clocks: dict[bytes, tuple[dict[bytes, int], dict[bytes, int]]] = field(default_factory=dict)
    dropped: list[tuple[bytes, str]] = field(default_factory=list)
    malicious_tamper: bool = False
    silent: bool = False

    @property
    def id(self) -> bytes:
        return bytes(self.key.verify_key)


@dataclass
class Link:
    queue: deque[Message] = field(default_factory=deque)
    bytes_sent: int = 0
    messages: int = 0


class Sim:
    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.nodes: dict[bytes, SimNode] = {}
        self.links: dict[tuple[bytes, bytes], Link] = {}
        self.now = 0.0

    def add(self, name: str, wanted_names: list[str] | None = None) -> SimNode:
        key = nacl.signing.SigningKey((len(self.nodes) + 1).to_bytes(32, "big"))
        node = SimNode(
            name,
            key,
            MemoryStore(Verifier(workers=1)),
            ebt.EngineState(local={}, wanted=frozenset()),
        )
        self.nodes[node.id] = node
        return node

    def want(self, node: SimNode, *others: SimNode, blocked: tuple[SimNode, ...] = ()) -> None:
        wanted = frozenset([node.id, *(o.id for o in others)])
        self._run(
            node, ebt.step(node.state, ebt.ScopeChanged(wanted, frozenset(b.id for b in blocked)))
        )

    def publish(self, node: SimNode, count: int) -> None:
        entries = node.store.append(
            node.key, [b"%s-%d" % (node.name.encode(), i) for i in range(count)]
        )
        stored = [(e.author, e.seq) for e in entries]
        self._run(node, ebt.step(node.state, ebt.EntriesStored(None, stored, self.now)))

    def connect(self, a: SimNode, b: SimNode) -> None:
        for x, y in ((a, b), (b, a)):
            self.links[(x.id, y.id)] = Link()
        for x, y in ((a, b), (b, a)):
            received, sent = x.clocks.get(y.id, ({}, {}))
            event = ebt.PeerConnected(y.id, self.now, received, sent, initiator=x is a)
            self._run(x, ebt.step(x.state, event))

    def disconnect(self, a: SimNode, b: SimNode) -> None:
        for x, y in ((a, b), (b, a)):
            self.links.pop((x.id, y.id), None)
            self._run(x, ebt.step(x.state, ebt.PeerDisconnected(y.id)))

    def run(self, max_steps: int = 200_000) -> int:
        """Deliver until every queue is empty; return the number of deliveries."""
        steps = 0
        while steps < max_steps:
            busy = [k for k, link in self.links.items() if link.queue]
            if not busy:
                return steps
            src, dst = self.rng.choice(busy)
            message = self.links[(src, dst)].queue.popleft()
            self.now += 0.001
            self._deliver(self.nodes[src], self.nodes[dst], message)
            steps += 1
        raise AssertionError("simulation did not settle")

    def tick(self, seconds: float) -> None:
        self.now += seconds
        for node in self.nodes.values():
            self._run(node, ebt.step(node.state, ebt.Ticked(self.now)))

    # ---- plumbing -----------------------------------------------------------

    def _deliver(self, src: SimNode, dst: SimNode, message: Message) -> None:
        if (dst.id, src.id) not in self.links:
            return
        if isinstance(message, Entries):
            wanted = [(h, p) for h, p in message.items if self._author_ok(dst, h)]
            unwanted = len(message.items) - len(wanted)
            if unwanted:
                self._run(dst, ebt.step(dst.state, ebt.UnwantedEntriesReceived(src.id, unwanted)))
            if not wanted:
                return
            result = dst.store.ingest(wanted)
            stored = [(e.author, e.seq) for e in result.accepted]
            self._run(dst, ebt.step(dst.state, ebt.EntriesStored(src.id, stored, self.now)))
            # A fork is the author's doing, not the peer's: do not punish the messenger.
            bad = [r for r in result.rejected if r.error.rule not in ("fork", "feed-forked")]
            if bad:
                err = bad[0].error
                self._run(dst, ebt.step(dst.state, ebt.EntriesRejected(src.id, err.rule, str(err))))
            return
        self._run(dst, ebt.step(dst.state, ebt.MessageReceived(src.id, message, self.now)))

    def _author_ok(self, node: SimNode, header: bytes) -> bool:
        from p2pcrew.feed.entry import decode_entry

        try:
            return ebt.accepts(node.state, decode_entry(header).author)
        except Exception:
            return True  # let the store reject it with its reason

    def _send(self, src: SimNode, dst: bytes, message: Message) -> None:
        link = self.links.get((src.id, dst))
        if link is None or src.silent:
            return
        # Round-trip through the real codec, as the wire would.
        body = codec.encode(encode_message(message))
        link.bytes_sent += len(body)
        link.messages += 1
        link.queue.append(decode_message(codec.decode(body)))

    def _run(self, node: SimNode, actions: list[ebt.Action]) -> None:
        for action in actions:
            match action:
                case ebt.SendMessage(peer, message):
                    self._send(node, peer, message)
                case ebt.SendEntries(peer, feed, start, end):
                    items = node.store.raw_range(feed, start, end)
                    if node.malicious_tamper and items:
                        header = bytearray(items[0][0])
                        header[-1] ^= 1
                        items[0] = (bytes(header), items[0][1])
                    for i in range(0, len(items), MAX_ENTRIES_PER_MESSAGE):
                        self._send(node, peer, Entries(items[i : i + MAX_ENTRIES_PER_MESSAGE]))
                case ebt.PersistClock(peer, received, sent):
                    node.clocks[peer] = (dict(received), dict(sent))
                case ebt.DropPeer(peer, reason, _message):
                    node.dropped.append((peer, reason))
                    other = self.nodes[peer]
                    self.disconnect(node, other)
