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
        self._pending: dict[int, asyncio.Future[Any]] = {}

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
        try:
            await self._read_loop()
        except (TransportError, RpcProtocolError, m.BadReplicationMessage) as exc:
            self.close_reason = f"{type(exc).__name__}: {exc}"
            log.info("peer %s: %s", self.address or self.peer.hex()[:8], self.close_reason)
        except (OSError, asyncio.IncompleteReadError) as exc:
            self.close_reason = f"connection lost: {exc}"
        finally:
            for task in (writer, keepalive):
                task.cancel()
            # Bounded: a task cancelled just as its awaited call finished may not end
            # at once (wait_for on 3.11), and a dead link must still be released.
            await asyncio.wait([writer, keepalive], timeout=1.0)
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
                if stream_id == self.stream_id:
                    await self.node.message_from(self, m.decode_message(body))
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
        rows = await asyncio.to_thread(
            self.node.store.range, feed, cursor[0], min(cursor[1], cursor[0] + 255)
        )
        for row in rows:
            piece = len(row.entry.header) + (len(row.payload) if row.payload else 0) + 8
            if items and size + piece > ENTRY_BATCH_BYTES:
                break
            items.append((row.entry.header, row.payload))
            size += piece
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
