"""A running node: the engine, the store, and the peer connections, on one event loop.

The node is the only place where engine actions meet the world: it feeds every
happening to ``ebt.step`` and carries out the returned actions on the right
``PeerLink`` or on the store. Received entries are ingested on a worker thread (the
store's single writer connection is thread-safe; signature checks run on the
verifier's own pool), so the event loop keeps serving other peers meanwhile.

Bounds: ``max_connections`` links at once, handshakes time out (``HANDSHAKE_TIMEOUT``),
one link per peer key (a second connection from the same peer is refused).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from p2pcrew import publishing
from p2pcrew.crew import delivery, service
from p2pcrew.crew.directory import co_members
from p2pcrew.crew.envelope import is_envelope
from p2pcrew.crew.keyring import Keyring
from p2pcrew.errors import P2PCrewError
from p2pcrew.feed.content import Content, decode_content
from p2pcrew.feed.entry import Entry, header_author
from p2pcrew.feed.group_commit import GroupCommitter
from p2pcrew.feed.identity import Identity
from p2pcrew.feed.store import PeerRecord, Store, now_ms
from p2pcrew.replicate import ebt
from p2pcrew.replicate import messages as m
from p2pcrew.replicate.address import Address
from p2pcrew.replicate.admission import HandshakeGate, gated_server_handshake
from p2pcrew.replicate.peer import PeerLink
from p2pcrew.replicate.scope import DEFAULT_HOPS, compute_scope
from p2pcrew.replicate.secure_stream import SecureStream, client_handshake
from p2pcrew.replicate.shs import P2PCREW_NETWORK_KEY
from p2pcrew.replicate.transport_errors import PeerTimeout, TransportError

log = logging.getLogger(__name__)

HANDSHAKE_TIMEOUT = 10.0
CONNECT_TIMEOUT = 10.0
TICK_SECONDS = 1.0
DEFAULT_MAX_CONNECTIONS = 64
MAX_HANDSHAKES_IN_FLIGHT = 16
"""Incoming handshakes at once. Beyond it the oldest one still silent (or stalled) is
evicted for the newcomer; only a burst of young, valid handshakes is refused unread."""
FORK_RULES = ("fork", "feed-forked")
RECEIPT_TICKS = 60
"""Look for due crew receipts once a minute (each crew's come at most hourly)."""

RequestHandler = Callable[[bytes, Any], Awaitable[Any]]
"""(peer key, request body) -> response body; raise P2PCrewError to reply ERROR."""


@dataclass
class NodeStats:
    received: dict[bytes, int] = field(default_factory=dict)
    sent: int = 0
    rejected: dict[str, int] = field(default_factory=dict)


async def _open(address: Address) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A byte stream to ``address``: TCP, or a WebSocket for ws:// and wss:// (pubs)."""
    if address.is_websocket:
        from p2pcrew.replicate.ws_transport import connect_ws  # aiohttp only when needed

        return await connect_ws(address)
    return await asyncio.open_connection(address.host, address.port, limit=2**16)


class Node:
    def __init__(
        self,
        store: Store,
        identity: Identity,
        *,
        network_key: bytes = P2PCREW_NETWORK_KEY,
        hops: int = DEFAULT_HOPS,
        max_connections: int = DEFAULT_MAX_CONNECTIONS,
        on_change: Callable[[], None] | None = None,
    ) -> None:
        self.store = store
        self.identity = identity
        self.network_key = network_key
        self.hops = hops
        self.max_connections = max_connections
        self.on_change = on_change
        self.admit: Callable[[bytes], bool] = lambda _peer: True
        """Admission policy after the handshake (a pub admits members and invitees)."""
        self.request_handlers: dict[str, RequestHandler] = {}
        """Extra RPC request methods (a pub adds ``invite.use``)."""
        self.links: dict[bytes, PeerLink] = {}
        self.handshakes = HandshakeGate(MAX_HANDSHAKES_IN_FLIGHT)
        """Incoming handshakes in flight; a flood of silent ones is evicted, oldest first."""
        self.extra_feeds: set[bytes] = {p.feed for p in store.known_peers()}
        self.stats = NodeStats()
        self.state = ebt.EngineState(local=store.latest_seqs(), wanted=frozenset())
        self._servers: list[asyncio.Server] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self._ticker: asyncio.Task[None] | None = None
        self._ingest_lock = asyncio.Lock()
        self.keyring = Keyring.attach(store, identity)
        self._committer = GroupCommitter(
            lambda payloads: publishing.publish_payloads(self.store, self.identity, payloads)
        )
        self.refresh_scope()

    # ---- lifecycle ---------------------------------------------------------------

    async def start(self) -> None:
        self._ticker = asyncio.create_task(self._tick_loop())

    async def listen(self, host: str, port: int) -> tuple[str, int]:
        server = await asyncio.start_server(self._accept, host, port, limit=2**16)
        self._servers.append(server)
        sock = server.sockets[0].getsockname()
        return sock[0], sock[1]

    async def close(self) -> None:
        for server in self._servers:
            server.close()
        # Goodbyes in parallel: one slow peer must not hold up shutdown for the rest.
        await asyncio.gather(
            *(link.goodbye(timeout=2.0) for link in list(self.links.values())),
            return_exceptions=True,
        )
        await self._committer.close()
        if self._ticker is not None:
            self._ticker.cancel()
        for task in list(self._tasks):
            task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.gather(*self._tasks, return_exceptions=True)

    # ---- connecting ------------------------------------------------------------

    async def connect(self, address: Address, *, source: str = "manual") -> PeerLink:
        """Dial, handshake and start replicating. Raises TransportError or OSError."""
        if address.key in self.links:
            return self.links[address.key]
        self._remember(address, source)
        try:
            reader, writer = await asyncio.wait_for(_open(address), CONNECT_TIMEOUT)
            stream = await client_handshake(
                reader,
                writer,
                self.network_key,
                self.identity.signing_key,
                address.key,
                timeout=HANDSHAKE_TIMEOUT,
            )
        except (TransportError, OSError, TimeoutError) as exc:
            self.store.save_peer(PeerRecord(str(address), address.key, source, last_error=str(exc)))
            raise
        self.store.save_peer(PeerRecord(str(address), address.key, source, last_connected=now_ms()))
        link = self.adopt(stream, client=True, address=str(address))
        if link is None:
            raise TransportError(f"already connected to {address}")
        return link

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        room = self.max_connections - len(self.links)
        ticket = self.handshakes.enter("tcp", time.monotonic(), writer.transport.abort, room=room)
        if ticket is None:
            writer.transport.abort()  # refused before reading a byte: a flood costs us nothing
            return
        try:
            stream = await gated_server_handshake(
                self.handshakes,
                ticket,
                reader,
                writer,
                self.network_key,
                self.identity.signing_key,
                HANDSHAKE_TIMEOUT,
            )
        except (TransportError, OSError) as exc:
            if not ticket.evicted:
                log.info("incoming handshake failed: %s", exc)
            writer.close()
            return
        finally:
            self.handshakes.leave(ticket)
        if ticket.evicted:  # evicted while msg4 was being flushed: already hung up
            stream.abort()
            return
        peername = writer.get_extra_info("peername")
        link = self.adopt(stream, client=False, address=str(peername))
        if link is not None:
            await link.closed.wait()

    def adopt(self, stream: SecureStream, *, client: bool, address: str) -> PeerLink | None:
        """Run replication over an already authenticated stream (TCP, WebSocket, ...).

        Returns None (and hangs up) when the peer is already connected, not admitted,
        or the node is full.
        """
        peer = stream.remote_public_key
        full = not client and len(self.links) >= self.max_connections
        if peer in self.links or full or (not client and not self.admit(peer)):
            stream.abort()
            return None
        return self._start_link(PeerLink(self, stream, client=client, address=address))

    def remove_feeds(self, feeds: Iterable[bytes]) -> None:
        """Stop replicating these extra feeds (a pub member over quota, for example)."""
        before = len(self.extra_feeds)
        self.extra_feeds.difference_update(feeds)
        if len(self.extra_feeds) != before:
            self.refresh_scope()

    def add_feeds(self, feeds: Iterable[bytes]) -> None:
        """Replicate these feeds too (pub members, crew co-members)."""
        before = len(self.extra_feeds)
        self.extra_feeds.update(feeds)
        if len(self.extra_feeds) != before:
            self.refresh_scope()

    def _start_link(self, link: PeerLink) -> PeerLink:
        self.links[link.peer] = link
        task = asyncio.create_task(link.run())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return link

    def _remember(self, address: Address, source: str) -> None:
        if address.key not in self.extra_feeds:
            self.extra_feeds.add(address.key)
            self.refresh_scope()

    # ---- engine plumbing --------------------------------------------------------

    def refresh_scope(self) -> None:
        extra = self.extra_feeds | co_members(self.store)
        scope = compute_scope(self.store, self.identity.public_key, hops=self.hops, extra=extra)
        self._apply(ebt.step(self.state, ebt.ScopeChanged(scope.wanted, scope.blocked)))

    def link_ready(self, link: PeerLink) -> None:
        received, sent = self.store.peer_clock(link.peer)
        connected = ebt.PeerConnected(
            link.peer, time.monotonic(), received, sent, initiator=link.client
        )
        self._apply(ebt.step(self.state, connected))

    def link_closed(self, link: PeerLink) -> None:
        if self.links.get(link.peer) is link:
            del self.links[link.peer]
            self._apply(ebt.step(self.state, ebt.PeerDisconnected(link.peer)))
        self._changed()

    async def message_from(self, link: PeerLink, message: m.Message) -> None:
        if not isinstance(message, m.Entries):
            self._apply(
                ebt.step(self.state, ebt.MessageReceived(link.peer, message, time.monotonic()))
            )
            return
        wanted: list[tuple[bytes, bytes | None]] = []
        unwanted = 0
        for header, payload in message.items:
            author = header_author(header)
            if author is None or ebt.accepts(self.state, author):
                wanted.append((header, payload))  # malformed ones: the store names the rule
            else:
                unwanted += 1
        if unwanted:
            self._apply(ebt.step(self.state, ebt.UnwantedEntriesReceived(link.peer, unwanted)))
        if wanted:
            await self._ingest(link, wanted)

    async def _ingest(self, link: PeerLink, items: list[tuple[bytes, bytes | None]]) -> None:
        async with self._ingest_lock:
            keys_before = self.keyring.key_count()
            result = await asyncio.to_thread(self.store.ingest, items)
        stored = [(e.author, e.seq) for e in result.accepted]
        link.entries_received += len(stored)
        for author, _ in stored:
            self.stats.received[author] = self.stats.received.get(author, 0) + 1
        self._apply(ebt.step(self.state, ebt.EntriesStored(link.peer, stored, time.monotonic())))
        self._check_restore()
        for rejection in result.rejected:
            rule = rejection.error.rule
            self.stats.rejected[rule] = self.stats.rejected.get(rule, 0) + 1
        bad = [r for r in result.rejected if r.error.rule not in FORK_RULES]
        if bad:
            err = bad[0].error
            log.warning("dropping peer %s: %s", link.address, err)
            self._apply(ebt.step(self.state, ebt.EntriesRejected(link.peer, err.rule, str(err))))
        if stored and any(self._touches_scope(e) for e in result.accepted):
            self.refresh_scope()
        if self.keyring.key_count() != keys_before:  # a crew_state arrived
            self._reapply_lost_changes()
        if stored:
            self._changed()

    def _reapply_lost_changes(self) -> None:
        """Re-apply my crew changes that lost a race (docs/crews.md 3.2)."""
        for _ in range(8):
            payloads = service.reapply_lost(self.store, self.identity)
            if not payloads:
                return
            for payload in payloads:
                try:
                    self.publish_payload(payload)
                except P2PCrewError as exc:
                    log.warning("could not re-apply a crew change: %s", exc)
                    return

    def _check_restore(self) -> None:
        """Lift the restore guard only once our feed caught up with what peers hold;
        one fetched entry is not enough (a cut sync would leave a gap to fork into)."""
        me = self.identity.public_key
        if publishing.restore_pending(self.store) and ebt.caught_up(self.state, me):
            publishing.clear_restore(self.store)

    def _touches_scope(self, entry: Entry) -> bool:
        return entry.author == self.identity.public_key or entry.author in self.state.wanted

    def publish(self, items: list[Content], *, force: bool = False) -> list[Entry]:
        entries = publishing.publish(self.store, self.identity, items, force=force)
        receipts = delivery.publish_riding_receipts(self.store, self.identity, items)
        self.local_appended(entries + receipts)
        return entries

    async def publish_async(self, items: list[Content]) -> list[Entry]:
        """Publish with group commit: concurrent callers share one durable transaction."""
        payloads = [publishing.payload_for(self.store, self.identity, item) for item in items]
        entries = await self._committer.append(payloads)
        self.local_appended(entries)
        return entries

    def publish_payload(self, payload: bytes, *, force: bool = False) -> list[Entry]:
        """A payload from the control socket: plaintext content, or a crew envelope."""
        if is_envelope(payload):
            entries = publishing.publish_payloads(self.store, self.identity, [payload], force=force)
            self.local_appended(entries)
            return entries
        return self.publish([decode_content(payload)], force=force)

    def local_appended(self, entries: list[Entry]) -> None:
        stored = [(e.author, e.seq) for e in entries]
        self._apply(ebt.step(self.state, ebt.EntriesStored(None, stored, time.monotonic())))
        self.refresh_scope()
        self._changed()

    def _apply(self, actions: list[ebt.Action]) -> None:
        for action in actions:
            match action:
                case ebt.SendMessage(peer, message):
                    if peer in self.links:
                        self.links[peer].queue_message(message)
                case ebt.SendEntries(peer, feed, start, end):
                    if peer in self.links:
                        self.links[peer].queue_entries(feed, start, end)
                case ebt.PersistClock(peer, received, sent):
                    self.store.save_peer_clock(peer, received, sent)
                case ebt.DropPeer(peer, reason, message):
                    link = self.links.get(peer)
                    if link is not None:
                        link.abort(f"{reason}: {message}")

    async def _tick_loop(self) -> None:
        ticks = 0
        while True:
            await asyncio.sleep(TICK_SECONDS)
            self._apply(ebt.step(self.state, ebt.Ticked(time.monotonic())))
            ticks += 1
            if ticks % RECEIPT_TICKS == 0:
                self.crew_upkeep()

    def crew_upkeep(self) -> None:
        """Log what co-members' clocks show; publish the crew receipts that are due."""
        try:
            delivery.observe(self.store, self.identity.public_key)
            entries = delivery.publish_due_receipts(self.store, self.identity)
        except P2PCrewError as exc:  # a restore pending, a crew we were removed from, ...
            log.info("no crew receipts now: %s", exc)
            return
        if entries:
            self.local_appended(entries)

    def _changed(self) -> None:
        if self.on_change is not None:
            self.on_change()

    # ---- questions ---------------------------------------------------------------

    def in_sync_with(self, peer: bytes) -> bool:
        link = self.links.get(peer)
        return link is not None and link.idle and ebt.in_sync(self.state, peer)

    async def sync_with(self, address: Address, *, timeout: float = 300.0) -> PeerLink:
        """Connect, replicate until both sides hold what the other wanted, hang up."""
        link = await self.connect(address)
        deadline = time.monotonic() + timeout
        stable = 0
        while time.monotonic() < deadline and not link.closed.is_set():
            stable = stable + 1 if self.in_sync_with(link.peer) else 0
            if stable >= 3:  # in sync across three polls: nothing still in flight
                break
            await asyncio.sleep(0.05)
        if link.closed.is_set():
            return link
        if stable < 3:
            link.abort(f"not in sync after {timeout:g} s")
            raise PeerTimeout(f"not in sync with {address} after {timeout:g} s; gave up")
        await link.goodbye(timeout=2.0)
        return link
