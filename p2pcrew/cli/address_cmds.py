"""Pairing without discovery: show my address (and QR code), remember a peer's.

Where venue Wi-Fi blocks multicast, people pair by typing or scanning an address:
``p2pcrew address --qr`` on one laptop, ``p2pcrew connect ADDRESS`` (or a one-off
``p2pcrew sync ADDRESS``) on the other.
"""

from __future__ import annotations

import io
import socket

import click
import segno

from p2pcrew.cli import CliState, cli
from p2pcrew.cli.common import load_identity, open_store, pass_state
from p2pcrew.cli.output import emit, json_option
from p2pcrew.feed.store import PeerRecord
from p2pcrew.replicate.address import Address, parse_address

DEFAULT_PORT = 8008


def lan_addresses() -> list[str]:
    """This machine's IPv4 addresses others on the network could reach (best effort)."""
    found: list[str] = []
    try:
        import ifaddr  # a zeroconf dependency

        for adapter in ifaddr.get_adapters():
            for ip in adapter.ips:
                if isinstance(ip.ip, str) and not ip.ip.startswith("127."):
                    found.append(ip.ip)
    except (ImportError, OSError):
        pass
    return found or [socket.gethostname()]


def qr_text(text: str) -> str:
    out = io.StringIO()
    segno.make(text, error="m").terminal(out=out, compact=True)
    return out.getvalue()


@cli.command()
@click.option(
    "--port", default=DEFAULT_PORT, show_default=True, help="The port `serve` listens on."
)
@click.option("--qr", is_flag=True, help="Also print each address as a QR code.")
@json_option
@pass_state
def address(state: CliState, port: int, qr: bool, as_json: bool) -> None:
    """Print the addresses others can use to reach you (run `p2pcrew serve` too)."""
    key = load_identity(state.home).public_key
    addresses = [str(Address("tcp", host, port, key)) for host in lan_addresses()]
    if as_json:
        emit(addresses, True)
        return
    for text in addresses:
        click.echo(text)
        if qr:
            click.echo(qr_text(text))


@cli.command()
@click.argument("address_text", metavar="ADDRESS")
@pass_state
def connect(state: CliState, address_text: str) -> None:
    """Remember ADDRESS: `serve` and the app keep replicating with it."""
    target = parse_address(address_text)
    with open_store(state.home) as store:
        store.save_peer(PeerRecord(str(target), target.key, "manual"))
    click.echo(f"Remembered {target}. `p2pcrew serve` (or the app) will keep in touch with it.")
