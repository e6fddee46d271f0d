"""Load generator for the pub benchmark: many light members in one process, on loopback.

``python -m benchmarks.pub_load members ADDRESS SEED_HEX PUBLISHER_INDEX`` reads one JSON
command per line on stdin and answers each with one JSON line on stdout:

* ``{"cmd": "connect", "total": N, "concurrency": C, "budget": S}`` - open members
  ``0..N-1`` (those not open yet), C at a time, until N are connected and ready or S
  seconds have passed; answers how many are connected, failures, skipped, seconds;
* ``{"cmd": "fanout", "entries": E, "watchers": W}`` - the publisher member signs E new
  entries one at a time and pushes each to the pub; for each, the time until each of the
  first W connected members receives it in an ENTRIES message (milliseconds);
* ``{"cmd": "quit"}`` - hang up on everything and exit.

``python -m benchmarks.pub_load flood ADDRESS COUNT SECONDS [--until-stdin-closes]`` keeps
COUNT half-open connections (half a handshake message 1 sent, then silence) against the pub
for SECONDS (or until stdin closes): a connection the pub closes is reopened after
``REOPEN_PAUSE``. Prints one JSON line when every connection has been dialled, and one
with the counts at the end.

``python -m benchmarks.pub_load sync HOME ADDRESS SEED_HEX DEADLINE [--posts N] [--want
FEED_HEX,...]`` is a real member (``Node``, as ``p2pcrew sync`` runs it) with N entries of
its own (default 1), replicating the wanted feeds too, that retries ``sync_with`` until it
completes or DEADLINE seconds pass. Prints one JSON line (with the seq it holds of each
wanted feed).

Members are real: the benchmark registered their feed ids in the pub's members file, and
every connection completes the Secret Handshake as that member (``client_handshake``),
opens the ``replicate`` stream, sends HELLO and NOTES asking the pub to push the
publisher's feed, answers pings and pings every ``KEEPALIVE_SECONDS`` like a ``PeerLink``.
Each is a bare ``RpcConnection`` over a ``SecureStream`` with one reading task: no store,
no engine, so the load generator stays small (the pub's memory is what is measured).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import resource
import sys
import time
from pathlib import Path
from typing import Any, Final

import nacl.signing

from p2pcrew.feed.content import Post, encode_content, now_ms
from p2pcrew.feed.entry import create_entry, decode_entry, lipmaa
from p2pcrew.feed.identity import Identity, save_identity
from p2pcrew.feed.sqlite_store import SqliteStore
from p2pcrew.replicate import messages as m
from p2pcrew.replicate import rpc_states as ev
from p2pcrew.replicate.address import Address, parse_address
from p2pcrew.replicate.node import Node
from p2pcrew.replicate.peer import PING, REPLICATE
from p2pcrew.replicate.rpc import RpcConnection
from p2pcrew.replicate.rpc_errors import RpcProtocolError, RpcUsageError
from p2pcrew.replicate.secure_stream import SecureStream, client_handshake
from p2pcrew.replicate.shs import P2PCREW_NETWORK_KEY, ClientHandshake
from p2pcrew.replicate.transport_errors import TransportError

HANDSHAKE_TIMEOUT: Final = 30.0
READY_TIMEOUT: Final = 60.0
"""Seconds for the pub to answer our HELLO, NOTES and ping after the handshake."""
IDLE_READ_TIMEOUT: Final = 3600.0
KEEPALIVE_SECONDS: Final = 20.0
CONNECT_ATTEMPTS: Final = 4
RETRY_PAUSE: Final = 0.2
FANOUT_TIMEOUT: Final = 20.0
"""Seconds to wait for every watcher to receive one published entry."""
FANOUT_GAP: Final = 0.3
REOPEN_PAUSE: Final = 1.0
"""Seconds a flood connection waits before reopening after the pub closed it."""
MAX_FLOOD_ATTEMPTS: Final = 60_000
REFUSED_WITHIN: Final = 1.0
"""A flood connection the pub closes sooner than this was refused at the gate."""


def member_key(seed: bytes, index: int) -> nacl.signing.SigningKey:
    """Member ``index``'s key, the same in the benchmark and here."""
    material = hashlib.blake2b(index.to_bytes(8, "big"), key=seed, digest_size=32).digest()
    return nacl.signing.SigningKey(material)


