"""The pub under abuse: abusers, real members and the pub's memory, all on loopback.

Used by ``tests/pub/test_pub_abuse.py`` (small sizes) and by the pub benchmark
(``benchmarks/pub_bench.py``, full sizes). One run, ``run_abuse``:

1. builds a pub data directory whose members file lists every member key used below,
   and whose store already holds a *bulk* member feed of large entries (so that slow
   readers have megabytes to be sent), then starts ``p2pcrew pub serve`` exactly as
   deployed (``benchmarks.pub_bench.Pub``);
2. measures the pub's VmRSS at baseline, then with C idle members connected
   (``benchmarks.pub_load members``), then with H handshakes in flight (the half-open
   flood, ``benchmarks.pub_load flood``), then after one member read the bulk feed (the
   store's page cache, ``cache_size`` 64 MiB, fills), then with S slow readers; the
   differences give the constants of the memory formula (``Formula``);
3. adds the other abusers, each its own process (``python -m tests.pub.abuse KIND``):
   slowloris (the handshake one byte every few seconds), oversized frames (an RPC
   length prefix over 64 KiB after a real handshake, and a WebSocket message over
   ``max_ws_message``), a member flooding requests and streams, and a guest repeating
   ``invite.use``;
4. meanwhile a real writer member pushes a known set of entries and a real reader
   member fetches them (``benchmarks.pub_load sync``, separate processes: ``Node``, as
   ``p2pcrew sync`` runs it), timed;
5. stops every abuser and the idle members, waits until the pub has no connection and
   no handshake left, and measures VmRSS again (memory back near baseline).

The pub's own ``/metrics`` say what refused each abuser (handshakes evicted, peers
closed by reason, WebSocket messages too big, invite attempts rate-limited).

Abuser processes read their settings as one JSON argument, print ``{"ready": ...}``
once set up and a JSON line with what they saw when done: after their ``seconds``, or
as soon as their stdin closes (which is how ``run_abuse`` stops them).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Final

import aiohttp
import nacl.signing

from benchmarks.pub_load import member_key, raise_fd_limit
from p2pcrew.feed.identity import Identity, save_identity
from p2pcrew.feed.sqlite_store import SqliteStore
from p2pcrew.pub.invites import write_json_atomic
from p2pcrew.pub.relay import INVITE_USE, MEMBERS_FILE, _members_document
from p2pcrew.pub.server import TRIM_INTERVAL
from p2pcrew.replicate import messages as m
from p2pcrew.replicate import rpc_states as ev
from p2pcrew.replicate.address import Address, parse_address
from p2pcrew.replicate.peer import PING, REPLICATE
from p2pcrew.replicate.rpc import RpcConnection
from p2pcrew.replicate.rpc_errors import RpcProtocolError, RpcUsageError
from p2pcrew.replicate.secure_stream import SecureStream, client_handshake
from p2pcrew.replicate.shs import P2PCREW_NETWORK_KEY, ClientHandshake
from p2pcrew.replicate.transport_errors import TransportError

ROOT: Final = Path(__file__).resolve().parents[2]
SPECIAL: Final = 1_000_000
"""Member key indices of the writer, reader, bulk feed and abusers start here, far above
the idle members' 0..C-1 (``benchmarks.pub_load members`` numbers those from 0)."""
WRITER, READER, BULK, REQUESTER, OVERSIZER, WARM = (SPECIAL + i for i in range(6))
SLOW_READERS_FROM: Final = SPECIAL + 100
BULK_PAYLOAD: Final = 16_000
"""Bytes per bulk entry: near the 16 KiB payload limit, the worst case per row."""
RSS_SAMPLE: Final = 0.25
RECONNECT_PAUSE: Final = 0.5
HANDSHAKE_TIMEOUT: Final = 10.0
MB: Final = 1024 * 1024


