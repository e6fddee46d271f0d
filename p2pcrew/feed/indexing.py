"""What the store indexes about a payload, so queries never decode every entry.

The content index has one row per entry whose payload decodes as known content:
its type, claimed time, the thread root, the parent (reply-to), and the target it
refers to (the request an update changes, the entry a reaction or delete points at,
the feed a contact names). Payloads that do not decode (another p2pcrew version's
types, or crew envelopes we cannot open) are stored and replicated but not indexed.
"""

from __future__ import annotations

from dataclasses import dataclass

from p2pcrew.feed import content as c
from p2pcrew.feed.errors import InvalidContent


@dataclass(frozen=True, slots=True)
class IndexRow:
    type: str
    claimed_time: int
    root: bytes | None = None
    parent: bytes | None = None
    target: bytes | None = None


def index_row(payload: bytes) -> IndexRow | None:
    """The index row for ``payload``, or None if it is not content we know."""
    try:
        item = c.decode_content(payload)
    except InvalidContent:
        return None
    return row_for(item)


def row_for(item: c.Content) -> IndexRow:
    match item:
        case c.Post():
            return IndexRow(item.TYPE, item.time, root=item.root, parent=item.reply_to)
        case c.RequestUpdate():
            return IndexRow(item.TYPE, item.time, target=item.request)
        case c.Reaction() | c.Delete():
            return IndexRow(item.TYPE, item.time, target=item.target)
        case c.Contact():
            return IndexRow(item.TYPE, item.time, target=item.contact)
        case _:
            return IndexRow(item.TYPE, item.time)
