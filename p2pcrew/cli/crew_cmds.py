"""Crew commands: create, list, members, invite, remove, leave, rename, status."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import click

from p2pcrew.cli import CliState, cli
from p2pcrew.cli.common import FEED, load_identity, open_store, pass_state, publish_payload
from p2pcrew.cli.output import emit, json_option
from p2pcrew.crew import delivery, service
from p2pcrew.crew.directory import crew_by_name, crew_state, crew_states
from p2pcrew.crew.membership import Change
from p2pcrew.feed.ids import entry_id_to_text, feed_id_to_text
from p2pcrew.feed.sqlite_store import SqliteStore, StoreLocked
from p2pcrew.queries import Queries


@cli.group()
def crew() -> None:
    """Private groups: everything inside is encrypted to the crew's members."""


@crew.command("create")
@click.argument("name")
@click.option("--description", help="What the crew is for (members only see it).")
@click.option("--member", "members", multiple=True, type=FEED, help="Add members at once.")
@json_option
@pass_state
def crew_create(
    state: CliState, name: str, description: str | None, members: tuple[bytes, ...], as_json: bool
) -> None:
    """Create a crew with you as its first member."""
    identity = load_identity(state.home)
    _crew_id, payload = service.create(identity, name, description=description, members=members)
    publish_payload(state.home, payload, force=False)
    emit(
        {"crew": name, "members": 1 + len(members)},
        as_json,
        lambda d: f"Created crew {d['crew']!r}.",
    )


@crew.command("list")
@json_option
@pass_state
def crew_list(state: CliState, as_json: bool) -> None:
    """Your crews, with member counts and unread threads."""
    me = load_identity(state.home).public_key
    with open_store(state.home, readonly=True) as store:
        q = Queries(store, me)
        rows = [
            {
                "name": s.name,
                "members": len(s.members),
                "epoch": s.epoch,
                "member": me in s.members,
                "unread": sum(t.unread for t in q.threads(s.crew)),
            }
            for s in crew_states(store)
        ]
    emit(
        rows,
        as_json,
        lambda rs: (
            "\n".join(
                f"{r['name']}  ({r['members']} members"
                + (f", {r['unread']} unread" if r["unread"] else "")
                + ("" if r["member"] else ", you are no longer a member")
                + ")"
                for r in rs
            )
            or "No crews yet. Create one with `p2pcrew crew create NAME`."
        ),
    )


@crew.command("members")
@click.argument("name")
@json_option
@pass_state
def crew_members(state: CliState, name: str, as_json: bool) -> None:
    """Who is in a crew."""
    me = load_identity(state.home).public_key
    with open_store(state.home, readonly=True) as store:
        s = crew_state(store, crew_by_name(store, name))
        names = Queries(store, me).names()
    rows = [
        {"feed": feed_id_to_text(m), "name": names.get(m), "you": m == me}
        for m in sorted(s.members)
    ]
    emit(
        rows,
        as_json,
        lambda rs: "\n".join(
            f"{r['feed']}  {r['name'] or ''}{' (you)' if r['you'] else ''}" for r in rs
        ),
    )


def _change(state: CliState, name: str, what: Change, as_json: bool, done: str) -> None:
    identity = load_identity(state.home)
    with open_store(state.home, readonly=True) as store:
        crew_id = crew_by_name(store, name)
        payload = service.change(store, identity, crew_id, what)
    publish_payload(state.home, payload, force=False)
    emit({"crew": name, "op": what.op}, as_json, lambda _d: done)


@crew.command("invite")
@click.argument("name")
@click.argument("member", type=FEED)
@json_option
@pass_state
def crew_invite(state: CliState, name: str, member: bytes, as_json: bool) -> None:
    """Add MEMBER (a feed id): they get the crew's keys, encrypted to them."""
    _change(state, name, Change("add", frozenset({member})), as_json, f"Invited to {name!r}.")