def raise_fd_limit(wanted: int) -> int:
    """Raise the soft open-files limit towards ``wanted`` (capped by the hard limit)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft != resource.RLIM_INFINITY and soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        return target
    return soft


def _print(doc: dict[str, Any]) -> None:
    print(json.dumps(doc), flush=True)


# ---- a light member -----------------------------------------------------------------


class LightMember:
    """One member connection: replicate stream, HELLO, NOTES, pings; records arrivals."""

    def __init__(self, stream: SecureStream, own: bytes, watch: bytes, arrivals: Arrivals) -> None:
        self.stream = stream
        self.own = own
        self.watch = watch
        self.arrivals = arrivals
        self.rpc = RpcConnection(client=True)
        self.sid = 0
        self.ready = asyncio.Event()
        self.closed = asyncio.Event()
        self.close_reason = ""
        self._ready_ping = 0
        self._pub_notes = False
        self._ping_answered = False
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self.stream.timeout = IDLE_READ_TIMEOUT
        self.sid = self.rpc.open_stream(REPLICATE, {"version": 1})
        self.rpc.send_data(self.sid, m.encode_message(m.Hello(b"")))
        notes = {self.watch: m.note(0, True), self.own: m.note(0, False)}  # own wins
        self.rpc.send_data(self.sid, m.encode_message(m.Notes(notes)))
        # Answered only after the pub handled our HELLO and NOTES (it reads in order).
        self._ready_ping = self.rpc.request(PING, None)
        self._task = asyncio.create_task(self._read_loop())
        await self.flush()

    async def flush(self) -> None:
        data = self.rpc.data_to_send()
        if data:
            self.stream.write(data)
            await self.stream.drain()

    async def ping(self) -> None:
        with contextlib.suppress(RpcUsageError, TransportError, OSError):
            self.rpc.request(PING, None)
            await self.flush()

    async def send_entries(self, items: list[tuple[bytes, bytes | None]]) -> None:
        self.rpc.send_data(self.sid, m.encode_message(m.Entries(items)))
        await self.flush()

    def abort(self) -> None:
        self.stream.abort()
        if self._task is not None:
            self._task.cancel()

    async def _read_loop(self) -> None:
        try:
            while True:
                data = await self.stream.read()
                arrived = time.perf_counter()
                for event in self.rpc.receive_data(data):
                    self._handle(event, arrived)
                await self.flush()
                if not data:
                    return
        except (TransportError, RpcProtocolError, RpcUsageError, OSError) as exc:
            self.close_reason = f"{type(exc).__name__}: {exc}"
        except m.BadReplicationMessage as exc:
            self.close_reason = f"bad message from the pub: {exc}"
        finally:
            self.closed.set()
            self.ready.set()  # wake a waiter; it checks ``closed``
            self.stream.abort()

    def _handle(self, event: Any, arrived: float) -> None:
        match event:
            case ev.DataReceived(stream_id, body, flow_bytes):
                if stream_id == self.sid:
                    message = m.decode_message(body)
                    if isinstance(message, m.Notes):
                        self._pub_notes = True
                        self._check_ready()
                    elif isinstance(message, m.Entries):
                        for header, _ in message.items:
                            entry = decode_entry(header)
                            self.arrivals.record(self, entry.author, entry.seq, arrived)
                self.rpc.consume(stream_id, flow_bytes)
            case ev.RequestReceived(stream_id, method, _body):
                if method == PING:
                    self.rpc.respond(stream_id, None)
                else:
                    self.rpc.send_error(stream_id, "unknown-method", f"no method {method!r}")
            case ev.ResponseReceived(stream_id, _body):
                if stream_id == self._ready_ping:
                    self._ping_answered = True
                    self._check_ready()
            case ev.ErrorReceived(_sid, reason, message):
                self.close_reason = f"pub error: {reason}: {message}"
            case ev.GoodbyeReceived():
                with contextlib.suppress(RpcUsageError):
                    self.rpc.goodbye()
            case _:
                pass

    def _check_ready(self) -> None:
        if self._pub_notes and self._ping_answered:
            self.ready.set()


class Arrivals:
    """When each watched member received (author, seq)."""

    def __init__(self) -> None:
        self.times: dict[tuple[bytes, int], dict[int, float]] = {}
        self.wanted: dict[tuple[bytes, int], asyncio.Event] = {}
        self.watchers: dict[int, int] = {}
        """id(member) to its index among the watchers."""
        self.expected = 0

    def expect(self, author: bytes, seq: int, watchers: list[LightMember]) -> asyncio.Event:
        self.watchers = {id(w): i for i, w in enumerate(watchers)}
        self.expected = len(watchers)
        self.times[(author, seq)] = {}
        done = self.wanted[(author, seq)] = asyncio.Event()
        return done

    def record(self, member: LightMember, author: bytes, seq: int, arrived: float) -> None:
        slot = self.times.get((author, seq))
        index = self.watchers.get(id(member))
        if slot is None or index is None or index in slot:
            return
        slot[index] = arrived
        if len(slot) >= self.expected:
            self.wanted[(author, seq)].set()


# ---- the members process --------------------------------------------------------------


class Crowd:
    def __init__(self, address: Address, seed: bytes, publisher_index: int) -> None:
        self.address = address
        self.seed = seed
        self.publisher_key = member_key(seed, publisher_index)
        self.publisher_feed = bytes(self.publisher_key.verify_key)
        self.members: dict[int, LightMember] = {}
        self.arrivals = Arrivals()
        self.publisher: LightMember | None = None
        self.published: list[bytes] = []
        """Ids of the publisher's entries, seq 1 first."""

    async def open(self, key: nacl.signing.SigningKey) -> LightMember:
        """Dial, handshake as ``key``, start replicating; wait until the pub answered."""
        reader, writer = await asyncio.open_connection(self.address.host, self.address.port)
        stream = await client_handshake(
            reader,
            writer,
            P2PCREW_NETWORK_KEY,
            key,
            self.address.key,
            timeout=HANDSHAKE_TIMEOUT,
        )
        member = LightMember(stream, bytes(key.verify_key), self.publisher_feed, self.arrivals)
        await member.start()
        try:
            await asyncio.wait_for(member.ready.wait(), READY_TIMEOUT)
        except TimeoutError:
            member.abort()
            raise
        if member.closed.is_set():
            raise TransportError(f"the pub hung up: {member.close_reason or 'no reason'}")
        return member

    async def connect(self, total: int, concurrency: int, budget: float) -> dict[str, Any]:
        """Open members until ``total`` are connected, or ``budget`` seconds have passed
        (connections already dialling then finish; the rest are skipped)."""
        started = time.perf_counter()
        deadline = started + budget
        failures: list[str] = []
        skipped = [0]
        gate = asyncio.Semaphore(concurrency)

        async def one(index: int) -> None:
            key = member_key(self.seed, index)
            error = ""
            for attempt in range(CONNECT_ATTEMPTS):
                async with gate:
                    if time.perf_counter() > deadline:
                        skipped[0] += 1
                        return
                    try:
                        self.members[index] = await self.open(key)
                        return
                    except (TransportError, OSError, TimeoutError) as exc:
                        error = f"{type(exc).__name__}: {exc}"
                await asyncio.sleep(RETRY_PAUSE * (attempt + 1))
            failures.append(error)

        before = len(self.members)
        todo = [i for i in range(total) if i not in self.members]
        await asyncio.gather(*(one(i) for i in todo))
        live = sum(1 for member in self.members.values() if not member.closed.is_set())
        return {
            "connected": live,
            "new": len(self.members) - before,
            "failed": len(failures),
            "skipped": skipped[0],
            "errors": sorted(set(failures))[:5],
            "seconds": time.perf_counter() - started,
        }

    async def keepalive(self) -> None:
        """Ping like a ``PeerLink`` does, so the pub's idle timeout never fires."""
        while True:
            await asyncio.sleep(KEEPALIVE_SECONDS)
            members = list(self.members.values())
            if self.publisher is not None:
                members.append(self.publisher)
            for member in members:
                if not member.closed.is_set():
                    await member.ping()

    async def fanout(self, entries: int, watchers: int) -> dict[str, Any]:
        if self.publisher is None:
            self.publisher = await self.open(self.publisher_key)
        watching = [w for w in self.members.values() if not w.closed.is_set()][:watchers]
        per_entry: list[list[float]] = []
        missing = 0
        for _ in range(entries):
            seq = len(self.published) + 1
            backlink = self.published[-1] if self.published else None
            lip = self.published[lipmaa(seq) - 1] if seq > 1 else None
            payload = encode_content(Post(time=now_ms(), text=f"fan-out probe {seq}"))
            entry = create_entry(self.publisher_key, seq, backlink, lip, payload)
            self.published.append(entry.id)
            done = self.arrivals.expect(self.publisher_feed, seq, watching)
            sent = time.perf_counter()
            await self.publisher.send_entries([(entry.header, payload)])
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(done.wait(), FANOUT_TIMEOUT)
            times = self.arrivals.times[(self.publisher_feed, seq)]
            missing += len(watching) - len(times)
            per_entry.append(sorted((t - sent) * 1000 for t in times.values()))
            await asyncio.sleep(FANOUT_GAP)
        return {
            "watchers": len(watching),
            "latencies_ms": per_entry,
            "missing": missing,
            "publisher_closed": self.publisher.closed.is_set(),
        }

    def close(self) -> None:
        for member in self.members.values():
            member.abort()
        if self.publisher is not None:
            self.publisher.abort()


