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

    Raises:
        RestorePending: the key was restored and the own feed not yet fetched.
        InvalidContent, FeedForked, EntryTooLarge: from validation and the store.
    """
    if restore_pending(store) and not force:
        raise RestorePending(
            "this key was restored from a backup and its feed may already have entries "
            "elsewhere; publishing now could fork it. Sync with a peer or pub that has "
            "your feed first (`p2pcrew sync ADDRESS`), or pass --force if this key never "
            "published anything"
        )
    payloads = [encode_content(item) for item in items]
    entries = store.append(identity.signing_key, payloads)
    if force and restore_pending(store):
        clear_restore(store)
    return entries
