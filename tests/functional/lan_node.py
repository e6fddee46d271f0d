"""A p2pcrew node with LAN discovery, started the way ``serve --lan`` will start it.

Run inside a test namespace (``ip netns exec NS python -m tests.functional.lan_node``):

- ``node --home DIR --listen HOST:PORT [--quiet-timeout S]``: open the store, listen,
  start ``start_lan_discovery`` exactly as ``serve`` will, print what it says, run
  until SIGTERM, shut down cleanly. On the way out it prints the largest event-loop
  stall it measured (``max-loop-lag S``) and the threads still alive after the loop
  closed (``threads-left [...]``), so the test can fail a blocking loop or a leaked
  thread. ``--clock-speed X --clock-epoch T`` runs discovery's wall clock X times
  faster from T (the same T for every node), to watch announcements rotate.
- ``observe``: an outsider on the same LAN. Browses ``_p2pcrew._tcp.local.`` and prints
  every resolved announcement as one JSON line (``seen {...}``): instance name, host
  name, TXT bytes as hex, addresses, port.

Every line goes to stdout, flushed, so the test can read the file it is redirected to;
log records go to stderr prefixed ``log``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import signal
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

from zeroconf import IPVersion, ServiceStateChange, Zeroconf
from zeroconf.asyncio import AsyncServiceBrowser, AsyncServiceInfo, AsyncZeroconf

from p2pcrew.feed.ids import feed_id_to_text
from p2pcrew.home import Home
from p2pcrew.replicate.address import Address
from p2pcrew.replicate.discovery import LanDiscovery, start_lan_discovery
from p2pcrew.replicate.discovery_tags import SERVICE_TYPE
from p2pcrew.replicate.node import Node

LAG_PROBE = 0.05


def say(text: str) -> None:
    print(text, flush=True)


async def _until_stopped() -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()


class LagMonitor:
    """Measures how late the loop wakes a sleeping task: a blocked loop shows up here."""

    def __init__(self) -> None:
        self.max = 0.0
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        while True:
            before = time.monotonic()
            await asyncio.sleep(LAG_PROBE)
            self.max = max(self.max, time.monotonic() - before - LAG_PROBE)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)


def fast_clock(epoch: float, speed: float) -> Callable[[], float]:
    """Wall-clock time running ``speed`` times faster since ``epoch`` (shared by all nodes)."""
    return lambda: epoch + (time.time() - epoch) * speed


async def start_discovery(
    node: Node, host: str, port: int, quiet_timeout: float, clock: Callable[[], float] | None
) -> LanDiscovery | None:
    """``serve``'s wrapper, or the same callbacks around a sped-up clock."""
    if clock is None:
        return await start_lan_discovery(node, host, port, echo=say, quiet_timeout=quiet_timeout)
    discovery = LanDiscovery(
        node,
        port,
        quiet_timeout=quiet_timeout,
        on_nobody=say,
        on_found=lambda peer, a: say(f"Found {feed_id_to_text(peer)} on this network at {a.host}"),
        clock=clock,
    )
    await discovery.start()
    say("Looking for your crew on this network (mDNS).")
    return discovery


async def run_node(
    home: Home, host: str, port: int, quiet_timeout: float, clock: Callable[[], float] | None
) -> None:
    store = home.open_store()
    try:
        node = Node(store, home.load_identity())
        await node.start()
        bound_host, bound_port = await node.listen(host, port)
        me = Address("tcp", bound_host, bound_port, node.identity.public_key)
        say(f"Listening. Others can reach you at: {me}")
        lag = LagMonitor()
        lag.start()
        discovery = await start_discovery(node, host, bound_port, quiet_timeout, clock)
        await _until_stopped()
        say("Stopping.")
        if discovery is not None:
            await discovery.close()
        await node.close()
        await lag.stop()
        say(f"max-loop-lag {lag.max:.3f}")
    finally:
        store.close()


async def observe() -> None:
    zc = AsyncZeroconf(ip_version=IPVersion.V4Only)
    tasks: set[asyncio.Task[None]] = set()

    async def resolve(name: str) -> None:
        info = AsyncServiceInfo(SERVICE_TYPE, name)
        if await info.async_request(zc.zeroconf, 3000):
            record = {
                "name": name,
                "server": info.server,
                "text": (info.text or b"").hex(),
                "addresses": info.parsed_addresses(IPVersion.V4Only),
                "port": info.port,
            }
            say("seen " + json.dumps(record))

    def changed(
        zeroconf: Zeroconf, service_type: str, name: str, state_change: ServiceStateChange
    ) -> None:
        if state_change is not ServiceStateChange.Removed:
            task = asyncio.create_task(resolve(name))
            tasks.add(task)
            task.add_done_callback(tasks.discard)

    browser = AsyncServiceBrowser(zc.zeroconf, SERVICE_TYPE, handlers=[changed])
    say("observing")
    await _until_stopped()
    await browser.async_cancel()
    for task in list(tasks):
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    await zc.async_close()


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="lan_node")
    sub = parser.add_subparsers(dest="mode", required=True)
    node = sub.add_parser("node")
    node.add_argument("--home", required=True, type=Path)
    node.add_argument("--listen", default="0.0.0.0:8008")
    node.add_argument("--quiet-timeout", type=float, default=10.0)
    node.add_argument("--clock-epoch", type=float, help="with --clock-speed: a shared start")
    node.add_argument("--clock-speed", type=float, help="run discovery's clock this much faster")
    sub.add_parser("observe")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, stream=sys.stderr, format="log %(levelname)s %(name)s: %(message)s"
    )
    if args.mode == "node":
        host, _, port = args.listen.rpartition(":")
        clock = fast_clock(args.clock_epoch, args.clock_speed) if args.clock_speed else None
        asyncio.run(run_node(Home(args.home), host, int(port), args.quiet_timeout, clock))
    else:
        asyncio.run(observe())
    left = [t.name for t in threading.enumerate() if t is not threading.main_thread()]
    say(f"threads-left {json.dumps(left)}")


if __name__ == "__main__":
    main(sys.argv[1:])
