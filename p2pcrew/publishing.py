"""Publishing own entries, with the guard that keeps a restored key from forking.

A key restored from a backup may already have entries on other machines that this
store has never seen. Publishing seq 1 again would fork the feed forever. So
``import-key`` on a store without the own feed marks it *restore pending*, and
publishing is refused until replication has fetched the own feed's latest entry
(replication clears the mark) or the person overrides with ``--force``.
"""

from __future__ import annotations

from p2pcrew.errors import P2PCrewError
from p2pcrew.feed.content import Content, encode_content
from p2pcrew.feed.entry import Entry
from p2pcrew.feed.identity import Identity
from p2pcrew.feed.store import Store

RESTORE_PENDING = "restore_pending"


class RestorePending(P2PCrewError):
    """Publishing now could fork a restored feed."""


def mark_restored(store: Store, identity: Identity) -> bool:
    """Mark the store restore-pending unless it already holds our own feed."""
    if store.feed(identity.public_key) is not None:
        return False
    store.set_meta(RESTORE_PENDING, identity.public_key)
    return True


def restore_pending(store: Store) -> bool:
    return store.get_meta(RESTORE_PENDING) is not None


def clear_restore(store: Store) -> None:
    store.set_meta(RESTORE_PENDING, None)


def publish(
    store: Store, identity: Identity, items: list[Content], *, force: bool = False
) -> list[Entry]:
    """Validate, sign and durably append ``items`` to our own feed.

    Content that names a crew is sealed in that crew's envelope under its current
    epoch key: a crew id never reaches a payload in the clear.

    Raises:
        RestorePending: the key was restored and the own feed not yet fetched.
        UnknownCrew, NotAMember: crew content for a crew we cannot publish to.
        InvalidContent, FeedForked, EntryTooLarge: from validation and the store.
    """
    payloads = [payload_for(store, identity, item) for item in items]
    return publish_payloads(store, identity, payloads, force=force)


def publish_payloads(
    store: Store, identity: Identity, payloads: list[bytes], *, force: bool = False
) -> list[Entry]:
    """Append ready payloads (validated content or crew envelopes). Raises as ``publish``."""
    if restore_pending(store) and not force:
        raise RestorePending(
            "this key was restored from a backup and its feed may already have entries "
            "elsewhere; publishing now could fork it. Sync with a peer or pub that has "
            "your feed first (`p2pcrew sync ADDRESS`), or pass --force if this key never "
            "published anything"
        )
    entries = store.append(identity.signing_key, payloads)
    if force and restore_pending(store):
        clear_restore(store)
    return entries


def payload_for(store: Store, identity: Identity, item: Content) -> bytes:
    """The payload that publishes ``item``: its canonical bytes, sealed if it names a crew."""
    crew = getattr(item, "crew", None)
    plaintext = encode_content(item)
    if crew is None:
        return plaintext
    from p2pcrew.crew.directory import crew_state
    from p2pcrew.crew.envelope import seal_for_crew
    from p2pcrew.crew.errors import NotAMember

    state = crew_state(store, crew)
    if identity.public_key not in state.members:
        raise NotAMember(f"you are not a member of the crew {state.name!r} any more")
    return seal_for_crew(plaintext, state.key)
