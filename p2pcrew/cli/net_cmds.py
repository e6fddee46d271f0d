"""Network commands: serve (a long-running node), sync (one round, then exit), peers."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from pathlib import Path
from typing import Any

import click

from p2pcrew.cli import CliState, cli
from p2pcrew.cli.common import load_identity, open_store, pass_state
from p2pcrew.cli.output import emit, json_option
from p2pcrew.control import serve_control
from p2pcrew.errors import P2PCrewError
from p2pcrew.feed.ids import feed_id_to_text
from p2pcrew.replicate.address import Address, parse_address
from p2pcrew.replicate.keep_in_touch import KeepInTouch, Outcome
from p2pcrew.replicate.node import Node
from p2pcrew.replicate.transport_errors import TransportError

log = logging.getLogger(__name__)


def _host_port(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit():
        raise click.BadParameter(f"{text!r}: use HOST:PORT, e.g. 0.0.0.0:8008")
    return host.strip("[]"), int(port)


@cli.command()
@click.option(
    "--listen", default="0.0.0.0:8008", show_default=True, help="HOST:PORT to accept peers on."
)
@click.option(
    "--connect", "connects", multiple=True, help="Address to dial and keep replicating with."
)
@click.option(
    "--lan/--no-lan",
    default=True,
    show_default=True,
    help="Find the people you follow on this network (mDNS) and sync with them.",
)
@pass_state
def serve(state: CliState, listen: str, connects: tuple[str, ...], lan: bool) -> None:
    """Run a node: accept and dial peers, replicate, print progress. Ctrl-C stops it."""
    host, port = _host_port(listen)
    addresses = [parse_address(a) for a in connects]
    identity = load_identity(state.home)
    with open_store(state.home) as store:
        node = Node(store, identity)
        asyncio.run(_serve(node, host, port, addresses, state.home.control_socket, lan))


async def _serve(
    node: Node, host: str, port: int, addresses: list[Address], control_path: Path, lan: bool
) -> None:
    await node.start()
    try:
        bound_host, bound_port = await node.listen(host, port)
    except OSError as exc:
        raise P2PCrewError(f"cannot listen on {host}:{port}: {exc.strerror}") from exc
    me = Address("tcp", bound_host, bound_port, node.identity.public_key)
    control = await serve_control(
        control_path, lambda payload, force: node.publish_payload(payload, force=force)
    )
    if bound_host in ("0.0.0.0", "::"):  # noqa: S104 - comparing, not binding
        from p2pcrew.cli.address_cmds import lan_addresses

        reachable = [str(Address("tcp", h, bound_port, me.key)) for h in lan_addresses()]
        click.echo("Listening. Others can reach you at: " + "  ".join(reachable))
    else:
        click.echo(f"Listening. Others can reach you at: {me}")
    discovery = None
    if lan:
        from p2pcrew.crew.directory import lan_secrets
        from p2pcrew.replicate.discovery import start_lan_discovery  # zeroconf: serve only

        discovery = await start_lan_discovery(
            node,
            host,
            bound_port,
            echo=click.echo,
            group_secrets=lambda: lan_secrets(node.store, node.identity.public_key),
        )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    # The command line's addresses and every remembered peer, dialled again whenever
    # their link is down (with backoff), for as long as serve runs.
    touch = KeepInTouch(
        node, lambda address, source: node.connect(address, source=source), _report, fixed=addresses
    )
    touch.start()
    node.on_change = lambda: None
    reported = 0
    while not stop.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 2.0)
        total = sum(node.stats.received.values())
        if total != reported:
            click.echo(f"received {total - reported} entries; {len(node.links)} peer(s) connected")
            reported = total
    click.echo("Stopping.")
    await touch.close()
    if discovery is not None:
        await discovery.close()
    control.close()
    await node.close()


def _report(outcome: Outcome) -> None:
    """Every connection, but each failure once per address until it changes or the peer
    is reached again: a pub that is down for an hour must not fill the terminal."""
    if outcome.error is None:
        click.echo(f"Connected to {outcome.address}")
    elif outcome.news:
        click.echo(f"Could not connect to {outcome.address}: {outcome.error}", err=True)
    else:
        log.info("still cannot connect to %s: %s", outcome.address, outcome.error)


@cli.command()
@click.argument("address")
@click.option(
    "--timeout", default=300.0, show_default=True, help="Give up after this many seconds."
)
@json_option
@pass_state
def sync(state: CliState, address: str, timeout: float, as_json: bool) -> None:
    """Connect to ADDRESS, exchange what each side wants, then exit."""
    target = parse_address(address)
    identity = load_identity(state.home)
    with open_store(state.home) as store:
        result = asyncio.run(_sync(Node(store, identity), target, timeout))
    emit(result, as_json, _sync_text)


async def _sync(node: Node, address: Address, timeout: float) -> dict[str, Any]:
    await node.start()
    try:
        link = await node.sync_with(address, timeout=timeout)
    except (TransportError, OSError) as exc:
        raise P2PCrewError(f"could not sync with {address}: {exc}") from exc
    finally:
        await node.close()
    if link.close_reason:
        raise P2PCrewError(f"sync with {address} ended early: {link.close_reason}")
    return {
        "peer": feed_id_to_text(link.peer),
        "received": {feed_id_to_text(f): n for f, n in node.stats.received.items()},
        "received_total": link.entries_received,
        "sent_total": link.entries_sent,
        "rejected": node.stats.rejected,
    }


def _sync_text(d: dict[str, Any]) -> str:
    lines = [f"Synced with {d['peer']}: received {d['received_total']}, sent {d['sent_total']}."]
    lines += [f"  {feed}: +{n}" for feed, n in sorted(d["received"].items())]
    if d["rejected"]:
        lines.append(f"  rejected: {d['rejected']}")
    return "\n".join(lines)


@cli.command()
@json_option
@pass_state
def peers(state: CliState, as_json: bool) -> None:
    """Peers this node knows, how it learnt them, and how the last attempt went."""
    with open_store(state.home, readonly=True) as store:
        rows = [
            {
                "address": p.address,
                "feed": feed_id_to_text(p.feed),
                "source": p.source,
                "last_connected": p.last_connected,
                "last_error": p.last_error,
            }
            for p in store.known_peers()
        ]
    emit(
        rows,
        as_json,
        lambda rs: (
            "\n".join(
                f"{r['address']}  ({r['source']})"
                + (f"  last error: {r['last_error']}" if r["last_error"] else "")
                for r in rs
            )
            or "No peers yet. Use `p2pcrew sync ADDRESS` or `p2pcrew serve --connect ADDRESS`."
        ),
    )
