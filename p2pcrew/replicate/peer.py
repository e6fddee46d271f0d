"""One authenticated connection to one peer: the asyncio loop around the machines.

A ``PeerLink`` owns its SecureStream (handshake done), its RpcConnection and one
duplex RPC stream named ``replicate`` (opened by the dialling side) that carries the
replication messages. Nothing here decides anything: received messages become engine
events on the node, and the engine's actions come back as ``queue_message`` and
``queue_entries`` calls. A single writer task drains them in order, reading entries
from the store lazily in bounded chunks and waiting on RPC flow control, so a slow
peer costs us a few cursors, never a growing buffer.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from typing import TYPE_CHECKING, Any

from p2pcrew.errors import P2PCrewError
from p2pcrew.replicate import messages as m
from p2pcrew.replicate import rpc_states as ev
from p2pcrew.replicate.rpc import RpcConnection
from p2pcrew.replicate.rpc_errors import RpcProtocolError, RpcUsageError, SendBlocked
from p2pcrew.replicate.secure_stream import SecureStream
from p2pcrew.replicate.transport_errors import LocalProtocolError, TransportError

if TYPE_CHECKING:
    from p2pcrew.replicate.node import Node

log = logging.getLogger(__name__)

REPLICATE = "replicate"
PING = "ping"
IDLE_TIMEOUT = 60.0
"""A connected peer that sends nothing (not even a ping) for this long is dropped."""
KEEPALIVE_SECONDS = 20.0
ENTRY_BATCH_BYTES = 48 * 1024
INGEST_BATCH_BYTES = 256 * 1024
"""Received ENTRIES messages that queue up while the store is busy are ingested
together, up to this many flow bytes (at most the stream window, 256 KiB, can be
waiting anyway: their credit is only returned once they are stored)."""
"""Entries per DATA frame are packed up to this size (the frame limit is 64 KiB)."""
OPEN_TIMEOUT = 10.0


class RemoteError(P2PCrewError):
    """The peer answered a request with ERROR; ``reason`` is machine-readable."""

    def __init__(self, reason: str, message: str) -> None:
        self.reason = reason
        super().__init__(f"{message} ({reason})")


class PeerLink:
    def __init__(
        self, node: Node, stream: SecureStream, *, client: bool, address: str = ""
    ) -> None:
        self.node = node
        self.stream = stream
        self.client = client
        self.address = address
        self.peer = stream.remote_public_key
        self.rpc = RpcConnection(client=client)
        self.stream_id: int | None = None
        self._outbox: deque[m.Message] = deque()
        self._cursors: dict[bytes, list[int]] = {}
        self._wake = asyncio.Event()
        self._writable = asyncio.Event()
        self._opened = asyncio.Event()
        self.closed = asyncio.Event()
        self.close_reason = ""
        self.entries_received = 0
        self.entries_sent = 0
        self.ingest_batches = 0
        self._pending: dict[int, asyncio.Future[Any]] = {}
        self._inbox: deque[tuple[m.Entries, int]] = deque()
        """Received ENTRIES not yet stored, with the flow bytes to credit once they are."""
        self._inbox_ready = asyncio.Event()
        self._inbox_idle = asyncio.Event()
        self._inbox_idle.set()

    # ---- what the node calls ---------------------------------------------------

    def queue_message(self, message: m.Message) -> None:
        if isinstance(message, m.Notes) and len(message.notes) > m.MAX_NOTES_PER_MESSAGE:
            items = sorted(message.notes.items())
            for i in range(0, len(items), m.MAX_NOTES_PER_MESSAGE):
                self._outbox.append(m.Notes(dict(items[i : i + m.MAX_NOTES_PER_MESSAGE])))
        else:
            self._outbox.append(message)
        self._wake.set()

    def queue_entries(self, feed: bytes, start: int, end: int) -> None:
        cursor = self._cursors.get(feed)
        if cursor is None:
            self._cursors[feed] = [start, end]
        else:
            cursor[0] = min(cursor[0], start)
            cursor[1] = max(cursor[1], end)
        self._wake.set()

    @property
    def idle(self) -> bool:
        """Nothing left to send (used by ``sync`` to know when it may hang up)."""
        return not self._outbox and not self._cursors and not self.rpc.outgoing_buffer_size

    async def run(self) -> None:
        """Serve the connection until either side ends it; never raises."""
        self.stream.timeout = IDLE_TIMEOUT
        if self.client:
            self.stream_id = self.rpc.open_stream(REPLICATE, {"version": 1})
            self._opened.set()
            self.node.link_ready(self)
        writer = asyncio.create_task(self._write_loop())
        keepalive = asyncio.create_task(self._keepalive_loop())
        ingester = asyncio.create_task(self._ingest_loop())
        try:
            await self._read_loop()
        except (TransportError, RpcProtocolError, m.BadReplicationMessage) as exc:
            # The first reason is the cause: after our own abort, the read fails too.
            self.close_reason = self.close_reason or f"{type(exc).__name__}: {exc}"
            log.info("peer %s: %s", self.address or self.peer.hex()[:8], self.close_reason)
        except (OSError, asyncio.IncompleteReadError) as exc:
            self.close_reason = self.close_reason or f"connection lost: {exc}"
        finally:
            for task in (writer, keepalive, ingester):
                task.cancel()
            # Bounded: a task cancelled just as its awaited call finished may not end
            # at once (wait_for on 3.11), and a dead link must still be released.
            await asyncio.wait([writer, keepalive, ingester], timeout=1.0)
            self.stream.abort()
            for future in self._pending.values():
                if not future.done():
                    future.set_exception(RemoteError("closed", self.close_reason or "link closed"))
            self.closed.set()
            self.node.link_closed(self)

    async def goodbye(self, timeout: float = 10.0) -> None:
        """End the session cleanly: RPC goodbye, then box-stream goodbye."""
        with contextlib.suppress(RpcUsageError):
            self.rpc.goodbye()
        with contextlib.suppress(LocalProtocolError, TransportError, OSError):
            await self._flush()  # the link may have been aborted meanwhile
        with contextlib.suppress(TransportError, OSError):
            await self.stream.close()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.closed.wait(), timeout)
        self.stream.abort()

    def abort(self, reason: str) -> None:
        self.close_reason = reason
        with contextlib.suppress(RpcUsageError):
            if self.stream_id is not None:
                self.rpc.send_error(self.stream_id, "dropped", reason[:200])
        with contextlib.suppress(Exception):
            self.stream.write(self.rpc.data_to_send())
        self.stream.abort()

    # ---- reading ---------------------------------------------------------------

    async def _read_loop(self) -> None:
        while True:
            data = await self.stream.read()
            events = self.rpc.receive_data(data)
            for event in events:
                await self._handle(event)
            await self._flush()
            if not data:
                return

    async def _handle(self, event: Any) -> None:
        match event:
            case ev.StreamOpened(stream_id, method, _body):
                if method != REPLICATE or self.stream_id is not None:
                    self.rpc.send_error(stream_id, "unknown-method", f"no stream {method!r}")
                    return
                self.stream_id = stream_id
                self._opened.set()
                self.node.link_ready(self)
            case ev.DataReceived(stream_id, body, flow_bytes):
                if stream_id != self.stream_id:
                    self.rpc.consume(stream_id, flow_bytes)
                    return
                message = m.decode_message(body)
                if isinstance(message, m.Entries):
                    self._inbox.append((message, flow_bytes))
                    self._inbox_idle.clear()
                    self._inbox_ready.set()
                    return
                await self._inbox_idle.wait()  # in order: entries sent before these notes
                await self.node.message_from(self, message)
                self.rpc.consume(stream_id, flow_bytes)
            case ev.RequestReceived(stream_id, method, body):
                await self._answer(stream_id, method, body)
            case ev.ResponseReceived(stream_id, body):
                self._resolve(stream_id, body, None)
            case ev.StreamWritable():
                self._writable.set()
            case ev.GoodbyeReceived():
                with contextlib.suppress(RpcUsageError):
                    self.rpc.goodbye()
                await self._flush()
                with contextlib.suppress(TransportError, OSError):
                    await self.stream.close()
            case ev.ErrorReceived(sid, reason, message):
                if sid in self._pending:
                    self._resolve(sid, None, RemoteError(reason, message))
                else:
                    self.close_reason = f"peer ended replication: {reason}: {message}"
            case _:
                pass

    async def _ingest_loop(self) -> None:
        """Store received entries while the read loop goes on decrypting the next ones.

        Reading and storing used to alternate: the socket sat unread during every
        ingest, and every ~150-entry message paid for its own commit. Now messages that
        arrive meanwhile are stored together. Memory stays bounded by the stream
        window, because a message's credit is returned only after it is stored.
        """
        try:
            while True:
                await self._inbox_ready.wait()
                self._inbox_ready.clear()
                while self._inbox:
                    await self._ingest_some()
                self._inbox_idle.set()
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the read loop would wait for us forever: end the link
            log.warning("peer %s: storing received entries failed: %r", self.address, exc)
            self.abort("the receiver could not store entries")  # no local detail to peers
            self.close_reason = f"storing received entries failed: {type(exc).__name__}: {exc}"

    async def _ingest_some(self) -> None:
        items: list[tuple[bytes, bytes | None]] = []
        flow = 0
        while self._inbox and (not items or flow < INGEST_BATCH_BYTES):
            message, flow_bytes = self._inbox.popleft()
            items.extend(message.items)
            flow += flow_bytes
        self.ingest_batches += 1
        await self.node.message_from(self, m.Entries(items))
        if self.stream_id is not None:
            self.rpc.consume(self.stream_id, flow)
        await self._flush()

    @property
    def unstored_bytes(self) -> int:
        """Flow bytes received as ENTRIES and not yet stored (at most the window)."""
        return sum(flow for _, flow in self._inbox)

    async def _answer(self, stream_id: int, method: str, body: Any) -> None:
        if method == PING:
            self.rpc.respond(stream_id, None)
            return
        handler = self.node.request_handlers.get(method)
        if handler is None:
            self.rpc.send_error(stream_id, "unknown-method", f"no method {method!r}")
            return
        try:
            result = await handler(self.peer, body)
        except P2PCrewError as exc:
            reason = getattr(exc, "reason", "bad-request")
            self.rpc.send_error(stream_id, str(reason), str(exc)[:500])
        else:
            self.rpc.respond(stream_id, result)

    async def request(self, method: str, body: Any, timeout: float = 30.0) -> Any:
        """Send an RPC request and wait for its answer. Raises RemoteError, TimeoutError."""
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        stream_id = self.rpc.request(method, body)
        self._pending[stream_id] = future
        await self._flush()
        try:
            return await asyncio.wait_for(future, timeout)
        finally:
            self._pending.pop(stream_id, None)

    def _resolve(self, stream_id: int, body: Any, error: Exception | None) -> None:
        future = self._pending.get(stream_id)
        if future is None or future.done():
            return
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(body)

    # ---- writing ----------------------------------------------------------------

    async def _flush(self) -> None:
        data = self.rpc.data_to_send()
        if data:
            self.stream.write(data)
            await self.stream.drain()

    async def _keepalive_loop(self) -> None:
        """Keep an idle but healthy connection from hitting the peer's idle timeout."""
        while True:
            await asyncio.sleep(KEEPALIVE_SECONDS)
            with contextlib.suppress(RpcUsageError):
                self.rpc.request(PING, None)
                await self._flush()

    async def _write_loop(self) -> None:
        await self._opened.wait()
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._outbox or self._cursors:
                if self._outbox:
                    await self._send(m.encode_message(self._outbox[0]))
                    self._outbox.popleft()
                else:
                    await self._send_next_entries()

    async def _send_next_entries(self) -> None:
        feed, cursor = next(iter(self._cursors.items()))
        items: list[tuple[bytes, bytes | None]] = []
        size = 0
        # Raw rows: the bytes go out as stored, so decoding each header here would be
        # wasted work on a core the receiver needs for verifying. Bounded by bytes as
        # well as count: 256 rows of 16 KiB would be 4 MB read for every batch of
        # every reader (50 slow readers asking at once took the pub from 147 MB to
        # 297 MB for a moment), where ~48 KiB go out.
        rows = await asyncio.to_thread(
            self.node.store.raw_range,
            feed,
            cursor[0],
            min(cursor[1], cursor[0] + 255),
            ENTRY_BATCH_BYTES,
        )
        for header, payload in rows:
            piece = len(header) + (len(payload) if payload else 0) + 8
            if items and size + piece > ENTRY_BATCH_BYTES:
                break
            items.append((header, payload))
            size += piece
        # Let the rows go before waiting for credit: a reader that never grants it
        # would otherwise pin them until the idle timeout.
        del rows
        if not items:  # nothing stored in that range (yet): drop the cursor
            del self._cursors[feed]
            return
        await self._send(m.encode_message(m.Entries(items)))
        self.entries_sent += len(items)
        cursor[0] += len(items)
        if cursor[0] > cursor[1]:
            self._cursors.pop(feed, None)

    async def _send(self, body: Any) -> None:
        assert self.stream_id is not None
        while True:
            try:
                self.rpc.send_data(self.stream_id, body)
                break
            except SendBlocked:
                self._writable.clear()
                await self._flush()
                if self.rpc.send_window(self.stream_id) < self.rpc.data_frame_size(
                    self.stream_id, body
                ):
                    await self._writable.wait()  # the reader sets it when CREDIT arrives
        await self._flush()
