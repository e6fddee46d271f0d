"""``p2pcrew bundle export|import``: feeds on a USB stick when the network fails.

Export reads a read-only store, so it works beside a running node. Import writes,
so it needs the store to itself (stop ``p2pcrew serve`` first). Both leave out
feeds you blocked: blocked feeds are never served to, nor fetched from, others.
Import always prints its report, even for a damaged file, and exits 1 when
anything was rejected or the file was not intact, so scripts can tell.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from p2pcrew.bundle import ImportReport, export_bundle, import_bundle
from p2pcrew.cli import EXIT_ERROR, CliState, cli
from p2pcrew.cli.common import FEED, load_identity, open_store, pass_state
from p2pcrew.cli.output import emit, json_option
from p2pcrew.errors import P2PCrewError
from p2pcrew.feed.ids import feed_id_to_text
from p2pcrew.feed.store import Store
from p2pcrew.replicate.scope import compute_scope

FILE = click.Path(dir_okay=False, path_type=Path)


@cli.group()
def bundle() -> None:
    """Carry feeds on a file (a USB stick) where peers cannot connect."""


def _blocked(state: CliState, store: Store) -> frozenset[bytes]:
    """Feeds the owner of this store blocked."""
    me = load_identity(state.home).public_key
    return compute_scope(store, me, hops=0).blocked


@bundle.command("export")
@click.argument("file", type=FILE)
@click.option("--feed", "feeds", multiple=True, type=FEED, help="Export this feed (repeatable).")
@click.option("--crew", metavar="NAME", help="Export the feeds of one crew's members.")
@click.option("--force", is_flag=True, help="Replace FILE even if it is not a bundle.")
@json_option
@pass_state
def export_cmd(
    state: CliState,
    file: Path,
    feeds: tuple[bytes, ...],
    crew: str | None,
    force: bool,
    as_json: bool,
) -> None:
    """Write every entry of the chosen feeds (default: all but blocked) to FILE."""
    if crew is not None:
        raise P2PCrewError(
            "crews are not available yet; export every feed (no option) or some with --feed"
        )
    with open_store(state.home, readonly=True) as store:
        blocked = _blocked(state, store)
        for feed in feeds:
            if feed in blocked:
                raise P2PCrewError(
                    f"you blocked {feed_id_to_text(feed)}; blocked feeds are not passed on"
                )
        chosen = list(dict.fromkeys(feeds)) or [
            info.author for info in store.feeds() if info.author not in blocked
        ]
        report = export_bundle(store, file, chosen, replace_any=force)
    data = {
        "file": str(report.path),
        "feeds": report.feeds,
        "entries": report.entries,
        "bytes": report.size,
    }
    emit(
        data,
        as_json,
        lambda d: (
            f"Wrote {d['entries']} entries of {d['feeds']} feeds to {d['file']} "
            f"({d['bytes']} bytes)."
        ),
    )


@bundle.command("import")
@click.argument("file", type=FILE)
@json_option
@pass_state
def import_cmd(state: CliState, file: Path, as_json: bool) -> None:
    """Validate every entry in FILE and store the new ones; importing twice is harmless."""
    with open_store(state.home) as store:
        report = import_bundle(store, file, skip=_blocked(state, store))
    emit(import_view(file, report), as_json, _import_text)
    if report.error is not None:  # the counts above cover the entries before this point
        click.echo(f"error: {file}: {report.error}", err=True)
    if not report.ok:
        sys.exit(EXIT_ERROR)


def import_view(file: Path, report: ImportReport) -> dict[str, Any]:
    """The report as plain data: what ``--json`` prints and the text is made from."""
    error = report.error
    return {
        "file": str(file),
        "complete": error is None,
        "created": report.info.created if report.info else None,
        "entries_read": report.entries_read,
        "new": report.new,
        "already_had": report.already_had,
        "skipped_blocked": report.skipped,
        "rejected": report.rejected,
        "rejected_by_rule": dict(sorted(report.rejected_by_rule.items())),
        "rejections": [
            {"index": r.index, "feed": r.feed, "rule": r.rule, "message": r.message}
            for r in report.rejections
        ],
        "error": None
        if error is None
        else {"kind": error.kind, "offset": error.offset, "message": str(error)},
    }


def _import_text(d: dict[str, Any]) -> str:
    lines = [
        f"Read {d['entries_read']} entries from {d['file']}: {d['new']} new, "
        f"{d['already_had']} already here, {d['rejected']} rejected."
    ]
    if d["skipped_blocked"]:
        lines.append(f"Skipped {d['skipped_blocked']} entries of feeds you blocked.")
    if d["rejected"]:
        rules = ", ".join(f"{rule} {n}" for rule, n in d["rejected_by_rule"].items())
        lines.append(f"Rejected by rule: {rules}")
        lines += [f"  {r['rule']}: {r['message']}" for r in d["rejections"]]
        if len(d["rejections"]) < d["rejected"]:
            lines.append(f"  ... and {d['rejected'] - len(d['rejections'])} more")
    return "\n".join(lines)
