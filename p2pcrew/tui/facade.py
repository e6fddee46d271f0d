"""The small interface the terminal app talks to: queries, commands and an event stream.

The app never touches SQL, the replication engine or the codec; it asks this object.
``Facade`` owns the store, the identity, the ``Node`` (started on the app's event
loop) and the control socket that lets CLI commands publish while the app runs.

- Queries: ``main``, ``thread``, ``board``, ``request_panel``, ``members`` read the
  store (safe from worker threads); ``sync_status``, ``peers``, ``delivery``,
  ``addresses`` read the node (event loop only).
- Commands: ``post``, ``reply``, ``ask``, ``act``, crew changes, ``connect``,
  ``join_pub``. They raise ``P2PCrewError`` (``InvalidContent`` and friends) with a
  message meant for the person; the app shows it, never a traceback.
- Events: ``subscribe(listener)``; the listener gets ``DataChanged`` whenever entries
  arrive or are published (in bursts: the app coalesces them) and ``Notice`` for
  things worth telling (a peer failed to connect, LAN discovery found nobody).

No textual import here: a test checks that the core never pulls it in.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from typing import Any

from p2pcrew.crew import service
from p2pcrew.crew.directory import crew_state
from p2pcrew.crew.membership import Change
from p2pcrew.errors import P2PCrewError
from p2pcrew.feed import content as c
from p2pcrew.feed.identity import Identity, save_identity
from p2pcrew.feed.ids import text_to_feed_id
from p2pcrew.feed.requests import allowed_actions
from p2pcrew.feed.store import Store
from p2pcrew.home import ENV_PASSPHRASE, Home
from p2pcrew.queries import Queries
from p2pcrew.replicate.address import Address, parse_address
from p2pcrew.replicate.node import Node
from p2pcrew.tui import network, readmodel
from p2pcrew.tui import viewmodels as vm
from p2pcrew.tui.netrun import NetworkOptions, NetworkRunner, Notice

__all__ = ["DataChanged", "Facade", "FacadeEvent", "NetworkOptions", "Notice"]

log = logging.getLogger(__name__)

RECEIVING_WINDOW = 3.0
"""Seconds after the last received entry during which the status says "receiving"."""


@dataclass(frozen=True, slots=True)
class DataChanged:
    """Entries arrived or were published: what the screens show may be stale."""


FacadeEvent = DataChanged | Notice
Listener = Callable[[FacadeEvent], None]


class Facade:
    def __init__(
        self,
        home: Home,
        store: Store,
        *,
        network: NetworkOptions | None = None,
        clock: Callable[[], int] = c.now_ms,
        tz: tzinfo | None = None,
    ) -> None:
        self.home = home
        self.store = store
        self.clock = clock
        self.tz: tzinfo = tz or datetime.now().astimezone().tzinfo or UTC
        """The person's time zone, for dates they read and type."""
        self.identity: Identity | None = None
        self.node: Node | None = None
        self._queries: Queries | None = None
        self._listeners: list[Listener] = []
        self._runner = None if network is None else NetworkRunner(home, network, self._emit)
        self._received_total = 0
        self._received_at = 0.0

    @classmethod
    def open(cls, home: Home, **kwargs: Any) -> Facade:
        """Open the store and load the identity if it needs no passphrase.

        Raises StoreLocked (another process writes there) and the identity errors
        (an insecure or corrupt key file)."""
        home.ensure()
        facade = cls(home, home.open_store(), **kwargs)
        try:
            facade.try_load_identity()
        except BaseException:
            facade.store.close()
            raise
        return facade

    # ---- identity -------------------------------------------------------------------

    @property
    def has_identity_file(self) -> bool:
        return self.home.identity_path.exists()

    @property
    def me(self) -> bytes:
        return self._identity().public_key

    def try_load_identity(self) -> bool:
        """Load the identity unless it is missing, or encrypted with no passphrase in
        the environment (then ``unlock`` asks). Raises the identity module's errors."""
        if not self.has_identity_file:
            return False
        if self.home.identity_is_encrypted() and ENV_PASSPHRASE not in os.environ:
            return False
        self._adopt(self.home.load_identity())
        return True

    def unlock(self, passphrase: str) -> None:
        """Raises WrongPassphrase (a P2PCrewError) and the other identity errors."""
        self.adopt(self.open_identity(passphrase))

    def open_identity(self, passphrase: str) -> Identity:
        """The slow half of ``unlock`` (Argon2id), safe in a worker thread."""
        return self.home.load_identity(passphrase)

    def create_identity(self, name: str, passphrase: str | None = None) -> None:
        """Raises InvalidContent for a bad name, IdentityExists if one appeared."""
        self.adopt(self.new_identity(name, passphrase), name)

    def new_identity(self, name: str, passphrase: str | None = None) -> Identity:
        """The slow half of ``create_identity`` (key file, Argon2id with a passphrase),
        safe in a worker thread: generate and save a key pair; checks the name first."""
        c.About(name=name.strip(), time=self.clock())
        identity = Identity.generate()
        save_identity(identity, self.home.identity_path, passphrase or None)
        return identity

    def adopt(self, identity: Identity, name: str = "") -> None:
        """Use ``identity`` from now on (event loop); publish ``name`` if given."""
        self._adopt(identity)
        if name.strip():
            self._publish([c.About(name=name.strip(), time=self.clock())])

    def _adopt(self, identity: Identity) -> None:
        self.identity = identity
        self.node = Node(self.store, identity, on_change=self._node_changed)
        self._queries = Queries(self.store, identity.public_key)

    def _identity(self) -> Identity:
        if self.identity is None:
            raise P2PCrewError("create or unlock your identity first")
        return self.identity

    def _nodes(self) -> tuple[Node, Queries]:
        if self.node is None or self._queries is None:
            raise P2PCrewError("create or unlock your identity first")
        return self.node, self._queries

    # ---- events ---------------------------------------------------------------------

    def subscribe(self, listener: Listener) -> Callable[[], None]:
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener)

    def _emit(self, event: FacadeEvent) -> None:
        for listener in list(self._listeners):
            listener(event)

    def _node_changed(self) -> None:
        if self.node is not None:
            total = sum(self.node.stats.received.values())
            if total != self._received_total:
                self._received_total = total
                self._received_at = time.monotonic()
        self._emit(DataChanged())

    # ---- network lifecycle ------------------------------------------------------------

    async def start(self) -> None:
        """Start the node's network side (see ``netrun``); failures become notices."""
        node, _ = self._nodes()
        if self._runner is not None:
            await self._runner.start(node)
            self._emit(DataChanged())

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.close(self.node)
        self.store.close()

    # ---- queries: the store (any thread) ------------------------------------------------

    def main(self, crew: bytes | None) -> readmodel.MainData:
        _, queries = self._nodes()
        return readmodel.main_data(self.store, queries, crew, self.clock())

    def thread(self, root: bytes) -> readmodel.ThreadData | None:
        _, queries = self._nodes()
        return readmodel.thread_data(queries, root, self.clock())

    def board(self, crew: bytes | None, tab: vm.BoardTab) -> readmodel.BoardData:
        _, queries = self._nodes()
        return readmodel.board_data(self.store, queries, crew, tab, self.clock())

    def request_panel(self, request: bytes) -> tuple[list[str], str, tuple[c.RequestAction, ...]]:
        """(detail lines, action hints, allowed actions) of one request."""
        _, queries = self._nodes()
        view = queries.request(request)
        if view is None:
            return ["This request is not here any more."], "", ()
        detail, hints = readmodel.request_panel(queries, view, self.clock(), self.tz)
        return detail, hints, allowed_actions(view, queries.me)

    def members(self, crew: bytes) -> list[readmodel.Member]:
        _, queries = self._nodes()
        return readmodel.members(self.store, queries, crew)

    def crew_name(self, crew: bytes | None) -> str:
        return readmodel.crew_name(self.store, crew)

    # ---- queries: the node (event loop) ---------------------------------------------------

    def sync_status(self) -> vm.SyncStatus:
        node = self.node
        if node is None:
            return vm.SyncStatus(0, 0, False, 0, "off")
        receiving = time.monotonic() - self._received_at < RECEIVING_WINDOW
        return vm.SyncStatus(
            peers=len(node.links),
            behind=network.behind(node.state),
            receiving=receiving and self._received_total > 0,
            received_total=self._received_total,
            network="off" if self._runner is None else self._runner.status,
        )

    def peers(self) -> list[vm.PeerInfo]:
        node, _ = self._nodes()
        return network.peer_infos(node)

    def names(self) -> dict[bytes, str]:
        _, queries = self._nodes()
        return queries.names()

    def addresses(self) -> list[str]:
        """Where others can reach us, e.g. ``tcp://192.168.1.20:8008#feed_...``."""
        return [] if self._runner is None else self._runner.addresses(self.me)

    def delivery(self, root: bytes) -> network.Delivery | None:
        """Which members of the thread's crew hold my latest post in it."""
        node, queries = self._nodes()
        view = queries.thread(root)
        return None if view is None else network.thread_delivery(node, view, self.clock())

    def maintain(self) -> None:
        """Periodic upkeep while the app runs (delivery observations and receipts)."""
        if self.node is not None:
            network.maintain_delivery(self.node)

    # ---- commands ------------------------------------------------------------------------

    def _publish(self, items: Sequence[c.Content]) -> bytes:
        node, _ = self._nodes()
        entry = node.publish(list(items))[-1].id
        crews = {crew for item in items if (crew := getattr(item, "crew", None)) is not None}
        if crews:  # a due receipt rides along with my publication in that crew
            network.maintain_delivery(node, crews)
        return entry

    def _publish_payload(self, payload: bytes) -> None:
        node, _ = self._nodes()
        node.publish_payload(payload)

    def set_name(self, name: str) -> None:
        self._publish([c.About(name=name.strip(), time=self.clock())])

    def post(self, text: str, crew: bytes | None) -> bytes:
        return self._publish([c.Post(text=text.strip(), crew=crew, time=self.clock())])

    def reply(self, root: bytes, reply_to: bytes, text: str) -> bytes:
        _, queries = self._nodes()
        view = queries.thread(root)
        if view is None:
            raise P2PCrewError("that thread is not here any more")
        parent = None if reply_to == root else reply_to
        post = c.Post(
            text=text.strip(),
            root=root,
            reply_to=parent,
            crew=view.root.post.crew,
            time=self.clock(),
        )
        return self._publish([post])

    def ask(self, crew: bytes | None, **fields: Any) -> bytes:
        """Publish a request; ``fields`` as ``content.Request`` (kind, title, ...)."""
        return self._publish([c.Request(crew=crew, time=self.clock(), **fields)])

    def act(self, request: bytes, action: c.RequestAction) -> bytes:
        _, queries = self._nodes()
        view = queries.request(request)
        if view is None:
            raise P2PCrewError("that request is not here any more")
        if action not in allowed_actions(view, queries.me):
            raise P2PCrewError(f"you cannot {action} this request now (it is {view.status})")
        update = c.RequestUpdate(
            request=request, action=action, crew=view.request.crew, time=self.clock()
        )
        return self._publish([update])

    def create_crew(self, name: str, description: str | None = None) -> bytes:
        crew, payload = service.create(self._identity(), name.strip(), description=description)
        self._publish_payload(payload)
        return crew

    def _change(self, crew: bytes, what: Change) -> None:
        self._publish_payload(service.change(self.store, self._identity(), crew, what))

    def invite(self, crew: bytes, feed_text: str) -> bytes:
        """Raises InvalidId for a mistyped feed id, crew rule errors otherwise."""
        member = text_to_feed_id(feed_text)
        self._change(crew, Change("add", frozenset({member})))
        self._nodes()[0].add_feeds([member])
        return member

    def remove(self, crew: bytes, member: bytes) -> None:
        self._change(crew, Change("remove", frozenset({member})))

    def leave(self, crew: bytes) -> None:
        self._change(crew, Change("leave"))

    def rename(self, crew: bytes, name: str) -> None:
        description = crew_state(self.store, crew).description
        self._change(crew, Change("rename", name=name.strip(), description=description))

    async def connect(self, text: str) -> str:
        """Dial an address typed by a person. Raises BadAddress or P2PCrewError."""
        return await self.connect_address(parse_address(text))

    async def connect_address(self, address: Address) -> str:
        node, _ = self._nodes()
        if self._runner is None:
            raise P2PCrewError("the network is off")
        return await self._runner.connect(node, address)

    async def join_pub(self, code: str) -> str:
        """Use a pub invite and stay connected. Raises P2PCrewError (invite errors)."""
        from p2pcrew.tui.pubjoin import join_pub

        node, _ = self._nodes()
        if self._runner is None or self._runner.status != "on":
            raise P2PCrewError("the network is not running")
        return await join_pub(node, code, self.clock())
