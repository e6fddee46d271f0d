"""Pub commands (``p2pcrew pub serve|invite|members|config``) and the member's ``join``.

The pub runs with its own data directory (``p2pcrew --home /var/lib/p2pcrew-pub pub
serve``): its identity (created on first run), store, members and invite book. A
member joins with ``p2pcrew join CODE`` from their own data directory. See docs/pub.md.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any, Final

import click
import segno

from p2pcrew.cli import CliState, cli
from p2pcrew.cli.common import load_identity, open_store, pass_state
from p2pcrew.cli.output import emit, json_option
from p2pcrew.errors import P2PCrewError
from p2pcrew.feed.identity import Identity, save_identity
from p2pcrew.feed.ids import feed_id_to_text
from p2pcrew.feed.store import now_ms
from p2pcrew.home import Home
from p2pcrew.pub import invites as inv
from p2pcrew.pub.config import (
    ConfigError,
    PubConfig,
    check_public_url,
    default_path,
    load_config,
    parse_host_port,
    with_overrides,
)
from p2pcrew.pub.relay import INVITE_USE, INVITES_FILE, MEMBERS_FILE, Members, PubRelay
from p2pcrew.pub.server import PubService
from p2pcrew.replicate.address import Address
from p2pcrew.replicate.node import Node
from p2pcrew.replicate.peer import PeerLink, RemoteError
from p2pcrew.replicate.transport_errors import TransportError
from p2pcrew.replicate.ws_transport import dial

REQUEST_TIMEOUT: Final = 20.0
SETTLE_POLLS: Final = 3
"""In sync across this many polls (50 ms apart): nothing is still in flight."""

config_option = click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Pub config file (TOML). Default: pub.toml in the data directory, if present.",
)


def _config(home: Home, path: Path | None, **overrides: str | None) -> PubConfig:
    if path is None:
        config = load_config(default_path(home.root), required=False)
    else:
        config = load_config(path)
    return with_overrides(config, **overrides)


def _endpoint(text: str, what: str) -> tuple[str, int] | None:
    return parse_host_port(text, what) if text else None


@cli.group()
def pub() -> None:
    """Run a pub (an always-on relay for your crews) and invite members to it."""


@pub.command()
@config_option
@click.option("--listen", help="HOST:PORT for TCP peers; '' turns TCP off. Overrides the config.")
@click.option("--http", help="HOST:PORT for status, metrics and /ws; '' turns it off.")
@pass_state
def serve(state: CliState, config_path: Path | None, listen: str | None, http: str | None) -> None:
    """Run the pub until SIGTERM or Ctrl-C (headless; logs in the data directory)."""
    config = _config(state.home, config_path, listen=listen, http=http)
    tcp, web_at = _endpoint(config.listen, "listen"), _endpoint(config.http, "http")
    if tcp is None and web_at is None:
        raise ConfigError("both --listen and --http are off: the pub would be unreachable")
    identity = _pub_identity(state.home)
    _log_warnings_to_stderr()
    with open_store(state.home) as store:
        relay = PubRelay(store, identity, config, state.home.root)
        asyncio.run(_serve(PubService(relay, config, state.home.root), tcp, web_at))


def _pub_identity(home: Home) -> Identity:
    """The pub's own key, created (mode 0600) on the first run."""
    if not home.identity_path.exists():
        home.ensure()
        save_identity(Identity.generate(), home.identity_path)
    return load_identity(home)


def _log_warnings_to_stderr() -> None:
    """Under systemd, stderr is the journal: the operator sees warnings there too."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setLevel(logging.WARNING)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    logging.getLogger("p2pcrew").addHandler(handler)


async def _serve(
    service: PubService, tcp: tuple[str, int] | None, http: tuple[str, int] | None
) -> None:
    try:
        await service.start(tcp, http)
    except OSError as exc:
        await service.shutdown()
        raise P2PCrewError(f"cannot listen: {exc.strerror or exc}") from exc
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    click.echo(f"Pub {service.relay.identity.feed_id} with {len(service.relay.members)} members")
    if service.tcp_address is not None:
        click.echo(f"Listening (tcp): {service.tcp_address}")
    if service.ws_address is not None:
        click.echo(f"Listening (ws): {service.ws_address}")
        click.echo(f"Status page: {service.http_url}")
    await stop.wait()
    click.echo("Stopping.")
    await service.shutdown()
    click.echo("Stopped.")


@pub.command()
@click.option(
    "--uses",
    default=1,
    show_default=True,
    type=click.IntRange(1, inv.MAX_USES),
    help="How many people may join with it.",
)
@click.option("--expires", default="7d", show_default=True, help="30m, 12h, 7d, 2w or never.")
@click.option("--url", "urls", multiple=True, help="How members reach the pub (repeatable).")
@click.option("--qr/--no-qr", default=True, show_default=True, help="Also print a QR code.")
@config_option
@json_option
@pass_state
def invite(
    state: CliState,
    uses: int,
    expires: str,
    urls: tuple[str, ...],
    qr: bool,
    config_path: Path | None,
    as_json: bool,
) -> None:
    """Create an invite code (and QR code) for new members. Works while the pub runs."""
    home = state.home
    if not home.identity_path.exists():
        raise P2PCrewError(f"no pub in {home.root}: run `p2pcrew pub serve` there first")
    identity = load_identity(home)
    for url in urls:
        check_public_url(url, "--url")
    chosen = list(urls) or inv.advertised_urls(home.root, _config(home, config_path))
    seconds = inv.parse_duration(expires)
    now = now_ms()
    until = None if seconds is None else now + seconds * 1000
    secret = inv.InviteBook(home.root / INVITES_FILE).create(uses=uses, expires=until, now=now)
    code = inv.InviteCode(identity.public_key, tuple(chosen), secret, until)
    data = {
        "code": code.encode(),
        "uses": uses,
        "expires": until,
        "urls": chosen,
        "pub": identity.feed_id,
    }
    emit(data, as_json, _invite_text)
    if all(inv.is_local_only(u) for u in chosen):
        click.echo("note: these addresses only work on this machine; set public_urls", err=True)
    if qr and not as_json:
        segno.make(code.qr_text(), error="l").terminal(compact=True)


def _invite_text(d: dict[str, Any]) -> str:
    until = "never expires" if d["expires"] is None else f"expires {inv.format_time(d['expires'])}"
    uses = "1 use" if d["uses"] == 1 else f"{d['uses']} uses"
    return f"{d['code']}\n\nInvite for {uses}; {until}. New members run: p2pcrew join CODE"


@pub.command()
@json_option
@pass_state
def members(state: CliState, as_json: bool) -> None:
    """List the pub's members (feed ids and when they joined)."""
    rows = [
        {"feed": feed_id_to_text(k), "joined": v}
        for k, v in sorted(Members(state.home.root / MEMBERS_FILE).joined().items())
    ]
    emit(
        rows,
        as_json,
        lambda rs: (
            "\n".join(f"{r['feed']}  joined {inv.format_time(r['joined'])}" for r in rs)
            or "No members yet. Create an invite with `p2pcrew pub invite`."
        ),
    )


