"""The running pub: TCP listener, aiohttp app (status, health, metrics, /ws), lifecycle.

``PubService`` owns one ``PubRelay`` and the ways in. Both transports go through the
same gate and the same ``accept``: take a handshake slot from the ``HandshakeGate``
(when all ``max_handshakes`` are taken, the oldest handshake still missing its msg1, or
stalled after it, is evicted for the newcomer; refused, unread, only when none is, or
when the pub is full), run the server side of the Secret Handshake with a deadline, and
hand the authenticated stream to ``relay.adopt``. The WebSocket endpoint is just
another transport feeding the same peer pipeline as TCP (``ws_transport``).

The aiohttp app comes from ``make_app`` (state under typed ``web.AppKey``s, the
event-loop lag monitor in ``cleanup_ctx``) and is embedded with ``AppRunner`` /
``TCPSite``, so the node owns the event loop. ``shutdown`` stops accepting, says
goodbye to every peer at once within ``shutdown_grace``, hangs up on the rest, stops
the node and the web server; the caller then closes the store.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import ctypes.util
import logging
import os
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from pathlib import Path
from typing import Any, Final, cast

from aiohttp import WebSocketError, WSCloseCode, WSMessage, WSMsgType, web

from p2pcrew.pub import status
from p2pcrew.pub.config import PubConfig
from p2pcrew.pub.invites import RUNTIME_FILE, write_json_atomic
from p2pcrew.pub.metrics import CONTENT_TYPE, Snapshot, render
from p2pcrew.pub.relay import PubRelay
from p2pcrew.replicate.address import Address
from p2pcrew.replicate.admission import HandshakeGate, Ticket, gated_server_handshake
from p2pcrew.replicate.peer import PeerLink
from p2pcrew.replicate.secure_stream import SecureStream
from p2pcrew.replicate.transport_errors import PeerTimeout, TransportError
from p2pcrew.replicate.ws_transport import CLOSE_TIMEOUT, ByteCounts, open_ws_streams

log = logging.getLogger(__name__)

WS_PATH: Final = "/ws"
LAG_INTERVAL: Final = 1.0
"""Seconds between event-loop lag measurements."""
SNAPSHOT_TTL: Final = 5.0
"""Entries stored and disk use are recounted at most this often (scrapes are cheap)."""
HEALTH_TIMEOUT: Final = 5.0
TRIM_INTERVAL: Final = 10.0
"""Seconds between checks whether connections ended, so freed memory can go back."""


class PubService:
    """One running pub. Create, ``start``, later ``shutdown``; one per process."""

    def __init__(self, relay: PubRelay, config: PubConfig, root: Path) -> None:
        self.relay = relay
        self.config = config
        self.root = root
        self.metrics = relay.metrics
        self.started = time.monotonic()
        self.tcp_address: Address | None = None
        self.ws_address: Address | None = None
        self.http_url: str | None = None
        self._accepting = True
        self.gate = HandshakeGate(config.max_handshakes)
        self._tcp: asyncio.Server | None = None
        self._runner: web.AppRunner | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._slow: tuple[float, int, int, int] | None = None
        self._trimmer: asyncio.Task[None] | None = None

    # ---- the gate and the handshake ---------------------------------------------------

    def try_enter(self, transport: str, hang_up: Callable[[], None]) -> Ticket | None:
        """A handshake slot (evicting a silent or stalled handshake if need be), or None:
        refused (counted) without reading anything. ``hang_up`` closes this connection
        should it be evicted later."""
        room = self.config.max_connections - len(self.relay.links)
        ticket = None
        if self._accepting:
            ticket = self.gate.enter(transport, time.monotonic(), hang_up, room=room)
        self.metrics.handshakes_in_flight = self.gate.in_flight
        if ticket is None:
            self.metrics.handshakes.inc(transport, "refused")
            return None
        self.metrics.connections.inc(transport)
        return ticket

    def leave(self, ticket: Ticket) -> None:
        self.gate.leave(ticket)
        self.metrics.handshakes_in_flight = self.gate.in_flight

    async def accept(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        ticket: Ticket,
        peer: str,
    ) -> None:
        """Handshake (slot already taken, released here), adopt, serve until closed."""
        transport = ticket.transport
        try:
            stream = await self._handshake(reader, writer, ticket)
        except PeerTimeout:
            self.metrics.handshakes.inc(transport, "evicted" if ticket.evicted else "timeout")
            return
        except (TransportError, OSError) as exc:
            if ticket.evicted:
                self.metrics.handshakes.inc(transport, "evicted")
                return
            self.metrics.handshakes.inc(transport, "failed")
            log.info("%s handshake from %s failed: %s", transport, peer, exc)
            return
        finally:
            self.leave(ticket)
        if ticket.evicted:  # evicted while msg4 was being flushed: already hung up
            self.metrics.handshakes.inc(transport, "evicted")
            stream.abort()
            return
        self.metrics.handshakes.inc(transport, "ok")
        link = self.relay.adopt(stream, client=False, address=f"{transport}:{peer}")
        if link is not None:
            await link.closed.wait()

    def _handshake(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, ticket: Ticket
    ) -> Coroutine[Any, Any, SecureStream]:
        """``server_handshake``, with the machine telling the gate when msg1 arrived."""
        return gated_server_handshake(
            self.gate,
            ticket,
            reader,
            writer,
            self.relay.network_key,
            self.relay.identity.signing_key,
            self.config.handshake_timeout,
        )

    # ---- TCP ---------------------------------------------------------------------------

    async def start_tcp(self, host: str, port: int) -> tuple[str, int]:
        loop = asyncio.get_running_loop()
        counts = self.metrics.transfer["tcp"]

        def factory() -> asyncio.StreamReaderProtocol:
            reader = asyncio.StreamReader(limit=self.config.max_buffered_bytes, loop=loop)
            return _CountingProtocol(reader, self._on_tcp, counts)

        self._tcp = await loop.create_server(factory, host, port)
        sock = self._tcp.sockets[0].getsockname()
        return sock[0], sock[1]

    def _on_tcp(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        ticket = self.try_enter("tcp", writer.transport.abort)
        if ticket is None:
            writer.transport.abort()
            return
        writer.transport.set_write_buffer_limits(high=self.config.max_buffered_bytes)
        peer = writer.get_extra_info("peername")
        self._spawn(self.accept(reader, writer, ticket, str(peer)))

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # ---- lifecycle ------------------------------------------------------------------

    async def start(self, tcp: tuple[str, int] | None, http: tuple[str, int] | None) -> None:
        """Start the node and the listeners. Raises OSError if a port cannot be bound."""
        await self.relay.start()
        self._trimmer = asyncio.create_task(self._trim_memory())
        key = self.relay.identity.public_key
        if tcp is not None:
            host, port = await self.start_tcp(*tcp)
            self.tcp_address = Address("tcp", host, port, key)
        if http is not None:
            self._runner = web.AppRunner(
                make_app(self), shutdown_timeout=self.config.shutdown_grace, access_log=None
            )
            await self._runner.setup()
            await web.TCPSite(self._runner, http[0], http[1]).start()
            host, port = self._runner.addresses[0][:2]
            self.ws_address = Address("ws", host, port, key, WS_PATH)
            self.http_url = f"http://{f'[{host}]' if ':' in host else host}:{port}/"
        self._write_runtime()

    async def shutdown(self) -> None:
        """Stop accepting, goodbye to peers (bounded), stop the node and the web server."""
        self._accepting = False
        if self._tcp is not None:
            self._tcp.close()
        await self._goodbye_all()
        await self.relay.close()
        if self._trimmer is not None:
            self._trimmer.cancel()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._runner is not None:
            await self._runner.cleanup()
        with contextlib.suppress(OSError):
            (self.root / RUNTIME_FILE).unlink()

    async def _goodbye_all(self) -> None:
        """Goodbye to every peer at once; whoever has not answered in time is cut off."""
        grace = self.config.shutdown_grace
        links = list(self.relay.links.values())
        tasks = [asyncio.create_task(_goodbye(link, grace)) for link in links]
        if tasks:
            _, late = await asyncio.wait(tasks, timeout=grace + 0.5)
            for task in late:
                task.cancel()
        for link in links:
            if not link.closed.is_set():
                link.abort("the pub is shutting down")
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(link.closed.wait(), 1.0)

    async def _trim_memory(self) -> None:
        """After connections end, hand freed heap pages back to the OS (glibc only).

        Entries read for slow readers and buffers of dropped peers are freed, but glibc
        keeps freed chunks in its (per-thread) arenas, so without this the pub's RSS
        stays at the peak of the last flood: measured 20 MB above baseline after four
        slow readers left. ``malloc_trim`` costs milliseconds, on a worker thread.
        """
        trim = _malloc_trim()
        if trim is None:
            return
        seen = -1.0
        while True:
            await asyncio.sleep(TRIM_INTERVAL)
            ended = self.metrics.connections_ended()
            if ended != seen:
                seen = ended
                await asyncio.to_thread(trim, 0)

    def _write_runtime(self) -> None:
        """How to reach this pub, for ``pub invite``: public_urls, else where it listens.

        So an invite made beside a running pub matches that pub's config, even when
        ``pub invite`` is run without ``--config``.
        """
        bound = [_url(a) for a in (self.tcp_address, self.ws_address) if a is not None]
        urls = list(self.config.public_urls) or bound
        write_json_atomic(self.root / RUNTIME_FILE, {"urls": urls, "pid": os.getpid()})

    # ---- what the operator sees --------------------------------------------------------

    async def snapshot(self) -> Snapshot:
        now = time.monotonic()
        if self._slow is None or now - self._slow[0] > SNAPSHOT_TTL:
            entries, disk, invites = await asyncio.to_thread(self._slow_counts)
            self._slow = (now, entries, disk, invites)
        _, entries, disk, invites = self._slow
        relay = self.relay
        return Snapshot(
            uptime=now - self.started,
            members=len(relay.members),
            peers=len(relay.links),
            guests=len(relay.guests),
            entries=entries,
            disk_bytes=disk,
            live_invites=invites,
            over_quota=len(relay.over_quota),
            accepted=sum(relay.stats.received.values()),
            rejected=dict(relay.stats.rejected),
        )

    def _slow_counts(self) -> tuple[int, int, int]:
        live = len(self.relay.invites.live(int(time.time() * 1000)))
        return self.relay.store.count(), status.directory_size(self.root), live


async def _goodbye(link: PeerLink, timeout: float) -> None:
    with contextlib.suppress(Exception):  # a peer that vanished meanwhile is no error
        await link.goodbye(timeout=timeout)


def _malloc_trim() -> Callable[[int], int] | None:
    """glibc's ``malloc_trim``, or None elsewhere (musl, macOS): trimming is a bonus."""
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        function = ctypes.CDLL(name).malloc_trim
    except (OSError, AttributeError):
        return None
    function.argtypes = [ctypes.c_size_t]
    function.restype = ctypes.c_int
    return cast(Callable[[int], int], function)