# ---- sizes and the formula ------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AbuseSizes:
    """How hard to push; ``small()`` for CI, ``full()`` for the benchmark."""

    idle_members: int
    half_open: int
    slowloris: int
    slow_readers: int
    bulk_entries: int
    posts: int
    """Entries the writer pushes and the reader must fetch during the abuse."""
    max_handshakes: int
    handshake_timeout: float
    abuse_seconds: float
    """Upper bound for each abuser process (``run_abuse`` stops them sooner)."""
    settle: float
    """Pause before each memory reading (the pub finishes the step's work)."""

    @classmethod
    def small(cls) -> AbuseSizes:
        # handshake_timeout 30 s: a member locked out until silent handshakes time out
        # (the old admission policy) would need ~30 s, far over the test's bound.
        return cls(20, 300, 20, 4, 300, 30, 64, 30.0, 60.0, 1.0)

    @classmethod
    def full(cls) -> AbuseSizes:
        return cls(500, 2000, 100, 50, 2000, 200, 512, 10.0, 180.0, 2.0)


@dataclass(frozen=True, slots=True)
class Formula:
    """``RSS <= base + cache + per_connection*C + per_handshake*H + per_slow_reader*S``.

    ``cache`` is the store's SQLite page cache: at most ``CACHE_MB`` (``cache_size``),
    and never more than the store itself. The constants were measured by the full
    benchmark (docs/reliability.md, "Pub under abuse") and rounded up; ``slack_mb``
    absorbs the allocator's granularity at small sizes.
    """

    per_connection_kb: float
    per_handshake_kb: float
    per_slow_reader_kb: float
    slack_mb: float

    def bound_mb(
        self, base: float, store_mb: float, connections: float, handshakes: float, slow: float
    ) -> float:
        kb = (
            self.per_connection_kb * connections
            + self.per_handshake_kb * handshakes
            + self.per_slow_reader_kb * slow
        )
        return base + min(store_mb, CACHE_MB) + kb / 1024 + self.slack_mb


CACHE_MB: Final = 64.0
"""The store's page cache limit (``PRAGMA cache_size=-65536`` in ``SqliteStore``)."""
FORMULA: Final = Formula(
    per_connection_kb=32.0, per_handshake_kb=24.0, per_slow_reader_kb=1024.0, slack_mb=20.0
)
"""Measured (full benchmark, one run): 21-26 KB per idle member, 16-22.5 KB per handshake
in flight, 151-163 KB per slow reader of 16 KB entries (the batch it is being sent, the
RPC and socket buffers; up to 4 MB for a moment while every batch read 256 rows, and
3.7 MB while ``PeerLink._send_next_entries`` kept every row it had read alive during
the wait for credit)."""
RETURN_MB: Final = 30.0
"""After every abuser left, VmRSS stays within this of baseline (Python's allocator keeps
some freed arenas; see docs/reliability.md)."""


# ---- helpers shared by the abusers ------------------------------------------------------


def _print(doc: dict[str, Any]) -> None:
    print(json.dumps(doc), flush=True)


async def _stdin_closed() -> None:
    """Returns when our stdin reaches EOF: the harness wants us to stop."""
    loop = asyncio.get_running_loop()
    while await loop.run_in_executor(None, sys.stdin.readline):
        pass


