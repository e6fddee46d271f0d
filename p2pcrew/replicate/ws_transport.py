"""WebSocket as a byte transport: the same Secret Handshake and box-stream bytes as TCP.

Theory of operation
-------------------
Venue networks often pass only web ports, so a pub also speaks over WebSocket
(``ws://`` or ``wss://`` through a reverse proxy on 443). The bytes are exactly those
of a TCP connection, carried in BINARY frames whose boundaries mean nothing (a reader
must not assume a frame holds a whole box, just as with TCP segments).

``WsTransport`` implements ``asyncio.Transport`` over an aiohttp WebSocket (server
side ``web.WebSocketResponse`` or client side ``ClientWebSocketResponse``) and feeds a
standard ``asyncio.StreamReaderProtocol``. So callers get a genuine
``asyncio.StreamReader`` / ``asyncio.StreamWriter`` pair, and ``client_handshake``,
``server_handshake``, ``SecureStream`` and ``Node.adopt`` work unchanged: the WebSocket
is just another transport feeding the same peer pipeline as TCP.

Two owned tasks per connection:

* the *pump* reads frames and hands BINARY payloads to the protocol. The reader asks
  the transport to ``pause_reading`` when its buffer passes twice its limit; the pump
  then stops calling ``receive()`` (aiohttp stops reading the socket in turn), so a
  fast sender costs at most the reader's limit plus one message (``max_msg_size``).
* the *sender* sends what ``write`` buffered, in chunks of at most ``SEND_CHUNK``. The
  protocol is paused (``drain()`` waits) above the high-water mark, so a peer that
  does not read costs at most ``high_water`` plus one chunk.

TEXT frames are a protocol violation: the connection is dropped. Every failure is
reported to the protocol as a ``ConnectionError`` (or a clean EOF), which is what the
secure stream already knows how to turn into ``StreamTruncated``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from collections.abc import Callable, Coroutine, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, Protocol

import aiohttp
from aiohttp import WSMsgType

from p2pcrew.replicate.address import Address

if TYPE_CHECKING:
    from p2pcrew.replicate.node import Node
    from p2pcrew.replicate.peer import PeerLink

log = logging.getLogger(__name__)

__all__ = [
    "DEFAULT_BUFFER_LIMIT",
    "DEFAULT_MAX_MESSAGE",
    "SEND_CHUNK",
    "ByteCounts",
    "WsTransport",
    "connect_ws",
    "dial",
    "open_ws_streams",
]

SEND_CHUNK: Final = 64 * 1024
"""Largest BINARY frame we send (box-stream bytes, not aligned with boxes)."""
DEFAULT_BUFFER_LIMIT: Final = 128 * 1024
"""Reader limit (paused above twice this) and write high-water mark, per connection."""
DEFAULT_MAX_MESSAGE: Final = 256 * 1024
"""Largest WebSocket message accepted; ours are at most SEND_CHUNK."""
CLOSE_TIMEOUT: Final = 2.0
"""How long a close waits for the peer's CLOSE frame before hanging up anyway."""
CONNECT_TIMEOUT: Final = 10.0

# Closing tasks outlive the transport that started them; keep them referenced.
_closers: set[asyncio.Task[None]] = set()


class WebSocketLike(Protocol):
    """What we use of aiohttp's server and client WebSocket objects."""

    @property
    def closed(self) -> bool: ...

    async def send_bytes(self, data: bytes, compress: int | None = None) -> None: ...

    async def receive(self, timeout: float | None = None) -> aiohttp.WSMessage: ...

    async def close(self, *, code: int = ..., message: bytes = ...) -> bool: ...

    def get_extra_info(self, name: str, default: Any = None) -> Any: ...


@dataclass(slots=True)
class ByteCounts:
    """Bytes moved at the transport (for metrics); shared by many connections."""

    received: int = 0
    sent: int = 0