def _url(address: Address) -> str:
    return str(address).split("#", 1)[0]


# ---- TCP byte counting ------------------------------------------------------------------


class _CountingProtocol(asyncio.StreamReaderProtocol):
    """``StreamReaderProtocol`` that counts bytes both ways (for /metrics)."""

    def __init__(
        self,
        reader: asyncio.StreamReader,
        callback: Any,
        counts: ByteCounts,
    ) -> None:
        super().__init__(reader, callback)
        self._counts = counts

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        super().connection_made(_CountingTransport(transport, self._counts))

    def data_received(self, data: bytes) -> None:
        self._counts.received += len(data)
        super().data_received(data)


class _CountingTransport(asyncio.Transport):
    """Delegates to the socket transport; counts what is written."""

    def __init__(self, inner: asyncio.Transport, counts: ByteCounts) -> None:
        super().__init__()
        self._inner = inner
        self._counts = counts

    def write(self, data: bytes | bytearray | memoryview[Any]) -> None:
        self._counts.sent += len(data)
        self._inner.write(data)

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self._inner.get_extra_info(name, default)

    def is_closing(self) -> bool:
        return self._inner.is_closing()

    def close(self) -> None:
        self._inner.close()

    def abort(self) -> None:
        self._inner.abort()

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        self._inner.set_protocol(protocol)

    def get_protocol(self) -> asyncio.BaseProtocol:
        return self._inner.get_protocol()

    def is_reading(self) -> bool:
        return self._inner.is_reading()

    def pause_reading(self) -> None:
        self._inner.pause_reading()

    def resume_reading(self) -> None:
        self._inner.resume_reading()

    def can_write_eof(self) -> bool:
        return self._inner.can_write_eof()

    def write_eof(self) -> None:
        self._inner.write_eof()

    def get_write_buffer_size(self) -> int:
        return self._inner.get_write_buffer_size()

    def get_write_buffer_limits(self) -> tuple[int, int]:
        return self._inner.get_write_buffer_limits()

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        self._inner.set_write_buffer_limits(high, low)


