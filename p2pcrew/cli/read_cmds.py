"""Read-only commands: feeds, log, show, check. They work beside a running node."""

from __future__ import annotations

import sys
from typing import Any

import click

from p2pcrew.cli import EXIT_ERROR, CliState, cli
from p2pcrew.cli.common import ENTRY, FEED, load_identity, open_store, pass_state
from p2pcrew.cli.output import emit, json_option
from p2pcrew.errors import P2PCrewError
from p2pcrew.feed.check import check_store
from p2pcrew.feed.ids import entry_id_to_text, feed_id_to_text
from p2pcrew.views import entry_line, entry_view, feed_view


def _feeds_text(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return "No feeds yet."
    lines = []
    for row in rows:
        mark = "  FORKED: the author signed two different histories" if row["forked"] else ""
        lines.append(f"{row['feed']}  {row['latest_seq']:>7}{mark}")
    return "\n".join(lines)


@cli.command()
@json_option
@pass_state
def feeds(state: CliState, as_json: bool) -> None:
    """List the feeds this store holds, their length, and any that forked."""
    with open_store(state.home, readonly=True) as store:
        rows = [feed_view(info) for info in store.feeds()]
        forks = {feed_id_to_text(p.author): p.seq for p in store.forks()}
    for row in rows:
        if row["feed"] in forks:
            row["fork_at_seq"] = forks[row["feed"]]
    emit(rows, as_json, _feeds_text)


@cli.command()
@click.argument("feed", type=FEED, required=False)
@click.option("--start", default=1, show_default=True, help="First sequence number.")
@click.option("--limit", default=50, show_default=True, help="At most this many entries.")
@json_option
@pass_state
def log(state: CliState, feed: bytes | None, start: int, limit: int, as_json: bool) -> None:
    """Show a feed's entries (your own by default)."""
    author = feed if feed is not None else load_identity(state.home).public_key
    with open_store(state.home, readonly=True) as store:
        rows = [entry_view(s) for s in store.range(author, start, start + limit - 1)]
    emit(rows, as_json, lambda rs: "\n".join(entry_line(r) for r in rs) or "No entries.")


@cli.command()
@click.argument("entry", type=ENTRY)
@json_option
@pass_state
def show(state: CliState, entry: bytes, as_json: bool) -> None:
    """Show one entry, its header fields and its content."""
    with open_store(state.home, readonly=True) as store:
        stored = store.get(entry)
    if stored is None:
        raise P2PCrewError(f"no entry {entry_id_to_text(entry)} in this store")
    view = entry_view(stored)
    e = stored.entry
    view["backlink"] = entry_id_to_text(e.backlink) if e.backlink else None
    view["lipmaa"] = entry_id_to_text(e.lipmaa_link) if e.lipmaa_link else None
    view["header_hex"] = e.header.hex()
    emit(view, as_json)


@cli.command()
@json_option
@pass_state
def check(state: CliState, as_json: bool) -> None:
    """Re-verify every stored chain and payload; exit 1 if anything is wrong."""
    with open_store(state.home, readonly=True) as store:
        problems = [
            {"feed": p.feed, "seq": p.seq, "rule": p.rule, "message": p.message}
            for p in check_store(store)
        ]
        total = store.count()
    emit(
        {"entries": total, "problems": problems},
        as_json,
        lambda d: "\n".join(
            [f"{p['feed']} #{p['seq']}: {p['rule']}: {p['message']}" for p in d["problems"]]
            + [f"Checked {d['entries']} entries: {len(d['problems'])} problem(s)."]
        ),
    )
    if problems:
        sys.exit(EXIT_ERROR)
