"""Running the node's network side for the app: listen, control socket, dial, LAN.

Everything here reports failures as ``Notice`` events rather than raising, except
the explicit ``connect``: the app must keep working offline. No textual here.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from p2pcrew import control
from p2pcrew.errors import P2PCrewError
from p2pcrew.home import Home
from p2pcrew.replicate.address import Address
from p2pcrew.replicate.keep_in_touch import KeepInTouch, Outcome
from p2pcrew.replicate.node import Node
from p2pcrew.replicate.transport_errors import TransportError
from p2pcrew.tui import network

log = logging.getLogger(__name__)

NetStatus = Literal["off", "starting", "on", "failed"]


@dataclass(frozen=True, slots=True)
class Notice:
    """Something worth telling the person (shown as a notification)."""

    text: str
    severity: Literal["information", "warning", "error"] = "information"


@dataclass(frozen=True, slots=True)
class NetworkOptions:
    host: str = "0.0.0.0"  # noqa: S104 - peers on the LAN must reach us
    port: int = 8008
    connect: tuple[Address, ...] = ()
    lan: bool = True
    control: bool = True


class NetworkRunner:
    """The listening socket, control socket, LAN discovery and dial tasks of one node."""

    def __init__(self, home: Home, options: NetworkOptions, tell: Callable[[Notice], None]):
        self.home = home
        self.options = options
        self.tell = tell
        self.status: NetStatus = "off"
        self.bound: tuple[str, int] | None = None
        self._control: asyncio.AbstractServer | None = None
        self._lan: Any = None
        self.keep: KeepInTouch | None = None

    async def start(self, node: Node) -> None:
        """Listen (the configured port, else a free one), serve the control socket,
        dial the configured addresses and start LAN discovery."""
        self.status = "starting"
        await node.start()
        try:
            self.bound = await self._listen(node)
        except OSError as exc:
            self.status = "failed"
            self.tell(Notice(f"Cannot listen for peers: {exc.strerror or exc}", "error"))
            return
        self.status = "on"
        if self.options.control:
            await self._serve_control(node)
        # The configured addresses and the remembered peers, dialled again whenever their
        # link is down, for as long as the app runs (see replicate.keep_in_touch).
        self.keep = KeepInTouch(
            node,
            lambda address, source: self.connect(node, address, source=source),
            self._dialled,
            fixed=self.options.connect,
        )
        self.keep.start()
        if self.options.lan:
            await self._start_lan(node, *self.bound)

    async def _listen(self, node: Node) -> tuple[str, int]:
        host, port = self.options.host, self.options.port
        try:
            return await node.listen(host, port)
        except OSError as exc:
            if exc.errno != errno.EADDRINUSE or port == 0:
                raise
            self.tell(Notice(f"Port {port} is taken; listening on a free port instead."))
            return await node.listen(host, 0)

    async def _serve_control(self, node: Node) -> None:
        try:
            self._control = await control.serve_control(
                self.home.control_socket,
                lambda payload, force: node.publish_payload(payload, force=force),
            )
        except OSError as exc:
            log.warning("control socket unavailable: %s", exc)
            self.tell(Notice("CLI commands cannot publish while the app runs here.", "warning"))

    async def _start_lan(self, node: Node, host: str, port: int) -> None:
        try:
            from p2pcrew.crew.directory import lan_secrets
            from p2pcrew.replicate.discovery import start_lan_discovery
        except ImportError:
            return
        try:
            self._lan = await start_lan_discovery(
                node,
                host,
                port,
                echo=lambda text: self.tell(Notice(text)),
                group_secrets=lambda: lan_secrets(node.store, node.identity.public_key),
            )
        except Exception:  # discovery is a comfort: it never stops the app
            log.exception("LAN discovery failed to start")

    def _dialled(self, outcome: Outcome) -> None:
        """A failure to reach a configured address is a notice (once, until it changes or
        the peer is reached); a remembered peer that is simply not around today, or a
        retry failing the same way, is only a log line."""
        if outcome.error is None:
            return
        if outcome.news and outcome.address in self.options.connect:
            self.tell(Notice(outcome.error, "warning"))
        else:
            log.info("remembered peer unreachable: %s", outcome.error)

    async def connect(self, node: Node, address: Address, *, source: str = "manual") -> str:
        """Dial and keep replicating. Raises P2PCrewError naming the address."""
        if self.status != "on":
            raise P2PCrewError("the network is not running")
        try:
            if address.is_websocket:
                from p2pcrew.replicate.ws_transport import dial

                await dial(node, address, source=source)
            else:
                await node.connect(address, source=source)
        except (TransportError, OSError, TimeoutError) as exc:
            reason = str(exc) or type(exc).__name__
            raise P2PCrewError(f"could not connect to {address}: {reason}") from None
        return str(address)

    def addresses(self, me: bytes) -> list[str]:
        if self.bound is None:
            return []
        host, port = self.bound
        return [str(Address("tcp", h, port, me)) for h in network.local_hosts(host)]

    async def close(self, node: Node | None) -> None:
        if self.keep is not None:
            await self.keep.close()
            self.keep = None
        if self._lan is not None:
            with contextlib.suppress(Exception):
                await self._lan.close()
        if self._control is not None:
            self._control.close()
            with contextlib.suppress(OSError):
                self.home.control_socket.unlink()
        if node is not None and self.status != "off":
            await node.close()
        self.status = "off"
