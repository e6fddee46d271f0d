"""Helpers shared by the CLI's command modules."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

import click

from p2pcrew.cli import CliState
from p2pcrew.feed.identity import Identity
from p2pcrew.feed.ids import text_to_entry_id, text_to_feed_id
from p2pcrew.feed.sqlite_store import SqliteStore
from p2pcrew.home import ENV_PASSPHRASE, Home

pass_state = click.make_pass_decorator(CliState)


def load_identity(home: Home) -> Identity:
    """Load the identity, asking for the passphrase on a terminal when needed."""
    passphrase = os.environ.get(ENV_PASSPHRASE)
    if passphrase is None and home.identity_path.exists() and home.identity_is_encrypted():
        passphrase = click.prompt("Passphrase", hide_input=True, err=True)
    return home.load_identity(passphrase)


@contextlib.contextmanager
def open_store(home: Home, *, readonly: bool = False) -> Iterator[SqliteStore]:
    store = home.open_store(readonly=readonly)
    try:
        yield store
    finally:
        store.close()


class EntryIdType(click.ParamType):  # type: ignore[type-arg,unused-ignore]
    name = "ENTRY"

    def convert(
        self, value: object, param: click.Parameter | None, ctx: click.Context | None
    ) -> bytes:
        if isinstance(value, bytes):
            return value
        return text_to_entry_id(str(value))


class FeedIdType(click.ParamType):  # type: ignore[type-arg,unused-ignore]
    name = "FEED"

    def convert(
        self, value: object, param: click.Parameter | None, ctx: click.Context | None
    ) -> bytes:
        if isinstance(value, bytes):
            return value
        return text_to_feed_id(str(value))


ENTRY = EntryIdType()
FEED = FeedIdType()