@crew.command("remove")
@click.argument("name")
@click.argument("member", type=FEED)
@json_option
@pass_state
def crew_remove(state: CliState, name: str, member: bytes, as_json: bool) -> None:
    """Remove MEMBER; the key rotates so they cannot read what follows."""
    _change(state, name, Change("remove", frozenset({member})), as_json, "Removed; key rotated.")


@crew.command("leave")
@click.argument("name")
@json_option
@pass_state
def crew_leave(state: CliState, name: str, as_json: bool) -> None:
    """Leave a crew."""
    _change(state, name, Change("leave"), as_json, f"You left {name!r}.")


@crew.command("rename")
@click.argument("name")
@click.argument("new_name")
@click.option("--description", help="New description.")
@json_option
@pass_state
def crew_rename(
    state: CliState, name: str, new_name: str, description: str | None, as_json: bool
) -> None:
    """Rename a crew (members only see the name)."""
    what = Change("rename", name=new_name, description=description)
    _change(state, name, what, as_json, f"Renamed to {new_name!r}.")


@crew.command("status")
@click.argument("name")
@click.option("--limit", default=10, show_default=True, help="How many recent posts to show.")
@json_option
@pass_state
def crew_status(state: CliState, name: str, limit: int, as_json: bool) -> None:
    """Which members are known to hold your recent posts and requests in a crew.

    Known from direct syncs with them, from the receipts members publish in the crew,
    and from their replies; a member met only through a pub shows up once their
    receipt arrives.
    """
    me = load_identity(state.home).public_key
    with _status_store(state) as store:
        crew_id = crew_by_name(store, name)
        if not store.readonly:
            delivery.observe(store, me)  # remember when clocks first showed each post
        s = crew_state(store, crew_id)
        rows = delivery.delivery(store, me, crew_id, limit=limit)
        names = Queries(store, me).names()

    def who(feed: bytes) -> dict[str, Any]:
        return {"feed": feed_id_to_text(feed), "name": names.get(feed)}

    data = {
        "crew": s.name,
        "members_total": len(s.members - {me}),
        "posts": [
            {
                "id": entry_id_to_text(r.entry_id),
                "seq": r.seq,
                "kind": r.kind,
                "text": r.text,
                "published_at": r.published_at,
                "reached": r.reached,
                "members_total": r.members_total,
                "holders": [
                    {**who(feed), "since": since, "via": r.via.get(feed)}
                    for feed, since in sorted(r.holders.items(), key=lambda kv: (kv[1], kv[0]))
                ],
                "missing": [who(feed) for feed in r.missing],
            }
            for r in rows
        ],
    }
    emit(data, as_json, _status_text)


@contextlib.contextmanager
def _status_store(state: CliState) -> Iterator[SqliteStore]:
    """Writable when no node holds the store (to log observations), else read-only."""
    try:
        store = state.home.open_store()
    except StoreLocked:
        store = state.home.open_store(readonly=True)
    try:
        yield store
    finally:
        store.close()


def _status_text(d: dict[str, Any]) -> str:
    if not d["posts"]:
        return f"You have not posted in {d['crew']!r} yet."
    lines = [f"{d['crew']}: your recent posts, and who has them ({d['members_total']} others)"]
    for p in d["posts"]:
        label = "replied" if p["kind"] == "reply" else p["kind"]
        lines.append(f"  reached {p['reached']} of {p['members_total']}  {label}: {p['text']}")
        if p["holders"]:
            has = ", ".join(
                f"{h['name'] or h['feed'][:13]} (since {_when(h['since'])})" for h in p["holders"]
            )
            lines.append(f"    has it: {has}")
        if p["missing"]:
            missing = ", ".join(m["name"] or m["feed"][:13] for m in p["missing"])
            lines.append(f"    not known to have it yet: {missing}")
    return "\n".join(lines)


def _when(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000).strftime("%Y-%m-%d %H:%M")