@pub.command("config")
@config_option
@json_option
@pass_state
def show_config(state: CliState, config_path: Path | None, as_json: bool) -> None:
    """Print the settings the pub would run with (defaults, file, environment)."""
    config = _config(state.home, config_path)
    data = {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(config).items()}
    emit(data, as_json)


# ---- the member's side -----------------------------------------------------------------


@cli.command()
@click.argument("code")
@click.option(
    "--via",
    type=click.Choice(["any", "tcp", "ws"]),
    default="any",
    show_default=True,
    help="Use only the invite's TCP or only its WebSocket addresses.",
)
@click.option("--timeout", default=120.0, show_default=True, help="Seconds for the first sync.")
@json_option
@pass_state
def join(state: CliState, code: str, via: str, timeout: float, as_json: bool) -> None:
    """Join a pub with an invite CODE, then sync with it once."""
    invite = inv.parse_code(code)
    invite.check_not_expired(now_ms())
    addresses = [a for a in invite.addresses() if via == "any" or (via == "ws") == a.is_websocket]
    if not addresses:
        raise inv.InviteError(f"this invite holds no {via} address; try --via any")
    identity = load_identity(state.home)
    with open_store(state.home) as store:
        result = asyncio.run(_join(Node(store, identity), invite, addresses, timeout))
    emit(result, as_json, _join_text)


async def _join(
    node: Node, invite: inv.InviteCode, addresses: list[Address], timeout: float
) -> dict[str, Any]:
    await node.start()
    try:
        link, address = await _reach(node, addresses)
        try:
            answer = await link.request(INVITE_USE, {"secret": invite.secret}, REQUEST_TIMEOUT)
        except RemoteError as exc:
            raise _refusal(exc, address) from None
        except TimeoutError:
            raise inv.InviteError(f"the pub at {address} did not answer the invite") from None
        await _settle(node, link, timeout)
    finally:
        await node.close()
    return {
        "pub": feed_id_to_text(invite.pub),
        "address": str(address),
        "already_member": bool(isinstance(answer, dict) and answer.get("already")),
        "received": link.entries_received,
        "sent": link.entries_sent,
    }


async def _reach(node: Node, addresses: list[Address]) -> tuple[PeerLink, Address]:
    """The first address that answers. Raises PubUnreachable listing every attempt."""
    failures: list[str] = []
    for address in addresses:
        try:
            return await dial(node, address, source="pub"), address
        except (TransportError, OSError, TimeoutError) as exc:
            failures.append(f"{address}: {exc or type(exc).__name__}")
    raise inv.PubUnreachable("could not reach the pub at " + "; ".join(failures))


def _refusal(exc: RemoteError, address: Address) -> inv.InviteError:
    if exc.reason == inv.REASON_INVALID:
        return inv.InviteNotValid()
    if exc.reason == inv.REASON_RATE:
        return inv.InviteRateLimited()
    if exc.reason == "closed":
        return inv.PubUnreachable(f"the pub at {address} hung up before answering")
    return inv.InviteError(f"the pub at {address} refused the invite: {exc}")


async def _settle(node: Node, link: PeerLink, timeout: float) -> None:
    """Replicate until in sync (as ``sync`` does), then say goodbye."""
    deadline = time.monotonic() + timeout
    stable = 0
    while time.monotonic() < deadline and not link.closed.is_set() and stable < SETTLE_POLLS:
        stable = stable + 1 if node.in_sync_with(link.peer) else 0
        await asyncio.sleep(0.05)
    if not link.closed.is_set():
        await link.goodbye()


def _join_text(d: dict[str, Any]) -> str:
    how = "You were already a member of" if d["already_member"] else "Joined"
    return (
        f"{how} the pub {d['pub']} at {d['address']}.\n"
        f"Synced: received {d['received']} entries, sent {d['sent']}."
    )
