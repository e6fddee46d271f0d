"""Which crews this store knows, by id and by name, and their resolved state."""

from __future__ import annotations

from p2pcrew.crew.errors import CrewError
from p2pcrew.crew.keyring import state_entries
from p2pcrew.crew.membership import CrewState, apply_states
from p2pcrew.feed.store import Store


class UnknownCrew(CrewError):
    reason = "unknown-crew"


def crew_states(store: Store) -> list[CrewState]:
    """Every crew we hold keys for whose state resolves, sorted by name."""
    states = []
    for crew in store.crew_keys():
        state = apply_states(state_entries(store, crew))
        if state is not None:
            states.append(state)
    return sorted(states, key=lambda s: (s.name.casefold(), s.crew))


def crew_state(store: Store, crew: bytes) -> CrewState:
    state = apply_states(state_entries(store, crew))
    if state is None:
        raise UnknownCrew("this store holds no usable state for that crew")
    return state


def crew_by_name(store: Store, name: str) -> bytes:
    """Raises UnknownCrew (none, or several crews share the name: then use the id)."""
    wanted = name.casefold()
    found = [s for s in crew_states(store) if s.name.casefold() == wanted]
    if not found:
        known = ", ".join(s.name for s in crew_states(store)) or "none yet"
        raise UnknownCrew(f"no crew named {name!r} here (crews: {known})")
    if len(found) > 1:
        raise UnknownCrew(f"{len(found)} crews are named {name!r}; rename one of them")
    return found[0].crew


def co_members(store: Store) -> set[bytes]:
    """Feeds of everyone in any of our crews: replication fetches them all."""
    members: set[bytes] = set()
    for state in crew_states(store):
        members |= state.members
    return members


def lan_secrets(store: Store, me: bytes) -> list[tuple[bytes, str]]:
    """(current epoch key, crew name) of every crew we are in, for LAN recognition.

    The current epoch key, not the first: after a removal, the removed member can no
    longer recognise the crew's laptops at a meetup.
    """
    return [(s.key, s.name) for s in crew_states(store) if me in s.members]