async def _until_stopped(seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(_stdin_closed(), seconds)


async def _handshake(
    address: Address, key: nacl.signing.SigningKey
) -> tuple[SecureStream, asyncio.StreamWriter]:
    reader, writer = await asyncio.wait_for(
        asyncio.open_connection(address.host, address.port), HANDSHAKE_TIMEOUT
    )
    stream = await client_handshake(
        reader, writer, P2PCREW_NETWORK_KEY, key, address.key, timeout=HANDSHAKE_TIMEOUT
    )
    return stream, writer


async def _hung_up_within(stream: SecureStream, limit: float) -> float | None:
    """Seconds until the pub ends the connection (any error counts), None if it did not."""
    started = time.monotonic()
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(limit):
            try:
                while await stream.read():
                    pass
            except (TransportError, OSError):
                pass
            return time.monotonic() - started
    return None


# ---- abusers ----------------------------------------------------------------------------


async def slowloris(
    address: Address, count: int, interval: float, seconds: float
) -> dict[str, Any]:
    """``count`` connections each sending a genuine msg1 one byte every ``interval`` s."""
    raise_fd_limit(count + 256)
    msg1 = ClientHandshake(
        P2PCREW_NETWORK_KEY, nacl.signing.SigningKey.generate(), address.key
    ).data_to_send()
    stop = asyncio.Event()
    lived: list[float] = []
    counts = {"dials": 0, "dial_errors": 0, "closed_by_pub": 0, "bytes": 0}

    async def one() -> None:
        while not stop.is_set():
            counts["dials"] += 1
            try:
                reader, writer = await asyncio.open_connection(address.host, address.port)
            except OSError:
                counts["dial_errors"] += 1
                await asyncio.sleep(RECONNECT_PAUSE)
                continue
            opened = time.monotonic()
            closed = asyncio.create_task(reader.read(1024))
            try:
                for byte in msg1:
                    writer.write(bytes([byte]))
                    counts["bytes"] += 1
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(asyncio.shield(closed), interval)
                    if closed.done() or stop.is_set():
                        break
            except OSError:
                pass
            finally:
                if not stop.is_set():
                    counts["closed_by_pub"] += 1
                    lived.append(time.monotonic() - opened)
                closed.cancel()
                writer.transport.abort()
            await asyncio.sleep(RECONNECT_PAUSE)

    tasks = [asyncio.create_task(one()) for _ in range(count)]
    _print({"ready": "slowloris", "count": count})
    await _until_stopped(seconds)
    stop.set()
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    lived.sort()
    return {
        **counts,
        "longest_lived": lived[-1] if lived else 0.0,
        "median_lived": lived[len(lived) // 2] if lived else 0.0,
    }


async def slow_readers(
    address: Address, seed: bytes, first: int, count: int, feeds: list[bytes], seconds: float
) -> dict[str, Any]:
    """Members that ask for everything from seq 1, then never read the socket again."""
    raise_fd_limit(count + 256)
    streams: list[SecureStream] = []
    errors: list[str] = []

    async def one(index: int) -> None:
        try:
            stream, _ = await _handshake(address, member_key(seed, index))
        except (TransportError, OSError, TimeoutError) as exc:
            errors.append(type(exc).__name__)
            return
        rpc = RpcConnection(client=True)
        sid = rpc.open_stream(REPLICATE, {"version": 1})
        rpc.send_data(sid, m.encode_message(m.Hello(b"")))
        rpc.send_data(sid, m.encode_message(m.Notes({f: m.note(0, True) for f in feeds})))
        stream.write(rpc.data_to_send())
        await stream.drain()
        streams.append(stream)  # and never read again

    await asyncio.gather(*(one(first + i) for i in range(count)))
    _print({"ready": "slow-readers", "connected": len(streams), "errors": errors[:5]})
    await _until_stopped(seconds)
    closing = sum(1 for s in streams if s._writer.transport.is_closing())
    for stream in streams:
        stream.abort()
    return {"connected": len(streams), "errors": sorted(set(errors)), "closed_by_pub": closing}


async def oversize(
    address: Address, ws: Address, seed: bytes, index: int, max_ws: int, seconds: float
) -> dict[str, Any]:
    """A member announcing a 1 MiB RPC frame, and a WebSocket message over ``max_ws``,
    again and again; how soon the pub hangs up each time."""
    key = member_key(seed, index)
    frames: list[float | None] = []
    ws_codes: list[int | None] = []
    errors: list[str] = []
    stop = asyncio.Event()

    async def frame_loop() -> None:
        while not stop.is_set():
            try:
                stream, _ = await _handshake(address, key)
            except (TransportError, OSError, TimeoutError) as exc:
                errors.append(type(exc).__name__)
                await asyncio.sleep(RECONNECT_PAUSE)
                continue
            stream.write((1 << 20).to_bytes(4, "big") + b"\x00" * 16)  # 1 MiB announced
            frames.append(await _hung_up_within(stream, 10.0))
            stream.abort()
            await asyncio.sleep(RECONNECT_PAUSE)

    async def ws_loop() -> None:
        async with aiohttp.ClientSession() as session:
            while not stop.is_set():
                try:
                    ws_codes.append(await _ws_oversize(session, ws, key, max_ws))
                except (
                    TransportError,
                    OSError,
                    TimeoutError,
                    TypeError,
                    aiohttp.ClientError,
                ) as exc:
                    errors.append(type(exc).__name__)  # TypeError: closed before msg2/msg4
                await asyncio.sleep(RECONNECT_PAUSE)

    tasks = [asyncio.create_task(frame_loop()), asyncio.create_task(ws_loop())]
    _print({"ready": "oversize"})
    await _until_stopped(seconds)
    stop.set()
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    hung_up = [t for t in frames if t is not None]
    return {
        "frames": len(frames),
        "frames_hung_up": len(hung_up),
        "frame_slowest_hang_up": max(hung_up, default=0.0),
        "ws": len(ws_codes),
        "ws_close_codes": sorted({c for c in ws_codes if c is not None}),
        "errors": sorted(set(errors)),
    }


async def _ws_oversize(
    session: aiohttp.ClientSession, address: Address, key: nacl.signing.SigningKey, max_ws: int
) -> int | None:
    """Secret Handshake over the WebSocket (binary messages), then one message too big."""
    async with asyncio.timeout(HANDSHAKE_TIMEOUT):
        ws = await session.ws_connect(address.websocket_url(), max_msg_size=0, compress=0)
        try:
            shs = ClientHandshake(P2PCREW_NETWORK_KEY, key, address.key)
            await ws.send_bytes(shs.data_to_send())  # msg1
            while not shs.receive_data(await ws.receive_bytes()):
                await ws.send_bytes(shs.data_to_send())  # msg3 after msg2
            await ws.send_bytes(bytes(max_ws + 1))
            async for _ in ws:
                pass
            return ws.close_code
        finally:
            await ws.close()


async def requests(address: Address, seed: bytes, index: int, seconds: float) -> dict[str, Any]:
    """A member sending requests and opening streams as fast as the pub answers, with far
    more outstanding than ``max_streams`` (64)."""
    key = member_key(seed, index)
    answers: dict[str, int] = {}
    sent = [0]
    errors: list[str] = []
    stop = asyncio.Event()
    window = 256

    async def session() -> None:
        stream, _ = await _handshake(address, key)
        rpc = RpcConnection(client=True)
        outstanding = [0]
        room = asyncio.Event()

        async def read() -> None:
            while data := await stream.read():
                for event in rpc.receive_data(data):
                    match event:
                        case ev.ResponseReceived():
                            answers["response"] = answers.get("response", 0) + 1
                        case ev.ErrorReceived(_sid, reason, _msg):
                            answers[reason] = answers.get(reason, 0) + 1
                        case _:
                            continue
                    outstanding[0] -= 1
                    room.set()

        reading = asyncio.create_task(read())
        try:
            methods = (PING, "no.such.method", "stream")
            while not stop.is_set() and not reading.done():
                while outstanding[0] < window:
                    method = methods[sent[0] % len(methods)]
                    if method == "stream":
                        rpc.open_stream("no.such.stream", None)
                    else:
                        rpc.request(method, None)
                    sent[0] += 1
                    outstanding[0] += 1
                stream.write(rpc.data_to_send())
                await stream.drain()
                room.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(room.wait(), 5.0)
        finally:
            reading.cancel()
            stream.abort()

    async def loop() -> None:
        while not stop.is_set():
            try:
                await session()
            except (TransportError, OSError, TimeoutError, RpcProtocolError, RpcUsageError) as exc:
                errors.append(type(exc).__name__)
            await asyncio.sleep(RECONNECT_PAUSE)

    task = asyncio.create_task(loop())
    _print({"ready": "requests"})
    started = time.monotonic()
    await _until_stopped(seconds)
    elapsed = time.monotonic() - started
    stop.set()
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    return {
        "sent": sent[0],
        "per_second": sent[0] / max(elapsed, 1e-9),
        "answers": answers,
        "errors": sorted(set(errors)),
    }


async def invites(address: Address, seconds: float) -> dict[str, Any]:
    """One guest (not a member) repeating ``invite.use`` with made-up secrets."""
    key = nacl.signing.SigningKey.generate()
    answers: dict[str, int] = {}
    errors: list[str] = []
    stop = asyncio.Event()

    async def session() -> None:
        stream, _ = await _handshake(address, key)
        rpc = RpcConnection(client=True)
        try:
            while not stop.is_set():
                rpc.request(INVITE_USE, {"secret": os.urandom(32)})
                stream.write(rpc.data_to_send())
                await stream.drain()
                answered = False
                while not answered:
                    data = await stream.read()
                    if not data:
                        return
                    for event in rpc.receive_data(data):
                        if isinstance(event, ev.ErrorReceived):
                            answers[event.reason] = answers.get(event.reason, 0) + 1
                            answered = True
                        elif isinstance(event, ev.ResponseReceived):
                            answers["accepted"] = answers.get("accepted", 0) + 1
                            answered = True
        finally:
            stream.abort()

    async def loop() -> None:
        while not stop.is_set():
            try:
                await session()
            except (TransportError, OSError, TimeoutError, RpcProtocolError, RpcUsageError) as exc:
                errors.append(type(exc).__name__)
            await asyncio.sleep(RECONNECT_PAUSE)

    task = asyncio.create_task(loop())
    _print({"ready": "invites"})
    await _until_stopped(seconds)
    stop.set()
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    return {"answers": answers, "errors": sorted(set(errors))}


# ---- running the abusers as processes --------------------------------------------------


class Proc:
    """A child process speaking JSON lines: ``ready()`` waits for its first line, ``stop()``
    closes its stdin and returns its last line."""

    def __init__(self, argv: list[str], what: str, logs: Path, fds: int = 4096) -> None:
        from benchmarks.pub_bench import _Lines, _raise_nofile

        self.what = what
        self.log = logs / f"{what}-stderr.txt"
        with self.log.open("wb") as stderr:  # a file: a full pipe would stall the child
            self.proc = subprocess.Popen(
                [sys.executable, *argv],
                cwd=ROOT,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=stderr,
                text=True,
                preexec_fn=_raise_nofile(fds),
            )
        assert self.proc.stdout is not None
        self.lines = _Lines(self.proc.stdout, what)

    def ready(self, timeout: float = 60.0) -> dict[str, Any]:
        answer: dict[str, Any] = json.loads(self.lines.next(timeout))
        return answer

    def stop(self, timeout: float = 30.0) -> dict[str, Any]:
        """Ask it to finish (stdin closed); its final JSON line, or what went wrong."""
        with contextlib.suppress(OSError, ValueError):
            assert self.proc.stdin is not None
            self.proc.stdin.close()
        last: dict[str, Any] = {}
        try:
            while True:
                last = json.loads(self.lines.next(timeout))
        except RuntimeError:
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)
        if not last:
            stderr = self.log.read_text(encoding="utf-8", errors="replace")
            last = {"failed": f"{self.what} exited {self.proc.returncode}: {stderr[-800:]}"}
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        return last

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)