async def _members_main(address: Address, seed: bytes, publisher_index: int) -> None:
    crowd = Crowd(address, seed, publisher_index)
    keepalive = asyncio.create_task(crowd.keepalive())
    loop = asyncio.get_running_loop()
    try:
        while True:
            line = await loop.run_in_executor(None, sys.stdin.readline)
            if not line:
                break
            command = json.loads(line)
            match command["cmd"]:
                case "connect":
                    limit = raise_fd_limit(command["total"] + 256)
                    result = await crowd.connect(
                        command["total"], command["concurrency"], command["budget"]
                    )
                    _print({**result, "fd_limit": limit, "rss_mb": rss_mb(os.getpid())})
                case "fanout":
                    _print(await crowd.fanout(command["entries"], command["watchers"]))
                case _:
                    break
    finally:
        keepalive.cancel()
        crowd.close()
        _print({"bye": True})


# ---- the half-open flood --------------------------------------------------------------


async def _flood(
    address: Address, count: int, seconds: float, *, until_stdin_closes: bool = False
) -> dict[str, Any]:
    """``count`` half-open connections, each reopened when the pub closes it; for
    ``seconds``, or (``until_stdin_closes``) until our stdin closes, if sooner."""
    raise_fd_limit(count + 256)
    host, port = address.host, address.port
    half = ClientHandshake(
        P2PCREW_NETWORK_KEY, nacl.signing.SigningKey.generate(), address.key
    ).data_to_send()[:32]
    deadline = time.monotonic() + seconds
    counts = {"attempts": 0, "connect_errors": 0, "closed_fast": 0, "held": 0, "timed_out": 0}
    open_now = [0]
    peak = [0]
    first_dials: set[int] = set()
    dialled = asyncio.Event()

    async def slot() -> None:
        while time.monotonic() < deadline and counts["attempts"] < MAX_FLOOD_ATTEMPTS:
            counts["attempts"] += 1
            try:
                reader, writer = await asyncio.open_connection(host, port)
            except OSError:
                counts["connect_errors"] += 1
                first_dials.add(id(asyncio.current_task()))
                if len(first_dials) >= count:
                    dialled.set()
                await asyncio.sleep(REOPEN_PAUSE)
                continue
            opened = time.monotonic()
            first_dials.add(id(asyncio.current_task()))
            if len(first_dials) >= count:
                dialled.set()
            open_now[0] += 1
            peak[0] = max(peak[0], open_now[0])
            try:
                writer.write(half)
                left = max(0.0, deadline - time.monotonic())
                with contextlib.suppress(OSError, TimeoutError):
                    await asyncio.wait_for(reader.read(1024), left)
            finally:
                open_now[0] -= 1
                writer.transport.abort()
            lived = time.monotonic() - opened
            if time.monotonic() >= deadline:
                counts["held"] += 1
            elif lived < REFUSED_WITHIN:
                counts["closed_fast"] += 1
            else:
                counts["timed_out"] += 1
            await asyncio.sleep(REOPEN_PAUSE)

    async def announce() -> None:
        """One line once every slot has dialled: the flood is on."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(dialled.wait(), seconds)
        _print({"flooding": counts["attempts"], "open": open_now[0]})

    started = time.perf_counter()
    flooding = asyncio.gather(announce(), *(slot() for _ in range(count)))
    if until_stdin_closes:
        stop = asyncio.create_task(_stdin_closed())
        await asyncio.wait([flooding, stop], return_when=asyncio.FIRST_COMPLETED)
        flooding.cancel()
        stop.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await flooding
    return {**counts, "peak_open": peak[0], "seconds": time.perf_counter() - started}


async def _stdin_closed() -> None:
    """Returns when stdin reaches EOF (the harness's way of saying "stop")."""
    loop = asyncio.get_running_loop()
    while await loop.run_in_executor(None, sys.stdin.readline):
        pass


# ---- a real member's sync, retried ---------------------------------------------------


def _member_node(home: Path, seed: bytes, posts: int = 1, want: list[bytes] | None = None) -> Node:
    """A member's data directory with ``posts`` entries of its own to push to the pub,
    replicating the feeds in ``want`` too."""
    home.mkdir(parents=True, exist_ok=True)
    identity = Identity.from_seed(seed)
    secret = home / "secret.json"
    if not secret.exists():
        save_identity(identity, secret)
    store = SqliteStore(home)
    if posts and not store.latest_seqs():
        payloads = [encode_content(Post(time=now_ms(), text=f"hello {i}")) for i in range(posts)]
        store.append(identity.signing_key, payloads)
    node = Node(store, identity)
    if want:
        node.add_feeds(want)
    return node


async def _sync(
    node: Node, address: Address, deadline: float, want: list[bytes] | None = None
) -> dict[str, Any]:
    await node.start()
    started = time.perf_counter()
    attempts = 0
    errors: list[str] = []
    done = False
    sent = 0
    try:
        while not done and time.perf_counter() - started < deadline:
            attempts += 1
            left = deadline - (time.perf_counter() - started)
            try:
                link = await node.sync_with(address, timeout=max(1.0, left))
            except (TransportError, OSError, TimeoutError) as exc:
                errors.append(type(exc).__name__)
                await asyncio.sleep(0.1)
                continue
            sent += link.entries_sent
            done = not link.close_reason
            if not done:
                errors.append(link.close_reason[:80])
    finally:
        await node.close()
        held = node.store.latest_seqs()
        node.store.close()
    return {
        "ok": done,
        "seconds": time.perf_counter() - started,
        "attempts": attempts,
        "entries_sent": sent,
        "held": {feed.hex(): held.get(feed, 0) for feed in want or []},
        "errors": sorted(set(errors))[:5],
    }


def rss_mb(pid: int) -> float:
    """Resident memory of ``pid`` now (VmRSS), in MB."""
    with open(f"/proc/{pid}/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def main() -> None:
    mode, args = sys.argv[1], sys.argv[2:]
    if mode == "members":
        asyncio.run(_members_main(parse_address(args[0]), bytes.fromhex(args[1]), int(args[2])))
    elif mode == "flood":
        until = "--until-stdin-closes" in args[3:]
        flood = _flood(
            parse_address(args[0]), int(args[1]), float(args[2]), until_stdin_closes=until
        )
        _print(asyncio.run(flood))
    elif mode == "sync":
        options = dict(zip(args[4::2], args[5::2], strict=True))
        posts = int(options.get("--posts", "1"))
        want = [bytes.fromhex(f) for f in options.get("--want", "").split(",") if f]
        node = _member_node(Path(args[0]), bytes.fromhex(args[2]), posts, want)
        _print(asyncio.run(_sync(node, parse_address(args[1]), float(args[3]), want)))
    else:
        raise SystemExit(f"unknown mode {mode!r}")


if __name__ == "__main__":
    main()
