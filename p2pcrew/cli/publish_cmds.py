"""Commands that publish to your own feed: post, reply, request, react, contacts, delete."""

from __future__ import annotations

from datetime import UTC, datetime

import click

from p2pcrew.cli import CliState, cli
from p2pcrew.cli.common import (
    ENTRY,
    FEED,
    load_identity,
    open_store,
    pass_state,
    publish_payload,
)
from p2pcrew.cli.output import emit, json_option
from p2pcrew.errors import P2PCrewError
from p2pcrew.feed import content as c
from p2pcrew.feed.ids import entry_id_to_text
from p2pcrew.views import entry_view

force_option = click.option(
    "--force", is_flag=True, help="Publish even though a restored feed has not been fetched yet."
)


def _publish(state: CliState, item: c.Content, force: bool, as_json: bool) -> None:
    """Publish directly, or through the running node that holds the store."""
    entry_id = publish_payload(state.home, c.encode_content(item), force=force)
    with open_store(state.home, readonly=True) as reader:
        stored = reader.get(entry_id)
    view = entry_view(stored) if stored else {"id": entry_id_to_text(entry_id)}
    emit(view, as_json, lambda d: d["id"])


def _crew(state: CliState, name: str | None) -> bytes | None:
    if name is None:
        return None
    from p2pcrew.crew.directory import crew_by_name

    with open_store(state.home, readonly=True) as store:
        return crew_by_name(store, name)


def _crew_of(state: CliState, target: bytes) -> bytes | None:
    """Replies, updates and reactions belong to the crew of what they answer."""
    with open_store(state.home, readonly=True) as store:
        stored = store.get(target)
        if stored is None or stored.content_bytes is None:
            return None
        try:
            item = c.decode_content(stored.content_bytes)
        except P2PCrewError:
            return None
    crew: bytes | None = getattr(item, "crew", None)
    return crew


crew_option = click.option("--crew", "crew_name", help="Publish inside this crew (encrypted).")


@cli.command()
@click.argument("text")
@click.option("--mention", "mentions", multiple=True, type=FEED, help="Feed id to mention.")
@crew_option
@force_option
@json_option
@pass_state
def post(
    state: CliState,
    text: str,
    mentions: tuple[bytes, ...],
    crew_name: str | None,
    force: bool,
    as_json: bool,
) -> None:
    """Start a new thread (public, or inside a crew with --crew)."""
    item = c.Post(text=text, mentions=mentions, crew=_crew(state, crew_name), time=c.now_ms())
    _publish(state, item, force, as_json)


@cli.command()
@click.argument("parent", type=ENTRY)
@click.argument("text")
@force_option
@json_option
@pass_state
def reply(state: CliState, parent: bytes, text: str, force: bool, as_json: bool) -> None:
    """Reply to PARENT (a thread root or another reply)."""
    with open_store(state.home, readonly=True) as store:
        stored = store.get(parent)
        if stored is None or stored.content_bytes is None:
            raise P2PCrewError(f"no post {entry_id_to_text(parent)} here; sync first")
        parent_post = c.decode_content(stored.content_bytes)
    if not isinstance(parent_post, c.Post):
        raise P2PCrewError(f"{entry_id_to_text(parent)} is a {parent_post.TYPE}, not a post")
    root = parent_post.root or parent
    item = c.Post(text=text, root=root, reply_to=parent, crew=parent_post.crew, time=c.now_ms())
    _publish(state, item, force, as_json)


@cli.group()
def request() -> None:
    """Ask for or offer help, and move requests through their lifecycle."""


def _parse_date(text: str | None) -> int | None:
    if text is None:
        return None
    try:
        when = datetime.fromisoformat(text)
    except ValueError as exc:
        raise click.BadParameter(
            f"{text!r}: use a date like 2026-12-24 or 2026-12-24T18:00"
        ) from exc
    if when.tzinfo is None:
        when = when.astimezone()
    return int(when.astimezone(UTC).timestamp() * 1000)