def _abuser(kind: str, settings: dict[str, Any], logs: Path) -> Proc:
    return Proc(["-m", "tests.pub.abuse", kind, json.dumps(settings)], kind, logs)


def _sync(home: Path, address: str, seed: bytes, deadline: float, posts: int, want: bytes) -> Any:
    """A real member's ``sync`` in its own process; its JSON result."""
    argv = [
        sys.executable,
        "-m",
        "benchmarks.pub_load",
        "sync",
        str(home),
        address,
        seed.hex(),
        str(deadline),
        "--posts",
        str(posts),
        "--want",
        want.hex(),  # "" wants nothing more
    ]
    done = subprocess.run(
        argv, cwd=ROOT, capture_output=True, text=True, timeout=deadline + 60, check=False
    )
    if done.returncode != 0:
        return {"ok": False, "seconds": deadline, "errors": [done.stderr[-800:]]}
    return json.loads(done.stdout.strip().splitlines()[-1])


# ---- the whole run ---------------------------------------------------------------------


def _pub_home(home: Path, seed: bytes, sizes: AbuseSizes) -> bytes:
    """Members file listing every key used, and a store holding the bulk feed; returns
    the bulk feed's key."""
    home.mkdir(mode=0o700)
    save_identity(Identity.generate(), home / "secret.json")
    indices = [
        *range(sizes.idle_members + 1),
        WRITER,
        READER,
        BULK,
        REQUESTER,
        OVERSIZER,
        WARM,
        *range(SLOW_READERS_FROM, SLOW_READERS_FROM + sizes.slow_readers),
    ]
    joined = int(time.time() * 1000)
    feeds = [bytes(member_key(seed, i).verify_key) for i in indices]
    write_json_atomic(home / MEMBERS_FILE, _members_document(dict.fromkeys(feeds, joined)))
    bulk = member_key(seed, BULK)
    store = SqliteStore(home)
    try:
        for start in range(0, sizes.bulk_entries, 200):
            batch = min(200, sizes.bulk_entries - start)
            # Opaque bytes, as a crew envelope is to the pub: only the entry is checked.
            store.append(bulk, [os.urandom(BULK_PAYLOAD) for _ in range(batch)])
    finally:
        store.close()
    return bytes(bulk.verify_key)


