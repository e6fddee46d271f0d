"""Replication between two processes over an encrypted loopback connection.

Full stack on both ends: Secret Handshake, box-stream, RPC with flow control,
validation on a worker pool, durable SQLite storage. Figures:

* entries/s for B to replicate A's feed (100,000 entries of ~300 bytes; quick: 5,000),
  as a ratio to raw single-core Ed25519 verification measured just before each run;
* peak resident memory of each process;
* bytes each way when two peers that already share 1,000 feeds reconnect (a TCP
  relay in this process counts them), target under 2 KB each way.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import sys
from pathlib import Path

from benchmarks import Context, Measure, Row, paired_row
from p2pcrew.feed.identity import Identity, save_identity
from p2pcrew.feed.sqlite_store import SqliteStore

GROUP = "replication"
ROW_NAMES = (
    "replicate entries/s, 2 processes",
    "replicate peak memory, sender",
    "replicate peak memory, receiver",
    "in-sync reconnect, bytes A->B",
    "in-sync reconnect, bytes B->A",
)
ROOT = Path(__file__).resolve().parents[1]
PAYLOAD = bytes(range(256)) + b"p2pcrew-benchmark-payload-" + bytes(18)  # ~300 bytes


def _build_source(home: Path, count: int) -> None:
    home.mkdir(parents=True)
    identity = Identity.generate()
    save_identity(identity, home / "secret.json")
    store = SqliteStore(home)
    for start in range(0, count, 1000):
        n = min(1000, count - start)
        store.append(
            identity.signing_key, [PAYLOAD + i.to_bytes(4, "big") for i in range(start, start + n)]
        )
    store.close()


def _source(ctx: Context, count: int) -> Path:
    cache = ctx.config.cache_dir
    if cache is not None:
        cached = cache / f"replication-source-v1-{count}"
        if not (cached / "p2pcrew.sqlite3").exists():
            ctx.progress(f"building a {count:,}-entry source store (cached for next runs)")
            shutil.rmtree(cached, ignore_errors=True)
            _build_source(cached, count)
        return cached
    raise RuntimeError("replication benchmark needs a cache dir")  # pragma: no cover


class _Peer:
    def __init__(self, home: Path) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "benchmarks.peer_runner", "serve", str(home)],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        self.address = self.proc.stdout.readline().strip()

    def stop(self) -> dict[str, float]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.close()
        out = self.proc.stdout.read()
        self.proc.wait(timeout=60)
        lines = [line for line in out.splitlines() if line.startswith("{")]
        return json.loads(lines[-1]) if lines else {}


def _sync(home: Path, address: str) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, "-m", "benchmarks.peer_runner", "sync", str(home), address],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
        check=True,
    )
    result: dict[str, float] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def _replicate_once(
    ctx: Context, source: Path, count: int, memory: dict[str, list[float]]
) -> float:
    with ctx.tempdir() as tmp:
        sender_home = tmp / "a"
        shutil.copytree(source, sender_home)
        peer = _Peer(sender_home)
        try:
            result = _sync(tmp / "b", peer.address)
        finally:
            sender = peer.stop()
        if result["received"] != count:
            raise RuntimeError(f"received {result['received']} of {count}: {result.get('error')}")
        memory["sender"].append(sender.get("peak_mb", 0.0))
        memory["receiver"].append(result["peak_mb"])
        return count / result["seconds"]


async def _relay(target_host: str, target_port: int, counts: list[int]) -> asyncio.Server:
    async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, index: int) -> None:
        try:
            while data := await reader.read(65536):
                counts[index] += len(data)
                writer.write(data)
                await writer.drain()
        finally:
            writer.close()

    async def handle(client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        server_r, server_w = await asyncio.open_connection(target_host, target_port)
        await asyncio.gather(pipe(client_r, server_w, 1), pipe(server_r, client_w, 0))

    return await asyncio.start_server(handle, "127.0.0.1", 0)


def _shared_feeds(tmp: Path, feeds: int) -> tuple[Path, Path]:
    homes = (tmp / "a", tmp / "b")
    stores = []
    for home in homes:
        home.mkdir()
        save_identity(Identity.generate(), home / "secret.json")
        stores.append(SqliteStore(home))
    for _ in range(feeds):
        author = Identity.generate()
        [entry] = stores[0].append(author.signing_key, [PAYLOAD])
        stores[1].ingest([(entry.header, PAYLOAD)])
    for store in stores:
        store.close()
    return homes


def _reconnect_bytes(ctx: Context, feeds: int) -> tuple[int, int]:
    with ctx.tempdir() as tmp:
        a_home, b_home = _shared_feeds(tmp, feeds)
        peer = _Peer(a_home)
        try:
            _sync(b_home, peer.address)  # first meeting: clocks are exchanged and kept
            host_port, _, key = peer.address.partition("#")
            host, port = host_port.removeprefix("tcp://").rsplit(":", 1)
            counts = [0, 0]

            async def measure() -> None:
                relay = await _relay(host, int(port), counts)
                relay_port = relay.sockets[0].getsockname()[1]
                await asyncio.to_thread(_sync, b_home, f"tcp://127.0.0.1:{relay_port}#{key}")
                relay.close()

            asyncio.run(measure())
        finally:
            peer.stop()
        return counts[0], counts[1]


def run(ctx: Context) -> list[Row]:
    count = 5_000 if ctx.config.quick else 100_000
    source = _source(ctx, count)
    memory: dict[str, list[float]] = {"sender": [], "receiver": []}
    values, ratios = ctx.repeat_vs(
        f"replicate {count:,} entries",
        lambda: _replicate_once(ctx, source, count, memory),
        ctx.limits.verify_1t,
    )
    feeds = 100 if ctx.config.quick else 1000
    a_to_b, b_to_a = _reconnect_bytes(ctx, feeds)
    note = f"{count:,} entries of ~300 bytes, handshake to in-sync, validated and stored"
    return [
        paired_row(ROW_NAMES[0], values, ratios, "entries/s", ctx.limits.verify_1t, note),
        Row(
            ROW_NAMES[1],
            Measure(tuple(memory["sender"])).median,
            "MB",
            None,
            None,
            "peak RSS incl. verify worker processes, median",
        ),
        Row(
            ROW_NAMES[2],
            Measure(tuple(memory["receiver"])).median,
            "MB",
            None,
            None,
            "peak RSS incl. verify worker processes, median",
        ),
        Row(
            ROW_NAMES[3],
            a_to_b,
            "bytes",
            None,
            None,
            f"{feeds:,} shared feeds; target < 2048; incl. handshake",
        ),
        Row(
            ROW_NAMES[4],
            b_to_a,
            "bytes",
            None,
            None,
            f"{feeds:,} shared feeds; target < 2048; incl. handshake",
        ),
    ]