@request.command("new")
@click.argument("title")
@click.option("--offer", is_flag=True, help="Offer help instead of asking for it.")
@click.option("--body", help="Details.")
@click.option(
    "--category", type=click.Choice(c.REQUEST_CATEGORIES), default="other", show_default=True
)
@click.option("--needed-by", help="Date (and time), e.g. 2026-12-24 or 2026-12-24T18:00.")
@click.option("--place", help="A rough place, e.g. 'north side'.")
@crew_option
@force_option
@json_option
@pass_state
def request_new(
    state: CliState,
    title: str,
    offer: bool,
    body: str | None,
    category: c.RequestCategory,
    needed_by: str | None,
    place: str | None,
    crew_name: str | None,
    force: bool,
    as_json: bool,
) -> None:
    """Publish a new request (ask, or --offer); inside a crew with --crew."""
    item = c.Request(
        kind="offer" if offer else "ask",
        title=title,
        body=body,
        category=category,
        needed_by=_parse_date(needed_by),
        place=place,
        crew=_crew(state, crew_name),
        time=c.now_ms(),
    )
    _publish(state, item, force, as_json)


def _update_command(action: c.RequestAction, doc: str) -> None:
    @request.command(action, help=doc)
    @click.argument("request_id", metavar="REQUEST", type=ENTRY)
    @click.option("--note", help="A short note for the crew.")
    @force_option
    @json_option
    @pass_state
    def command(
        state: CliState, request_id: bytes, note: str | None, force: bool, as_json: bool
    ) -> None:
        crew = _crew_of(state, request_id)
        item = c.RequestUpdate(
            request=request_id, action=action, note=note, crew=crew, time=c.now_ms()
        )
        _publish(state, item, force, as_json)


for _action, _doc in (
    ("claim", "Say you will take care of REQUEST."),
    ("unclaim", "Give back a request you claimed."),
    ("fulfil", "Mark REQUEST as done."),
    ("withdraw", "Withdraw your own REQUEST."),
    ("reopen", "Reopen your own REQUEST."),
):
    _update_command(_action, _doc)  # type: ignore[arg-type]


@cli.command()
@click.argument("target", type=ENTRY)
@click.argument("emoji")
@force_option
@json_option
@pass_state
def react(state: CliState, target: bytes, emoji: str, force: bool, as_json: bool) -> None:
    """React to an entry with a short emoji or word."""
    crew = _crew_of(state, target)
    _publish(
        state, c.Reaction(target=target, emoji=emoji, crew=crew, time=c.now_ms()), force, as_json
    )


def _contact_command(action: c.ContactAction, doc: str) -> None:
    @cli.command(action, help=doc)
    @click.argument("feed", type=FEED)
    @force_option
    @json_option
    @pass_state
    def command(state: CliState, feed: bytes, force: bool, as_json: bool) -> None:
        _publish(state, c.Contact(contact=feed, action=action, time=c.now_ms()), force, as_json)


for _action, _doc in (
    ("follow", "Follow FEED: replicate it and the feeds it follows."),
    ("unfollow", "Stop following FEED."),
    ("block", "Block FEED: never fetch it nor pass it on."),
    ("unblock", "Lift a block on FEED."),
):
    _contact_command(_action, _doc)  # type: ignore[arg-type]


@cli.command()
@click.argument("target", type=ENTRY)
@click.option("--reason", help="Why (visible to peers).")
@force_option
@json_option
@pass_state
def delete(state: CliState, target: bytes, reason: str | None, force: bool, as_json: bool) -> None:
    """Delete one of your entries: drops its payload here and asks every peer to."""
    identity = load_identity(state.home)
    with open_store(state.home, readonly=True) as store:
        stored = store.get(target)
    if stored is None:
        raise P2PCrewError(f"no entry {entry_id_to_text(target)} here")
    if stored.entry.author != identity.public_key:
        raise P2PCrewError("you can only delete your own entries")
    _publish(state, c.Delete(target=target, reason=reason, time=c.now_ms()), force, as_json)
