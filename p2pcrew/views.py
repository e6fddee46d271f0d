"""Store rows to plain display data: used by the CLI's text and JSON output.

Plain functions over plain values, so they are unit-tested without a terminal.
Ids become their text forms; bytes never reach JSON.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from p2pcrew.feed import content as c
from p2pcrew.feed.errors import InvalidContent
from p2pcrew.feed.ids import entry_id_to_text, feed_id_to_text
from p2pcrew.feed.store import FeedInfo, StoredEntry

_FEED_FIELDS = {"contact", "mentions"}


def entry_view(stored: StoredEntry) -> dict[str, Any]:
    entry = stored.entry
    view: dict[str, Any] = {
        "id": entry_id_to_text(entry.id),
        "author": feed_id_to_text(entry.author),
        "seq": entry.seq,
        "payload_size": entry.payload_size,
        "received_at": stored.received_at,
    }
    if stored.payload is None:
        view["content"] = None
        view["status"] = "deleted"
        return view
    try:
        view["content"] = content_view(c.decode_content(stored.content_bytes or b""))
        view["status"] = "ok"
    except InvalidContent as exc:
        view["content"] = None
        view["status"] = f"undecodable: {exc}"
    return view


def content_view(item: c.Content) -> dict[str, Any]:
    out: dict[str, Any] = {"type": item.TYPE}
    for f in dataclasses.fields(item):
        value = getattr(item, f.name)
        if value is None or value == ():
            continue
        out[f.name] = _id_text(f.name, value)
    return out


def _id_text(name: str, value: Any) -> Any:
    if isinstance(value, bytes):
        return feed_id_to_text(value) if name in _FEED_FIELDS else entry_id_to_text(value)
    if isinstance(value, tuple):
        return [_id_text(name, v) for v in value]
    return value


def feed_view(info: FeedInfo) -> dict[str, Any]:
    return {
        "feed": feed_id_to_text(info.author),
        "latest_seq": info.latest_seq,
        "forked": info.forked,
    }


def entry_line(view: dict[str, Any]) -> str:
    content = view["content"]
    if content is None:
        summary = f"({view['status']})"
    else:
        kind = content["type"]
        text = next((content[k] for k in ("text", "title", "action", "name") if k in content), "")
        summary = f"{kind}: {text}".strip()
    return f"{view['seq']:>6}  {view['id']}  {summary}"
