"""Which feeds this node replicates: own, followed within N hops, minus blocked.

Computed from contact entries in the store. Only the owner's own blocks remove a
feed (someone else's block is their business); follows of follows extend the scope
up to ``hops`` (default 2, as in Scuttlebutt). Feeds of peers the person connected
to on purpose (an address they typed or an invite they used) are included too, so
``p2pcrew sync ADDRESS`` does what it says with no follow first.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from p2pcrew.feed.store import Store

DEFAULT_HOPS = 2


@dataclass(frozen=True, slots=True)
class Scope:
    wanted: frozenset[bytes]
    blocked: frozenset[bytes]


def contact_graph(store: Store) -> dict[bytes, dict[bytes, str]]:
    """author -> {target: latest action}, later entries of a feed winning."""
    return store.contact_actions()


def compute_scope(
    store: Store, me: bytes, *, hops: int = DEFAULT_HOPS, extra: Iterable[bytes] = ()
) -> Scope:
    graph = contact_graph(store)
    mine = graph.get(me, {})
    blocked = frozenset(t for t, action in mine.items() if action == "block")
    wanted = {me, *extra}
    frontier = {me}
    for _ in range(hops):
        following = {
            target
            for author in frontier
            for target, action in graph.get(author, {}).items()
            if action == "follow"
        }
        frontier = following - wanted
        wanted |= following
    return Scope(frozenset(wanted - blocked), blocked)
