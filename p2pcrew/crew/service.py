"""Crew operations as payloads to publish: create, invite, remove, leave, rename.

Each returns the envelope payload of a new crew_state; the caller publishes it with
``publishing.publish_payloads`` (directly, or through the running node). Rules live
in ``membership``; this module only assembles them.
"""

from __future__ import annotations

from collections.abc import Iterable

from p2pcrew.crew.directory import crew_state
from p2pcrew.crew.membership import Change, CrewState, create_crew, propose, seal_state
from p2pcrew.feed.content import now_ms
from p2pcrew.feed.identity import Identity
from p2pcrew.feed.store import Store


def create(
    identity: Identity, name: str, *, description: str | None = None, members: Iterable[bytes] = ()
) -> tuple[bytes, bytes]:
    """(crew id, payload) for a new crew founded by ``identity``."""
    content = create_crew(
        identity.public_key, name, time=now_ms(), description=description, members=members
    )
    return content.crew, seal_state(content)


def change(store: Store, identity: Identity, crew: bytes, what: Change) -> bytes:
    """The payload applying ``what`` to the crew's current state.

    Raises UnknownCrew, NotAMember, MembershipRuleViolated.
    """
    state: CrewState = crew_state(store, crew)
    return seal_state(propose(state, identity.public_key, what, time=now_ms()))


def reapply_lost(store: Store, identity: Identity) -> list[bytes]:
    """Payloads re-applying, one per crew, a change of mine that lost a race (crews.md 3.2).

    Publish them, then call again until it returns nothing: each re-applied change is
    a new epoch on the winning chain, after which the rest is computed on top of it.
    """
    from p2pcrew.crew.directory import crew_states
    from p2pcrew.crew.errors import CrewError
    from p2pcrew.crew.keyring import state_entries
    from p2pcrew.crew.membership import lost_changes

    me = identity.public_key
    payloads = []
    for state in crew_states(store):
        if me not in state.members:
            continue
        mine = [e for e in state_entries(store, state.crew) if e.author == me]
        for what in lost_changes(state, mine):
            try:
                payloads.append(seal_state(propose(state, me, what, time=now_ms())))
            except CrewError:
                continue
            break
    return payloads
