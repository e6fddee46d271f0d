"""One benchmark peer in its own process: ``serve`` or ``sync``, full stack.

Run as ``python -m benchmarks.peer_runner serve HOME`` (prints its address, then
serves until stdin closes) or ``... sync HOME ADDRESS`` (prints one JSON line with
the entries received, the seconds from dialling to in-sync, and peak memory).
Both replicate every feed their store holds plus the other's feed, so the figure
measures replication, not scope rules.
"""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import os
import resource
import sys
import time
from pathlib import Path

from p2pcrew.feed.identity import Identity, load_identity, save_identity
from p2pcrew.feed.sqlite_store import SqliteStore
from p2pcrew.replicate.address import Address, parse_address
from p2pcrew.replicate.node import Node


def _node(home: Path) -> Node:
    secret = home / "secret.json"
    if not secret.exists():
        save_identity(Identity.generate(), secret)
    node = Node(SqliteStore(home), load_identity(secret))
    node.add_feeds(node.store.latest_seqs())
    return node


def _peak_mb() -> float:
    """This peer's peak RSS plus its verify worker processes' peaks.

    VmHWM, not getrusage's ru_maxrss: Linux carries ru_maxrss across fork and exec,
    so a peer started by a benchmark process holding 370 MB of fixtures reported
    370 MB whatever it used itself. VmHWM belongs to the exec'd image alone.
    """
    peers = [os.getpid()] + [child.pid for child in multiprocessing.active_children()]
    return sum(_peak_of(pid) for pid in peers)


def _peak_of(pid: int | None) -> float:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        if pid == os.getpid():
            return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        return 0.0
    for line in status.splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


async def serve(home: Path) -> None:
    node = _node(home)
    await node.start()
    host, port = await node.listen("127.0.0.1", 0)
    print(Address("tcp", host, port, node.identity.public_key), flush=True)
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, sys.stdin.read)  # until the parent closes stdin
    await node.close()
    print(json.dumps({"peak_mb": _peak_mb()}), flush=True)


async def sync(home: Path, address: Address) -> None:
    node = _node(home)
    node.add_feeds([address.key])
    await node.start()
    before = sum(node.store.latest_seqs().values())
    started = time.perf_counter()
    link = await node.sync_with(address, timeout=600)
    seconds = time.perf_counter() - started
    received = sum(node.store.latest_seqs().values()) - before
    await node.close()
    print(
        json.dumps(
            {
                "received": received,
                "seconds": seconds,
                "peak_mb": _peak_mb(),
                "error": link.close_reason,
            }
        ),
        flush=True,
    )


def main() -> None:
    mode, home = sys.argv[1], Path(sys.argv[2])
    if mode == "serve":
        asyncio.run(serve(home))
    else:
        asyncio.run(sync(home, parse_address(sys.argv[3])))


if __name__ == "__main__":
    main()