class _Sampler:
    """The pub's peak VmRSS, sampled on a thread."""

    def __init__(self, read: Callable[[], float]) -> None:
        self.read = read
        self.peak = read()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(RSS_SAMPLE):
            with contextlib.suppress(OSError, ValueError):
                self.peak = max(self.peak, self.read())

    def close(self) -> float:
        self._stop.set()
        self._thread.join(timeout=5)
        return self.peak


def _gauge(metrics: dict[str, float], name: str) -> float:
    return metrics.get(f"p2pcrew_pub_{name}", 0.0)


def _labelled(metrics: dict[str, float], name: str, label: str) -> dict[str, float]:
    """``p2pcrew_pub_NAME{...label="X"...}`` summed by X."""
    prefix = f"p2pcrew_pub_{name}{{"
    out: dict[str, float] = {}
    for key, value in metrics.items():
        if key.startswith(prefix):
            for part in key[len(prefix) : -1].split(","):
                k, _, v = part.partition("=")
                if k == label:
                    out[v.strip('"')] = out.get(v.strip('"'), 0.0) + value
    return out


def run_abuse(sizes: AbuseSizes, tmp: Path, progress: Callable[[str], None]) -> dict[str, Any]:
    """One full run (see the module docstring); everything measured, as a dict."""
    from benchmarks.pub_bench import Crowd, Pub

    seed = os.urandom(32)
    bulk = _pub_home(tmp / "pub", seed, sizes)
    writer_feed = bytes(member_key(seed, WRITER).verify_key)
    fds = sizes.idle_members + sizes.half_open + sizes.slowloris + 4096
    env = {
        "P2PCREW_PUB_MAX_HANDSHAKES": str(sizes.max_handshakes),
        "P2PCREW_PUB_HANDSHAKE_TIMEOUT": str(sizes.handshake_timeout),
        "P2PCREW_PUB_MAX_CONNECTIONS": str(sizes.idle_members + sizes.slow_readers + 256),
    }
    pub = Pub(tmp / "pub", env, fds)
    procs: list[Proc] = []
    crowd: Crowd | None = None
    sampler: _Sampler | None = None
    result: dict[str, Any] = {"sizes": asdict(sizes)}
    try:
        time.sleep(sizes.settle)
        result["base"] = pub.rss_mb()
        sampler = _Sampler(pub.rss_mb)

        progress(f"pub abuse: {sizes.idle_members} idle members")
        crowd = Crowd(pub.address, seed, sizes.idle_members, fds)
        result["crowd"] = crowd.ask(
            {"cmd": "connect", "total": sizes.idle_members, "concurrency": 32, "budget": 120},
            timeout=300,
        )
        time.sleep(sizes.settle)
        result["rss_connections"] = pub.rss_mb()
        result["connections"] = _gauge(pub.metrics(), "peers_connected")

        progress(f"pub abuse: {sizes.half_open} half-open connections")
        flood = Proc(
            [
                "-m",
                "benchmarks.pub_load",
                "flood",
                pub.address,
                str(sizes.half_open),
                str(sizes.abuse_seconds),
                "--until-stdin-closes",
            ],
            "flood",
            tmp,
            sizes.half_open + 512,
        )
        procs.append(flood)
        result["flood_start"] = flood.ready()
        time.sleep(sizes.settle + 1.0)
        result["rss_handshakes"] = pub.rss_mb()
        result["handshakes"] = _gauge(pub.metrics(), "handshakes_in_flight")

        progress("pub abuse: a member reads the bulk feed once (warms the store's cache)")
        result["warm"] = _sync(tmp / "warm", pub.address, _seed(seed, WARM), 120.0, 0, bulk)
        time.sleep(sizes.settle)
        result["rss_warm"] = pub.rss_mb()
        result["store_mb"] = sum(f.stat().st_size for f in (tmp / "pub").glob("*.sqlite3*")) / MB

        progress(f"pub abuse: {sizes.slow_readers} slow readers")
        slow = _abuser(
            "slow-readers",
            {
                "address": pub.address,
                "seed": seed.hex(),
                "first": SLOW_READERS_FROM,
                "count": sizes.slow_readers,
                "feeds": [bulk.hex()],
                "seconds": sizes.abuse_seconds,
            },
            tmp,
        )
        procs.append(slow)
        result["slow_start"] = slow.ready()
        time.sleep(sizes.settle + 2.0)
        result["rss_slow"] = pub.rss_mb()

        progress("pub abuse: slowloris, oversized frames, request and invite floods")
        ws = pub.ws
        others = {
            "slowloris": {
                "address": pub.address,
                "count": sizes.slowloris,
                "interval": 2.0,
                "seconds": sizes.abuse_seconds,
            },
            "oversize": {
                "address": pub.address,
                "ws": ws,
                "seed": seed.hex(),
                "index": OVERSIZER,
                "max_ws": 262144,
                "seconds": sizes.abuse_seconds,
            },
            "requests": {
                "address": pub.address,
                "seed": seed.hex(),
                "index": REQUESTER,
                "seconds": sizes.abuse_seconds,
            },
            "invites": {"address": pub.address, "seconds": sizes.abuse_seconds},
        }
        started = {}
        for kind, settings in others.items():
            proc = _abuser(kind, settings, tmp)
            procs.append(proc)
            started[kind] = proc
        for kind, proc in started.items():
            result[f"{kind}_start"] = proc.ready()
        time.sleep(sizes.settle)

        progress(f"pub abuse: a real member pushes {sizes.posts} entries, another fetches them")
        result["writer"] = _sync(
            tmp / "writer", pub.address, _seed(seed, WRITER), 60.0, sizes.posts, b""
        )
        result["reader"] = _sync(
            tmp / "reader", pub.address, _seed(seed, READER), 60.0, 0, writer_feed
        )
        during = pub.metrics()
        result["metrics_during"] = {
            "handshakes_in_flight": _gauge(during, "handshakes_in_flight"),
            "peers_connected": _gauge(during, "peers_connected"),
            "event_loop_lag_seconds": _gauge(during, "event_loop_lag_seconds"),
        }

        progress("pub abuse: the abusers leave")
        for proc in procs:
            result[f"{proc.what}_result"] = proc.stop()
        procs.clear()
        crowd.stop()
        crowd = None
        result["peak"] = sampler.close()
        sampler = None
        result["drained_after"] = _await_quiet(pub, 60.0)
        time.sleep(TRIM_INTERVAL + sizes.settle)  # the pub gives freed memory back
        result["after"] = pub.rss_mb()
        final = pub.metrics()
        result["handshake_outcomes"] = _labelled(final, "handshakes_total", "outcome")
        result["peers_closed"] = _labelled(final, "peers_closed_total", "reason")
        result["invite_outcomes"] = _labelled(final, "invite_redemptions_total", "outcome")
        result["ws_too_big"] = _gauge(final, "ws_messages_too_big_total")
        result["log"] = _log_reasons(tmp / "pub" / "logs" / "p2pcrew.log")
        return result
    finally:
        if sampler is not None:
            sampler.close()
        for proc in procs:
            proc.kill()
        if crowd is not None:
            crowd.stop()
        pub.stop()


