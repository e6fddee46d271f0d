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