class WsTransport(asyncio.Transport):
    """An ``asyncio.Transport`` whose bytes travel in WebSocket BINARY frames.

    ``on_closed`` runs once the connection is over (e.g. closing a client session);
    ``hard_close`` (optional) drops the underlying connection at once on ``abort()``.
    """

    def __init__(
        self,
        ws: WebSocketLike,
        protocol: asyncio.Protocol,
        *,
        high_water: int = DEFAULT_BUFFER_LIMIT,
        counts: ByteCounts | None = None,
        on_closed: Callable[[], Coroutine[Any, Any, None]] | None = None,
        hard_close: Callable[[], None] | None = None,
    ) -> None:
        super().__init__()
        self._ws = ws
        self._protocol = protocol
        self._high = high_water
        self._low = high_water // 4
        self._counts = counts or ByteCounts()
        self._on_closed = on_closed
        self._hard_close = hard_close
        self._buffer = bytearray()
        self._wake = asyncio.Event()
        self._reading = asyncio.Event()
        self._reading.set()
        self._writing_paused = False
        self._closing = False
        self._lost = False
        self.done = asyncio.Event()
        """Set once the protocol has been told the connection is lost."""
        self._pump = asyncio.create_task(self._pump_loop())
        self._sender = asyncio.create_task(self._send_loop())

    # ---- asyncio.Transport ----------------------------------------------------

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self._ws.get_extra_info(name, default)

    def is_closing(self) -> bool:
        return self._closing

    def close(self) -> None:
        """Send what is buffered, then close the WebSocket cleanly."""
        if self._closing:
            return
        self._closing = True
        self._wake.set()

    def abort(self) -> None:
        """Hang up now; buffered data is dropped."""
        if self._lost:
            return
        self._closing = True
        self._buffer.clear()
        for task in (self._pump, self._sender):
            task.cancel()
        if self._hard_close is not None:
            self._hard_close()
        self._spawn_close(code=aiohttp.WSCloseCode.GOING_AWAY)
        self._connection_lost(None)

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        assert isinstance(protocol, asyncio.Protocol)
        self._protocol = protocol

    def get_protocol(self) -> asyncio.BaseProtocol:
        return self._protocol

    def is_reading(self) -> bool:
        return self._reading.is_set()

    def pause_reading(self) -> None:
        self._reading.clear()

    def resume_reading(self) -> None:
        self._reading.set()

    def write(self, data: bytes | bytearray | memoryview[Any]) -> None:
        if self._closing or not data:
            return  # like a socket transport after close(): dropped silently
        self._buffer += data
        self._wake.set()
        if not self._writing_paused and len(self._buffer) > self._high:
            self._writing_paused = True
            self._protocol.pause_writing()

    def writelines(self, list_of_data: Iterable[bytes | bytearray | memoryview[Any]]) -> None:
        for data in list_of_data:
            self.write(data)

    def write_eof(self) -> None:
        raise NotImplementedError("a WebSocket has no half-close; use close()")

    def can_write_eof(self) -> bool:
        return False

    def get_write_buffer_size(self) -> int:
        return len(self._buffer)

    def get_write_buffer_limits(self) -> tuple[int, int]:
        return self._low, self._high

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        self._high = DEFAULT_BUFFER_LIMIT if high is None else high
        self._low = self._high // 4 if low is None else low

    # ---- the two tasks ----------------------------------------------------------

    async def _pump_loop(self) -> None:
        error: Exception | None = None
        try:
            while True:
                await self._reading.wait()
                msg = await self._ws.receive()
                if msg.type is WSMsgType.BINARY:
                    self._counts.received += len(msg.data)
                    self._protocol.data_received(msg.data)
                elif msg.type in (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED):
                    if self._closing:
                        return  # our close(): the sender finishes it and reports
                    break
                elif msg.type is WSMsgType.ERROR:
                    error = ConnectionResetError(f"WebSocket error: {msg.data}")
                    break
                else:
                    error = ConnectionResetError(f"unexpected WebSocket {msg.type.name} frame")
                    self._spawn_close(code=aiohttp.WSCloseCode.UNSUPPORTED_DATA)
                    break
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # aiohttp raises several types; all mean "connection lost"
            error = ConnectionResetError(f"WebSocket receive failed: {exc}")
        self._closing = True
        self._sender.cancel()
        self._connection_lost(error)

    async def _send_loop(self) -> None:
        try:
            while True:
                await self._wake.wait()
                self._wake.clear()
                while self._buffer:
                    chunk = bytes(self._buffer[:SEND_CHUNK])
                    del self._buffer[:SEND_CHUNK]
                    await self._ws.send_bytes(chunk)
                    self._counts.sent += len(chunk)
                    self._maybe_resume_writing()
                if self._closing:
                    break
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._ws.close(), CLOSE_TIMEOUT)
            self._pump.cancel()
            self._connection_lost(None)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self._pump.cancel()
            self._spawn_close(code=aiohttp.WSCloseCode.ABNORMAL_CLOSURE)
            self._connection_lost(ConnectionResetError(f"WebSocket send failed: {exc}"))

    def _maybe_resume_writing(self) -> None:
        if self._writing_paused and len(self._buffer) <= self._low:
            self._writing_paused = False
            self._protocol.resume_writing()

    # ---- ending -------------------------------------------------------------------

    def _spawn_close(self, *, code: int) -> None:
        if self._ws.closed:
            return

        async def close() -> None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._ws.close(code=code), CLOSE_TIMEOUT)

        _keep(asyncio.create_task(close()))

    def _connection_lost(self, error: Exception | None) -> None:
        """Tell the protocol once; then run the owner's cleanup."""
        if self._lost:
            return
        self._lost = True
        self._closing = True
        self._buffer.clear()
        self._protocol.connection_lost(error)
        if self._on_closed is not None:
            _keep(asyncio.create_task(self._on_closed()))
        self.done.set()


