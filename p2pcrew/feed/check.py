"""Re-verify everything a store holds: what ``p2pcrew check`` reports.

Ingest already validated every entry, so a problem found here means the file was
changed behind the store's back (disk fault, manual editing, a bug). Each problem
is reported, not raised, so one bad entry does not hide the others.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from p2pcrew.feed import validate
from p2pcrew.feed.entry import lipmaa, verify_signature
from p2pcrew.feed.errors import EntryRejected
from p2pcrew.feed.ids import feed_id_to_text
from p2pcrew.feed.store import Store
from p2pcrew.feed.validate import Tip


@dataclass(frozen=True, slots=True)
class Problem:
    feed: str
    seq: int
    rule: str
    message: str


def check_store(store: Store) -> Iterator[Problem]:
    """Yield every problem found in every feed, then in the database structure."""
    for info in store.feeds():
        yield from _check_feed(store, info.author, info.latest_seq)
    integrity = getattr(store, "integrity_check", None)
    if integrity is not None:
        for line in integrity():
            if line != "ok":
                yield Problem("-", 0, "sqlite-integrity", line)


def _check_feed(store: Store, author: bytes, latest: int) -> Iterator[Problem]:
    ids: dict[int, bytes] = {}
    tip: Tip | None = None
    name = feed_id_to_text(author)
    for stored in store.iter_feed(author):
        entry = stored.entry
        try:
            validate.check_author(entry, author)
            verify_signature(entry)
            target = ids.get(lipmaa(entry.seq)) if entry.seq > 1 else None
            validate.check_successor(entry, tip, target)
            if stored.payload is not None:
                validate.check_payload(entry, stored.payload)
        except EntryRejected as exc:
            yield Problem(name, entry.seq, exc.rule, str(exc))
        ids[entry.seq] = entry.id
        tip = Tip(entry.seq, entry.id)
    held = tip.seq if tip else 0
    if held != latest:
        yield Problem(
            name, held, "missing-entries", f"feed tip says {latest}, entries end at {held}"
        )
