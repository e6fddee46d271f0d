"""Reading threads and requests: threads, thread, requests (screen-reader friendly)."""

from __future__ import annotations

from typing import Any

import click

from p2pcrew.cli import CliState, cli
from p2pcrew.cli.common import ENTRY, load_identity, open_store, pass_state
from p2pcrew.cli.output import emit, json_option
from p2pcrew.errors import P2PCrewError
from p2pcrew.feed.ids import entry_id_to_text, feed_id_to_text
from p2pcrew.feed.requests import RequestView, allowed_actions
from p2pcrew.queries import Queries


def _who(names: dict[bytes, str], feed: bytes | None) -> str | None:
    if feed is None:
        return None
    return names.get(feed) or feed_id_to_text(feed)[:13]


@cli.command()
@click.option("--crew", "crew_name", help="A crew's threads instead of public ones.")
@click.option("--limit", default=50, show_default=True)
@json_option
@pass_state
def threads(state: CliState, crew_name: str | None, limit: int, as_json: bool) -> None:
    """List threads, newest activity first, with reply and unread counts."""
    me = load_identity(state.home).public_key
    with open_store(state.home, readonly=True) as store:
        crew = _crew_id(store, crew_name)
        q = Queries(store, me)
        names = q.names()
        rows = [
            {
                "root": entry_id_to_text(t.root.id),
                "author": _who(names, t.root.author),
                "text": t.root.post.text,
                "replies": t.replies,
                "unread": t.unread,
            }
            for t in q.threads(crew, limit)
        ]
    emit(
        rows,
        as_json,
        lambda rs: (
            "\n".join(_thread_line(r) for r in rs)
            or "No threads yet. Start one with `p2pcrew post TEXT`."
        ),
    )


def _thread_line(r: dict[str, Any]) -> str:
    unread = f", {r['unread']} unread" if r["unread"] else ""
    return f"{r['root']}  {r['author']}: {r['text'][:60]}  ({r['replies']} replies{unread})"


@cli.command()
@click.argument("root", type=ENTRY)
@json_option
@pass_state
def thread(state: CliState, root: bytes, as_json: bool) -> None:
    """Show a thread: the root post and its replies in causal order."""
    me = load_identity(state.home).public_key
    with open_store(state.home, readonly=True) as store:
        q = Queries(store, me)
        view = q.thread(root)
        names = q.names()
    if view is None:
        raise P2PCrewError(f"no thread {entry_id_to_text(root)} here")
    posts = [(0, view.root, None)] + [
        (line.depth, line.item, line.missing_parent) for line in view.lines
    ]
    rows = [
        {
            "id": entry_id_to_text(item.id),
            "author": _who(names, item.author),
            "depth": depth,
            "text": item.post.text,
            "waiting_for_parent": entry_id_to_text(missing) if missing else None,
        }
        for depth, item, missing in posts
    ]
    emit(
        rows,
        as_json,
        lambda rs: "\n".join(
            f"{'  ' * r['depth']}{r['author']}: {r['text']}"
            + (" (reply to a post not received yet)" if r["waiting_for_parent"] else "")
            for r in rs
        ),
    )


def _request_row(view: RequestView, names: dict[bytes, str], me: bytes) -> dict[str, Any]:
    r = view.request
    return {
        "id": entry_id_to_text(view.id),
        "kind": r.kind,
        "title": r.title,
        "category": r.category,
        "status": view.status,
        "author": _who(names, view.author),
        "claimer": _who(names, view.claimer),
        "needed_by": r.needed_by,
        "place": r.place,
        "you_can": list(allowed_actions(view, me)),
    }


@cli.command()
@click.option("--crew", "crew_name", help="A crew's requests instead of public ones.")
@click.option("--open", "which", flag_value="open", default=True, help="Open requests (default).")
@click.option("--mine", "which", flag_value="mine", help="Requests I made or claimed.")
@click.option("--claimed", "which", flag_value="claimed", help="Claimed requests.")
@click.option("--due-soon", "which", flag_value="due-soon", help="Due within 72 hours.")
@click.option("--all", "which", flag_value="all", help="Every request.")
@json_option
@pass_state
def requests(state: CliState, crew_name: str | None, which: str, as_json: bool) -> None:
    """The requests board: asks and offers, their status and what you can do."""
    me = load_identity(state.home).public_key
    with open_store(state.home, readonly=True) as store:
        crew = _crew_id(store, crew_name)
        q = Queries(store, me)
        names = q.names()
        views = q.requests(crew, which)  # type: ignore[arg-type]
        rows = [_request_row(v, names, me) for v in views]
    emit(
        rows,
        as_json,
        lambda rs: (
            "\n".join(
                f"{r['id']}  [{r['status']}] {r['kind']}: {r['title']} ({r['category']})"
                + (f", claimed by {r['claimer']}" if r["claimer"] else "")
                for r in rs
            )
            or "No requests here."
        ),
    )


def _crew_id(store: object, name: str | None) -> bytes | None:
    if name is None:
        return None
    from p2pcrew.crew.directory import crew_by_name

    return crew_by_name(store, name)  # type: ignore[arg-type]