# ---- the aiohttp app ---------------------------------------------------------------------

SERVICE: Final = web.AppKey("service", PubService)


def make_app(service: PubService) -> web.Application:
    """The pub's web app: ``/`` status, ``/healthz``, ``/metrics``, ``/ws`` peers."""
    app = web.Application(client_max_size=4096)  # nothing here takes a request body
    app[SERVICE] = service
    app.router.add_get("/", status_page)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/metrics", metrics_page)
    app.router.add_get(WS_PATH, websocket)
    app.cleanup_ctx.append(_loop_lag_monitor)
    return app


async def status_page(request: web.Request) -> web.Response:
    snap = await request.app[SERVICE].snapshot()
    return web.Response(text=status.render_status(snap), content_type=status.CONTENT_TYPE)


async def healthz(request: web.Request) -> web.Response:
    store = request.app[SERVICE].relay.store
    try:
        await asyncio.wait_for(asyncio.to_thread(store.get_meta, "pub_health"), HEALTH_TIMEOUT)
    except Exception as exc:  # any failure means "not healthy"; say which
        log.warning("health check failed: %s", exc)
        return web.Response(status=503, text=f"store not answering: {type(exc).__name__}\n")
    return web.Response(text="ok\n")


async def metrics_page(request: web.Request) -> web.Response:
    service = request.app[SERVICE]
    text = render(service.metrics, await service.snapshot())
    return web.Response(body=text.encode("utf-8"), headers={"Content-Type": CONTENT_TYPE})


