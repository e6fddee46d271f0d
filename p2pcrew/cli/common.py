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


def publish_payload(home: Home, payload: bytes, *, force: bool) -> bytes:
    """Publish one payload directly, or through the running node holding the store.

    Returns the new entry's id. Crew content (plaintext naming a crew) is sealed by
    whichever process holds the store, with the keyring attached.
    """
    from p2pcrew import publishing
    from p2pcrew.control import publish_via_control
    from p2pcrew.crew.delivery import publish_riding_receipts
    from p2pcrew.crew.envelope import is_envelope
    from p2pcrew.crew.keyring import Keyring
    from p2pcrew.feed.content import decode_content
    from p2pcrew.feed.sqlite_store import StoreLocked

    try:
        store = home.open_store()
    except StoreLocked:
        if not home.control_socket.exists():
            raise
        [entry_id] = publish_via_control(home.control_socket, payload, force=force)
        return entry_id
    with contextlib.closing(store):
        identity = load_identity(home)
        Keyring.attach(store, identity)
        if is_envelope(payload):
            [entry] = publishing.publish_payloads(store, identity, [payload], force=force)
        else:
            item = decode_content(payload)
            [entry] = publishing.publish(store, identity, [item], force=force)
            publish_riding_receipts(store, identity, [item])  # best effort, never raises
        return entry.id


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
