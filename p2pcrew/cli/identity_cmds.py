"""Identity commands: init, whoami, export-key, import-key, locate."""

from __future__ import annotations

import os
import sys
from typing import IO

import click

from p2pcrew import publishing
from p2pcrew.cli import CliState, cli
from p2pcrew.cli.common import load_identity, open_store, pass_state
from p2pcrew.cli.output import emit, json_option
from p2pcrew.feed import content as c
from p2pcrew.feed.identity import (
    Identity,
    IdentityExists,
    PassphraseRequired,
    export_identity,
    import_identity_text,
    save_identity,
)
from p2pcrew.home import ENV_PASSPHRASE


def _new_passphrase(ask: bool) -> str | None:
    if not ask:
        return None
    from_env = os.environ.get(ENV_PASSPHRASE)
    if from_env:
        return from_env
    text: str = click.prompt("New passphrase", hide_input=True, confirmation_prompt=True, err=True)
    return text


@cli.command()
@click.option("--name", help="Your name as the crew will see it.")
@click.option("--passphrase", "ask", is_flag=True, help="Protect the secret key with a passphrase.")
@json_option
@pass_state
def init(state: CliState, name: str | None, ask: bool, as_json: bool) -> None:
    """Create your identity and store (does nothing if they exist)."""
    home = state.home
    home.ensure()
    created = not home.identity_path.exists()
    if created:
        save_identity(Identity.generate(), home.identity_path, _new_passphrase(ask))
    identity = load_identity(home)
    with open_store(home) as store:
        if name:
            publishing.publish(store, identity, [c.About(name=name, time=c.now_ms())])
    emit(
        {"feed": identity.feed_id, "created": created, "home": str(home.root)},
        as_json,
        lambda d: (
            f"{'Created' if d['created'] else 'Already set up:'} {d['feed']}\nData in {d['home']}"
        ),
    )


@cli.command()
@json_option
@pass_state
def whoami(state: CliState, as_json: bool) -> None:
    """Print your feed id."""
    identity = load_identity(state.home)
    emit({"feed": identity.feed_id}, as_json, lambda d: d["feed"])


@cli.command("export-key")
@click.option("--passphrase", "ask", is_flag=True, help="Encrypt the backup with a passphrase.")
@click.argument("output", type=click.Path(dir_okay=False, writable=True), required=False)
@pass_state
def export_key(state: CliState, ask: bool, output: str | None) -> None:
    """Print (or write to OUTPUT) a backup of your secret key. Keep it safe."""
    identity = load_identity(state.home)
    text = export_identity(identity, _new_passphrase(ask))
    if output is None:
        click.echo(text)
        return
    fd = os.open(output, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as handle:
        handle.write(text + "\n")
    click.echo(f"Backup written to {output} (mode 0600)", err=True)


@cli.command("import-key")
@click.argument("source", type=click.File("r"), default="-")
@click.option("--force", is_flag=True, help="Replace an existing identity.")
@pass_state
def import_key(state: CliState, source: IO[str], force: bool) -> None:
    """Restore your identity from a backup (file or stdin)."""
    home = state.home
    text = source.read()
    passphrase = os.environ.get(ENV_PASSPHRASE)
    try:
        identity = import_identity_text(text, passphrase)
    except PassphraseRequired:
        if not sys.stdin.isatty():
            raise
        passphrase = click.prompt("Backup passphrase", hide_input=True, err=True)
        identity = import_identity_text(text, passphrase)
    home.ensure()
    if home.identity_path.exists() and not force:
        raise IdentityExists(
            f"an identity already exists at {home.identity_path}; pass --force to replace it"
        )
    save_identity(identity, home.identity_path, overwrite=force)
    with open_store(home) as store:
        pending = publishing.mark_restored(store, identity)
    click.echo(f"Restored {identity.feed_id}")
    if pending:
        click.echo(
            "Publishing is paused until your feed has been fetched from a peer or pub "
            "(`p2pcrew sync ADDRESS`), so that restoring cannot fork it.",
            err=True,
        )


@cli.command()
@json_option
@pass_state
def locate(state: CliState, as_json: bool) -> None:
    """Show where your data, config and log files are."""
    home = state.home
    emit(
        {
            "home": str(home.root),
            "identity": str(home.identity_path),
            "store": str(home.store_dir / "p2pcrew.sqlite3"),
            "config": str(home.config_path),
            "logs": str(home.log_dir),
        },
        as_json,
    )
