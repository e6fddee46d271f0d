"""What the app shows about the running node: peers, sync progress, delivery.

Read on the event loop (the node's state lives there), cheap enough for a status bar
refreshed every second: a pass over connected peers and the feeds they announced.
No textual here.
"""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import socket
from collections.abc import Iterable
from dataclasses import dataclass

from p2pcrew.crew import delivery
from p2pcrew.crew.directory import crew_state
from p2pcrew.errors import P2PCrewError
from p2pcrew.feed.store import Store
from p2pcrew.feed.threads import ThreadView
from p2pcrew.replicate import ebt
from p2pcrew.replicate.messages import NOT_REPLICATING, note_seq
from p2pcrew.replicate.node import Node
from p2pcrew.tui.viewmodels import PeerInfo

log = logging.getLogger(__name__)


def behind(state: ebt.EngineState) -> int:
    """Entries that connected peers announced and we do not hold yet (the sync backlog)."""
    best: dict[bytes, int] = {}
    for peer in state.peers.values():
        if not peer.notes_received:
            continue
        for feed in peer.received:
            if state.replicates(feed):
                best[feed] = max(best.get(feed, 0), peer.their_seq(feed))
    return sum(max(0, seq - state.local.get(feed, 0)) for feed, seq in best.items())


def peer_infos(node: Node) -> list[PeerInfo]:
    """Connected peers first (by address), then peers we know but are not connected to."""
    known = {record.feed: record for record in node.store.known_peers()}
    rows = []
    for feed, link in sorted(node.links.items(), key=lambda item: item[1].address):
        record = known.get(feed)
        rows.append(
            PeerInfo(
                feed=feed,
                address=record.address if record else link.address,
                source=record.source if record else ("incoming" if not link.client else "manual"),
                connected=True,
                in_sync=node.in_sync_with(feed),
                received=link.entries_received,
                sent=link.entries_sent,
            )
        )
    for feed, record in sorted(known.items(), key=lambda item: item[1].address):
        if feed not in node.links:
            rows.append(
                PeerInfo(feed, record.address, record.source, False, False, 0, 0, record.last_error)
            )
    return rows


@dataclass(frozen=True, slots=True)
class Delivery:
    """Who holds one of our own entries, as far as this node can tell."""

    seq: int
    has: tuple[bytes, ...]
    unknown: tuple[bytes, ...]


def thread_delivery(node: Node, view: ThreadView, now_ms: int) -> Delivery | None:
    """Who holds my latest post in a crew thread (None: public, or nothing of mine)."""
    me = node.identity.public_key
    crew = view.root.post.crew
    mine = [item for item in (view.root, *(line.item for line in view.lines)) if item.author == me]
    if crew is None or not mine:
        return None
    latest = max(mine, key=lambda item: item.seq)
    for row in delivery.delivery(node.store, me, crew, limit=50, now=now_ms):
        if row.entry_id == latest.id:
            return Delivery(row.seq, tuple(sorted(row.holders)), tuple(row.missing))
    return own_delivery(node, node.store, latest.seq, crew_state(node.store, crew).members)


def maintain_delivery(node: Node, crews: Iterable[bytes] = ()) -> None:
    """Log when members' clocks first covered my posts and publish due receipts (the
    running node's part of ``crew.delivery``); ``crews``: I just published in them.
    Best effort: a failure is logged, never shown."""
    try:
        delivery.observe(node.store, node.identity.public_key)
        entries = delivery.publish_due_receipts(node.store, node.identity, publishing=crews)
    except P2PCrewError as exc:
        log.info("delivery receipts skipped: %s", exc)
        return
    if entries:
        node.local_appended(entries)


def own_delivery(node: Node, store: Store, seq: int, members: frozenset[bytes]) -> Delivery:
    """For each crew member but us: whether they hold our entry ``seq``.

    Known from what a connected member announced (and what we pushed them), or from
    the clock saved when we last met them. A member reached only through a pub or a
    third laptop shows as unknown until we meet them.
    """
    me = node.identity.public_key
    has: list[bytes] = []
    unknown: list[bytes] = []
    for member in sorted(members - {me}):
        peer = node.state.peers.get(member)
        if peer is not None:
            seen = peer.their_seq(me)
        else:
            received, _sent = store.peer_clock(member)
            seen = note_seq(received.get(me, NOT_REPLICATING))
        (has if seen >= seq else unknown).append(member)
    return Delivery(seq, tuple(has), tuple(unknown))


def local_hosts(bound: str) -> list[str]:
    """Addresses others can dial to reach a node listening on ``bound``."""
    if bound not in ("0.0.0.0", "", "::"):  # noqa: S104 - comparing, not binding
        return [bound]
    hosts: list[str] = []
    with contextlib.suppress(ImportError, OSError):
        from p2pcrew.replicate.discovery import lan_addresses

        hosts = [text.split("/")[0] for text in lan_addresses()]  # "ip/prefix"
    if not hosts:
        hosts = _route_address()
    return hosts or ["127.0.0.1"]


def _route_address() -> list[str]:
    """The address of the interface holding the default route (no packet is sent)."""
    with contextlib.suppress(OSError), socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.connect(("192.0.2.1", 9))  # TEST-NET-1: never routed, only selects an interface
        host = str(s.getsockname()[0])
        if not ipaddress.ip_address(host).is_unspecified:
            return [host]
    return []