def _keep(task: asyncio.Task[None]) -> None:
    _closers.add(task)
    task.add_done_callback(_closers.discard)


def open_ws_streams(
    ws: WebSocketLike,
    *,
    limit: int = DEFAULT_BUFFER_LIMIT,
    counts: ByteCounts | None = None,
    on_closed: Callable[[], Coroutine[Any, Any, None]] | None = None,
    hard_close: Callable[[], None] | None = None,
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter, WsTransport]:
    """A reader/writer pair over an open WebSocket (and the transport, for ``done``).

    The reader holds at most about ``2 * limit`` unread bytes; writes above ``limit``
    make ``drain()`` wait.
    """
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=limit, loop=loop)
    protocol = asyncio.StreamReaderProtocol(reader, loop=loop)
    transport = WsTransport(
        ws, protocol, high_water=limit, counts=counts, on_closed=on_closed, hard_close=hard_close
    )
    protocol.connection_made(transport)
    writer = asyncio.StreamWriter(transport, protocol, reader, loop)
    return reader, writer, transport


async def connect_ws(
    address: Address,
    *,
    timeout: float = CONNECT_TIMEOUT,
    limit: int = DEFAULT_BUFFER_LIMIT,
    max_msg_size: int = DEFAULT_MAX_MESSAGE,
    ssl_context: ssl.SSLContext | None = None,
    counts: ByteCounts | None = None,
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """Open ``ws://`` or ``wss://`` to ``address`` and return a reader/writer pair.

    ``wss://`` verifies the server's certificate (system trust store unless
    ``ssl_context`` is given). Raises OSError (``ConnectionError``) when the server
    cannot be reached or refuses the upgrade, TimeoutError after ``timeout``.
    """
    if not address.is_websocket:
        raise ValueError(f"not a WebSocket address: {address}")
    session = aiohttp.ClientSession()
    try:
        async with asyncio.timeout(timeout):
            ws = await session.ws_connect(
                address.websocket_url(),
                max_msg_size=max_msg_size,
                compress=0,  # box-stream bytes are encrypted: nothing to gain
                autoping=True,
                timeout=aiohttp.ClientWSTimeout(ws_close=CLOSE_TIMEOUT),
                ssl=ssl_context if ssl_context is not None else True,
            )
    except aiohttp.WSServerHandshakeError as exc:
        await session.close()
        raise ConnectionRefusedError(
            f"the server refused the WebSocket upgrade (HTTP {exc.status}: {exc.message})"
        ) from exc
    except aiohttp.ClientError as exc:
        await session.close()
        raise ConnectionError(str(exc) or type(exc).__name__) from exc
    except BaseException:
        await session.close()
        raise
    reader, writer, _ = open_ws_streams(ws, limit=limit, counts=counts, on_closed=session.close)
    return reader, writer


async def dial(node: Node, address: Address, *, source: str = "manual") -> PeerLink:
    """``Node.connect`` for any scheme (kept for callers written before it took ws/wss)."""
    return await node.connect(address, source=source)