def _seed(seed: bytes, index: int) -> bytes:
    """The 32-byte seed behind ``member_key(seed, index)``, for ``Identity.from_seed``."""
    return bytes(member_key(seed, index))


def _await_quiet(pub: Any, limit: float) -> float:
    """Seconds until the pub has no peer and no handshake left (``limit`` if never)."""
    started = time.monotonic()
    while time.monotonic() - started < limit:
        metrics = pub.metrics()
        if not _gauge(metrics, "peers_connected") and not _gauge(metrics, "handshakes_in_flight"):
            return time.monotonic() - started
        time.sleep(0.25)
    return limit


def _log_reasons(path: Path) -> dict[str, int]:
    """How often the pub's log names each refusal (it logs the exception's own words)."""
    words = {
        "frame-too-large": "FrameTooLarge",
        "ws-too-big": "over max_ws_message",
        "handshake-failed": "handshake from",
    }
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return {}
    return {name: text.count(needle) for name, needle in words.items()}


# ---- command line (one abuser per process) --------------------------------------------------


def main() -> None:
    kind, settings = sys.argv[1], json.loads(sys.argv[2])
    address = parse_address(settings["address"])
    seconds = float(settings["seconds"])
    if kind == "slowloris":
        outcome = slowloris(address, settings["count"], settings["interval"], seconds)
    elif kind == "slow-readers":
        feeds = [bytes.fromhex(f) for f in settings["feeds"]]
        seed = bytes.fromhex(settings["seed"])
        outcome = slow_readers(address, seed, settings["first"], settings["count"], feeds, seconds)
    elif kind == "oversize":
        ws = parse_address(settings["ws"])
        seed = bytes.fromhex(settings["seed"])
        outcome = oversize(address, ws, seed, settings["index"], settings["max_ws"], seconds)
    elif kind == "requests":
        outcome = requests(address, bytes.fromhex(settings["seed"]), settings["index"], seconds)
    elif kind == "invites":
        outcome = invites(address, seconds)
    else:
        raise SystemExit(f"unknown abuser {kind!r}")
    _print(asyncio.run(outcome))


if __name__ == "__main__":
    main()