async def websocket(request: web.Request) -> web.StreamResponse:
    """Secret Handshake and box-stream in BINARY frames; then the usual peer pipeline."""
    service = request.app[SERVICE]
    config = service.config
    ws = _PeerWebSocket(timeout=CLOSE_TIMEOUT, max_msg_size=config.max_ws_message, compress=False)
    if not ws.can_prepare(request).ok:
        raise web.HTTPBadRequest(text="this endpoint is for p2pcrew peers (WebSocket)\n")
    raw = request.transport
    ticket = service.try_enter("ws", raw.abort if raw is not None else _nothing)
    if ticket is None:
        raise web.HTTPServiceUnavailable(text="the pub is busy; try again shortly\n")
    try:
        await ws.prepare(request)
    except BaseException:
        service.leave(ticket)
        raise
    reader, writer, transport = open_ws_streams(
        ws,
        limit=config.max_buffered_bytes,
        counts=service.metrics.transfer["ws"],
        hard_close=raw.abort if raw is not None else None,
    )
    try:
        await service.accept(reader, writer, ticket, str(request.remote))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(transport.done.wait(), CLOSE_TIMEOUT + 1)
    finally:
        transport.abort()
    if ws.too_big:
        service.metrics.ws_too_big.inc()
        log.info(
            "ws peer %s: message over max_ws_message (%d bytes)",
            request.remote,
            config.max_ws_message,
        )
    return ws


class _PeerWebSocket(web.WebSocketResponse):
    """Notes when aiohttp refused a message over ``max_msg_size`` (it then closes with
    1009, but the peer's answering close code replaces that in ``close_code``)."""

    too_big = False

    async def receive(self, timeout: float | None = None) -> WSMessage:
        msg = await super().receive(timeout)
        error = msg.data if msg.type is WSMsgType.ERROR else None
        if isinstance(error, WebSocketError) and error.code == WSCloseCode.MESSAGE_TOO_BIG:
            self.too_big = True
        return msg


def _nothing() -> None:
    """A hang-up for a connection whose transport is already gone."""


async def _loop_lag_monitor(app: web.Application) -> AsyncIterator[None]:
    task = asyncio.create_task(_watch_loop_lag(app[SERVICE]))
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def _watch_loop_lag(service: PubService) -> None:
    """A sleep that wakes late means the loop was busy: record by how much."""
    loop = asyncio.get_running_loop()
    while True:
        start = loop.time()
        await asyncio.sleep(LAG_INTERVAL)
        service.metrics.loop_lag = max(0.0, loop.time() - start - LAG_INTERVAL)
