"""LAN discovery over mDNS: announce with rotating tags, recognise friends, dial them.

Theory of operation
-------------------
The cryptography lives in ``discovery_tags``, the record format in
``discovery_record`` and the clock-skew search in ``discovery_skew`` (all sans-IO);
this module is the asyncio + zeroconf adapter around them, one ``LanDiscovery`` per
node.

- *Announcing.* ``_p2pcrew._tcp.local.`` with a random 16-hex instance name and a
  random host name (never the computer's name), the node's port, its LAN IPv4
  addresses, and the TXT record of ``discovery_record``: tags for the people this
  node follows and for its crews. Only people you follow get a tag: following
  is public, so a tag for every follower would let anyone who follows you notice
  you walk into a room. A new instance name (and a new nonce) is announced when
  the 10-minute window turns and when the machine's addresses change, so a laptop
  carried from venue to venue is not one stable name; when only the contacts
  change the record is updated in place with a fresh nonce.
- *Browsing.* Every service found or updated is resolved (bounded: at most
  ``MAX_PENDING_RESOLVES`` waiting, ``RESOLVE_CONCURRENCY`` at once), its TXT parsed
  strictly (malformed ones are ignored) and matched against all our secrets for the
  current window and the ones either side (``quick_match``, on the event loop, about
  1 ms for 512 secrets). A record that nothing recognised gets a *wide search* for a
  clock up to 7 days off (``wide_match``, up to ~30 ms, on a worker thread), rationed
  by one global ``WideSearchBudget`` (4 a minute, never twice for one nonce), so a
  flood of invented records cannot buy more than that; a window offset a wide search
  found is remembered and tried by the fast path from then on. For each friend
  recognised we call ``node.connect(Address("tcp", host, port, key), source="lan")``
  unless already connected, trying the announced addresses on our own subnets first. When both
  sides recognise each other at once, the smaller feed key dials at once and the
  other waits ``yield_delay`` first, so the two do not open crossing connections
  that the node would then refuse as duplicates. Only private or on-link addresses
  are dialled (a forged record cannot point us at the internet). A failed address is
  retried after ``retry_after`` while the announcement is still there; a link that
  dropped is redialled on the next poll.
- *Network changes.* Every ``interface_poll`` seconds the interface addresses are
  read (``ifaddr``, on a worker thread); on a change zeroconf rebinds its sockets
  (``async_update_interfaces``) and we re-announce under a new name. With no
  address left the service is withdrawn until one comes back.
- *Nobody there.* If nobody has been recognised ``quiet_timeout`` seconds after
  start, ``NOBODY_MESSAGE`` is logged and passed to ``on_nobody``, once: venue Wi-Fi
  often blocks device-to-device traffic, and the person should learn the way around
  it instead of waiting.
- *Stopping.* ``close`` cancels our tasks, cancels the browser and closes
  AsyncZeroconf, which sends the goodbye packets. Zeroconf runs on the caller's
  event loop (it is created inside it), so it starts no thread of its own.

Limits: IPv4 only (the node listens on IPv4). Zeroconf answers with all announced
addresses on every interface, so addresses are limited to non-loopback IPv4 outside
the carrier-grade NAT range 100.64.0.0/10 (Tailscale and similar overlays live
there); ``bind`` (``serve --listen HOST:PORT``) restricts discovery to one address.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import secrets
import time
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Any, Final

import ifaddr
from zeroconf import Error as ZeroconfError
from zeroconf import (
    InterfaceChoice,
    IPVersion,
    NonUniqueNameException,
    ServiceStateChange,
    Zeroconf,
)
from zeroconf.asyncio import AsyncServiceBrowser, AsyncServiceInfo, AsyncZeroconf

from p2pcrew.feed.ids import feed_id_to_text
from p2pcrew.feed.store import Store
from p2pcrew.replicate.address import Address
from p2pcrew.replicate.discovery_record import (
    Announcement,
    BadAnnouncement,
    UnsupportedVersion,
    decode_txt,
    encode_txt,
    order_addresses,
)
from p2pcrew.replicate.discovery_skew import (
    WideSearchBudget,
    quick_match,
    remember_skew,
    wide_match,
)
from p2pcrew.replicate.discovery_tags import (
    MAX_MATCH_SECRETS,
    SERVICE_TYPE,
    WINDOW_SECONDS,
    BadSecret,
    Contact,
    Match,
    Secret,
    build_announcement,
    group_secret,
    pair_secret,
    rank_contacts,
    window_of,
)
from p2pcrew.replicate.node import Node
from p2pcrew.replicate.scope import contact_graph
from p2pcrew.replicate.transport_errors import TransportError

log = logging.getLogger(__name__)

NOBODY_MESSAGE: Final = (
    "No one found on this network. If the venue blocks device-to-device traffic, "
    "use a pub (`p2pcrew join CODE`) or pair by address: `p2pcrew sync ADDRESS`"
)
QUIET_TIMEOUT: Final = 10.0
INTERFACE_POLL: Final = 3.0
CONTACTS_POLL: Final = 30.0
YIELD_DELAY: Final = 3.0
RETRY_AFTER: Final = 30.0
RESOLVE_TIMEOUT_MS: Final = 3000
RESOLVE_CONCURRENCY: Final = 4
MAX_PENDING_RESOLVES: Final = 32
MAX_SEEN_SERVICES: Final = 64
MAX_PEERS_PER_SERVICE: Final = 4
MAX_DIAL_ADDRESSES: Final = 4
MAX_RETRY_ENTRIES: Final = 256
OWN_NAMES_KEPT: Final = 4
FORGET_AFTER: Final = 10.0
"""Seconds a found friend may be neither announced nor connected before counting as gone."""
_OVERLAY_NET: Final = ipaddress.IPv4Network("100.64.0.0/10")

SecretSource = Callable[[], list[tuple[bytes, str]]]
"""Group secrets as (crew key, label) pairs; called on a worker thread."""
FoundCallback = Callable[[bytes, Address], None]


def no_groups() -> list[tuple[bytes, str]]:
    """A ``SecretSource`` with no group secrets (a node that belongs to no crew)."""
    return []


@dataclass(frozen=True, slots=True)
class _Seen:
    """A recognised announcement: who it is from and where to dial."""

    peers: tuple[bytes, ...]
    hosts: tuple[str, ...]
    port: int


# --------------------------------------------------------------------------- blocking helpers
# These run on a worker thread (asyncio.to_thread), never on the event loop.


def lan_addresses(bind: str | None = None) -> list[str]:
    """This machine's announceable IPv4 interfaces as sorted ``"ip/prefix"`` strings."""
    found: set[str] = set()
    for adapter in ifaddr.get_adapters():
        for ip in adapter.ips:
            if not isinstance(ip.ip, str):
                continue  # IPv6: the node listens on IPv4 only
            addr = ipaddress.IPv4Address(ip.ip)
            if addr.is_loopback or addr in _OVERLAY_NET or (bind and ip.ip != bind):
                continue
            found.add(f"{ip.ip}/{ip.network_prefix}")
    return sorted(found)


def lan_contacts(store: Store, me: bytes) -> list[Contact]:
    """Feeds ``me`` follows (not blocked), with when we last heard from each."""
    mine = contact_graph(store).get(me, {})
    followed = {feed for feed, action in mine.items() if action == "follow"} - {me}
    connected: dict[bytes, int] = {}
    for peer in store.known_peers():
        if peer.last_connected is not None:
            connected[peer.feed] = max(connected.get(peer.feed, 0), peer.last_connected)
    return [
        Contact(feed, max(_last_received(store, feed), connected.get(feed, 0))) for feed in followed
    ]


def _last_received(store: Store, feed: bytes) -> int:
    info = store.feed(feed)
    stored = store.get(info.latest_id) if info is not None else None
    return stored.received_at if stored is not None else 0


def collect_secrets(node: Node, groups: SecretSource) -> list[Secret]:
    """Pairwise secrets in announcing order, then group secrets; unusable keys skipped.

    At most ``MAX_MATCH_SECRETS`` in all, and the crews' group secrets always among
    them: someone following hundreds of feeds must still recognise their own crew
    (the pairwise list is cut short to make room, least recently active last).
    """
    me = node.identity.public_key
    crews: list[Secret] = []
    for crew_key, label in groups():
        try:
            crews.append(Secret(group_secret(crew_key), None, label))
        except BadSecret as exc:
            log.warning("LAN discovery skips group %r: %s", label, exc)
    crews = crews[:MAX_MATCH_SECRETS]
    room = MAX_MATCH_SECRETS - len(crews)
    owned: list[Secret] = []
    for feed in rank_contacts(lan_contacts(node.store, me)):
        if len(owned) >= room:
            break
        with contextlib.suppress(BadSecret):
            owned.append(Secret(pair_secret(node.identity, feed), feed, "contact"))
    return owned + crews


# --------------------------------------------------------------------------- the adapter


class LanDiscovery:
    """Announce, browse and dial on the LAN for one node. See the module docstring.

    ``start`` raises ``OSError`` or ``zeroconf.Error`` when mDNS cannot run here (no
    multicast, port 5353 unavailable); ``close`` never raises those.
    """

    def __init__(
        self,
        node: Node,
        port: int,
        *,
        group_secrets: SecretSource = no_groups,
        bind: str | None = None,
        quiet_timeout: float = QUIET_TIMEOUT,
        on_nobody: Callable[[str], None] | None = None,
        on_found: FoundCallback | None = None,
        interface_poll: float = INTERFACE_POLL,
        contacts_poll: float = CONTACTS_POLL,
        yield_delay: float = YIELD_DELAY,
        retry_after: float = RETRY_AFTER,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.node = node
        self.port = port
        self.found: dict[bytes, Address] = {}
        """Friends on the LAN now, with the address they announced (or we reached)."""
        self._group_secrets = group_secrets
        self._bind = bind
        self._quiet_timeout = quiet_timeout
        self._on_nobody = on_nobody
        self._on_found = on_found
        self._interface_poll = interface_poll
        self._contacts_poll = contacts_poll
        self._yield_delay = yield_delay
        self._retry_after = retry_after
        self._clock = clock
        self._me = node.identity.public_key
        self._zc: AsyncZeroconf | None = None
        self._browser: AsyncServiceBrowser | None = None
        self._info: AsyncServiceInfo | None = None
        self._own_names: deque[str] = deque(maxlen=OWN_NAMES_KEPT)
        self._window = 0
        self._addresses: list[str] = []
        self._secrets: list[Secret] = []
        self._contacts_due = 0.0
        self._seen: dict[str, _Seen] = {}
        self._pending: set[str] = set()
        self._resolve_slots = asyncio.Semaphore(RESOLVE_CONCURRENCY)
        self._dialing: set[bytes] = set()
        self._missing_since: dict[bytes, float] = {}
        self._retry_at: dict[tuple[bytes, str, int], float] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._nobody_reported = False
        self._wide_budget = WideSearchBudget()
        self.skews: tuple[int, ...] = ()
        """Window offsets of clocks found off by a wide search, latest first."""
        self.wide_searches = 0
        """Wide searches run so far (for tests and diagnostics)."""

    # ---- lifecycle ---------------------------------------------------------------

    async def start(self) -> None:
        """Open mDNS, start browsing, and announce in the background.

        Raises:
            OSError, zeroconf.Error: mDNS cannot run on this machine or network.
        """
        self._addresses = await asyncio.to_thread(lan_addresses, self._bind)
        await self._refresh_secrets()
        interfaces = [self._bind] if self._bind else InterfaceChoice.All
        self._zc = AsyncZeroconf(interfaces=interfaces, ip_version=IPVersion.V4Only)
        self._browser = AsyncServiceBrowser(
            self._zc.zeroconf, SERVICE_TYPE, handlers=[self._on_service_change]
        )
        self._spawn(self._maintain())
        self._spawn(self._watch_quiet())

    async def close(self) -> None:
        """Withdraw the announcement (goodbye packets) and release every resource."""
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        with contextlib.suppress(OSError, ZeroconfError):
            if self._browser is not None:
                await self._browser.async_cancel()
            if self._zc is not None:
                await self._zc.async_close()
        self._browser = self._zc = self._info = None

    async def __aenter__(self) -> LanDiscovery:
        await self.start()
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.close()

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("LAN discovery task failed", exc_info=task.exception())

    # ---- announcing ----------------------------------------------------------------

    async def _maintain(self) -> None:
        await self._step(self._announce(rename=True))
        while True:
            await asyncio.sleep(self._interface_poll)
            await self._step(self._tick())
            self._redial()
            self._forget_departed()

    async def _step(self, step: Awaitable[None]) -> None:
        """Run one maintenance step; a network hiccup must not end discovery for good."""
        try:
            await step
        except (OSError, ZeroconfError) as exc:
            log.warning("LAN discovery: %s", exc)

    async def _tick(self) -> None:
        addresses = await asyncio.to_thread(lan_addresses, self._bind)
        if addresses != self._addresses:
            log.info("network changed: %s -> %s", self._addresses, addresses)
            self._addresses = addresses
            assert self._zc is not None
            await self._zc.async_update_interfaces()
            await self._announce(rename=True)
        elif window_of(self._clock()) != self._window:
            await self._announce(rename=True)
        elif time.monotonic() >= self._contacts_due and await self._refresh_secrets():
            await self._announce(rename=False)

    async def _refresh_secrets(self) -> bool:
        """Reload contacts and group secrets; True when they changed."""
        self._contacts_due = time.monotonic() + self._contacts_poll
        fresh = await asyncio.to_thread(collect_secrets, self.node, self._group_secrets)
        changed = fresh != self._secrets
        self._secrets = fresh
        return changed

    async def _announce(self, *, rename: bool) -> None:
        """Announce afresh: a new nonce always; a new name when ``rename``.

        A renamed service is registered before the old name is withdrawn, so friends
        never see a gap in which the node seems to be gone.
        """
        if not self._addresses:
            await self._withdraw()
            return
        assert self._zc is not None
        self._window = window_of(self._clock())
        old = self._info
        if old is not None and not rename:
            info = self._service_info(old.name.removesuffix("." + SERVICE_TYPE))
            await (await self._zc.async_update_service(info))
            self._info = info
            return
        self._info = await self._register()
        if old is not None:
            await (await self._zc.async_unregister_service(old))

    def _service_info(self, instance: str) -> AsyncServiceInfo:
        announcement = build_announcement(self._me, self._secrets, self._window)
        return AsyncServiceInfo(
            SERVICE_TYPE,
            f"{instance}.{SERVICE_TYPE}",
            port=self.port,
            properties=encode_txt(announcement),
            server=f"{instance}.local.",
            parsed_addresses=[a.split("/")[0] for a in self._addresses],
        )

    async def _register(self) -> AsyncServiceInfo:
        """Register under a fresh random name; once more if that name is taken.

        Raises:
            NonUniqueNameException: taken twice (only a hostile responder does that).
        """
        with contextlib.suppress(NonUniqueNameException):  # 64 random bits collided
            return await self._register_as(secrets.token_hex(8))
        return await self._register_as(secrets.token_hex(8))

    async def _register_as(self, instance: str) -> AsyncServiceInfo:
        assert self._zc is not None
        info = self._service_info(instance)
        self._own_names.append(info.name)
        await (await self._zc.async_register_service(info))
        return info

    async def _withdraw(self) -> None:
        if self._info is not None and self._zc is not None:
            info, self._info = self._info, None
            await (await self._zc.async_unregister_service(info))

    # ---- browsing --------------------------------------------------------------------

    def _on_service_change(
        self,
        zeroconf: Zeroconf,
        service_type: str,
        name: str,
        state_change: ServiceStateChange,
    ) -> None:
        if name in self._own_names:
            return
        if state_change is ServiceStateChange.Removed:
            self._seen.pop(name, None)
        elif name not in self._pending and len(self._pending) < MAX_PENDING_RESOLVES:
            self._pending.add(name)
            self._spawn(self._resolve(name))

    async def _resolve(self, name: str) -> None:
        try:
            async with self._resolve_slots:
                if self._zc is None:
                    return
                info = AsyncServiceInfo(SERVICE_TYPE, name)
                if not await info.async_request(self._zc.zeroconf, RESOLVE_TIMEOUT_MS):
                    return
        finally:
            self._pending.discard(name)
        await self._consider(name, info)

    async def _consider(self, name: str, info: AsyncServiceInfo) -> None:
        try:
            announcement = decode_txt(info.text or b"")
        except UnsupportedVersion:
            return
        except BadAnnouncement as exc:
            log.info("ignoring a malformed LAN announcement: %s", exc)
            return
        window = window_of(self._clock())
        matches = quick_match(announcement, self._secrets, self._me, window, self.skews)
        if matches is None:
            matches = await self._wide_search(announcement, window)
        peers = tuple(dict.fromkeys(m.peer for m in matches))[:MAX_PEERS_PER_SERVICE]
        hosts = order_addresses(info.parsed_addresses(IPVersion.V4Only), self._addresses)
        if not peers or not hosts or not info.port:
            self._seen.pop(name, None)
            return
        if name in self._seen or len(self._seen) < MAX_SEEN_SERVICES:
            self._seen[name] = _Seen(peers, tuple(hosts[:MAX_DIAL_ADDRESSES]), info.port)
        for peer in peers:
            self._recognised(peer, Address("tcp", hosts[0], info.port, peer))
            self._maybe_dial(peer, tuple(hosts[:MAX_DIAL_ADDRESSES]), info.port)

    async def _wide_search(self, announcement: Announcement, window: int) -> list[Match]:
        """Look for a friend whose clock is off by up to 7 days, if the budget allows.

        The search runs on a worker thread (tens of milliseconds of hashing). The
        offset found is remembered so that the fast path recognises that clock's
        next records without spending the budget again.
        """
        if not self._wide_budget.admit(announcement.nonce, time.monotonic()):
            return []
        self.wide_searches += 1
        secrets_now = self._secrets  # replaced, never mutated: safe to hand to a thread
        found = await asyncio.to_thread(wide_match, announcement, secrets_now, self._me, window)
        if found:
            offset = found[0].window - window
            self.skews = remember_skew(self.skews, offset)
            log.info(
                "a LAN friend's clock is about %+d minutes off ours (wide search)",
                offset * WINDOW_SECONDS // 60,
            )
        return found

    def _forget_departed(self) -> None:
        """Drop from ``found`` friends neither announced nor connected for ``FORGET_AFTER``.

        The grace period covers a rotation, where the old name may be withdrawn
        before the new one is resolved: that is not someone leaving.
        """
        now = time.monotonic()
        present = {p for seen in self._seen.values() for p in seen.peers} | set(self.node.links)
        for peer in list(self.found):
            if peer in present:
                self._missing_since.pop(peer, None)
            elif now - self._missing_since.setdefault(peer, now) >= FORGET_AFTER:
                del self.found[peer]
                del self._missing_since[peer]

    def _recognised(self, peer: bytes, address: Address) -> None:
        if peer in self.found:
            return
        self.found[peer] = address
        log.info("found %s on the LAN at %s", feed_id_to_text(peer), address.host)
        if self._on_found is not None:
            self._on_found(peer, address)

    # ---- dialling ---------------------------------------------------------------------

    def _redial(self) -> None:
        for seen in list(self._seen.values()):
            for peer in seen.peers:
                self._maybe_dial(peer, seen.hosts, seen.port)

    def _maybe_dial(self, peer: bytes, hosts: tuple[str, ...], port: int) -> None:
        if peer == self._me or peer in self.node.links or peer in self._dialing:
            return
        now = time.monotonic()
        targets = tuple(h for h in hosts if self._retry_at.get((peer, h, port), 0.0) <= now)
        if targets:
            self._dialing.add(peer)
            self._spawn(self._dial(peer, targets, port))

    async def _dial(self, peer: bytes, hosts: tuple[str, ...], port: int) -> None:
        """Try ``hosts`` in order until one proves to be ``peer``.

        A failed address waits ``retry_after`` before it is tried again. The wait is
        per address, not per peer, so a replayed announcement pointing elsewhere does
        not hold up dialling the friend's real one.
        """
        try:
            if self._me > peer:  # the smaller key dials first; avoid crossing connections
                await asyncio.sleep(self._yield_delay)
            for host in hosts:
                if peer in self.node.links:
                    return
                address = Address("tcp", host, port, peer)
                try:
                    await self.node.connect(address, source="lan")
                except (TransportError, OSError, TimeoutError) as exc:
                    log.info("LAN dial %s failed: %s", address, exc)
                    self._back_off((peer, host, port))
                    continue
                self.found[peer] = address
                return
        finally:
            self._dialing.discard(peer)

    def _back_off(self, target: tuple[bytes, str, int]) -> None:
        now = time.monotonic()
        if len(self._retry_at) >= MAX_RETRY_ENTRIES:
            self._retry_at = {t: at for t, at in self._retry_at.items() if at > now}
        if len(self._retry_at) < MAX_RETRY_ENTRIES:
            self._retry_at[target] = now + self._retry_after

    async def _watch_quiet(self) -> None:
        await asyncio.sleep(self._quiet_timeout)
        if not self.found and not self._nobody_reported:
            self._nobody_reported = True
            log.warning("%s", NOBODY_MESSAGE)
            if self._on_nobody is not None:
                self._on_nobody(NOBODY_MESSAGE)


# --------------------------------------------------------------------------- serve's wrapper


async def start_lan_discovery(
    node: Node,
    host: str,
    port: int,
    *,
    echo: Callable[[str], None],
    quiet_timeout: float = QUIET_TIMEOUT,
    group_secrets: SecretSource = no_groups,
) -> LanDiscovery | None:
    """What ``p2pcrew serve --lan`` runs once the node listens on ``host:port``.

    Listening on every address (``0.0.0.0``) announces all LAN addresses; a specific
    IPv4 address restricts discovery to it; loopback or IPv6 turns it off. Progress
    and the "nobody found" hint go to ``echo``. Returns None (after saying why)
    when discovery cannot run; never raises for network reasons.
    """
    bind = _discovery_bind(host)
    if bind is None:
        echo(f"LAN discovery is off: {host} is not reachable from the local network.")
        return None
    discovery = LanDiscovery(
        node,
        port,
        bind=bind or None,
        group_secrets=group_secrets,
        quiet_timeout=quiet_timeout,
        on_nobody=echo,
        on_found=lambda peer, address: echo(
            f"Found {feed_id_to_text(peer)} on this network at {address.host}"
        ),
    )
    try:
        await discovery.start()
    except (OSError, ZeroconfError) as exc:
        await discovery.close()
        echo(f"LAN discovery unavailable here ({exc}); pair by address or use a pub.")
        return None
    echo("Looking for your crew on this network (mDNS).")
    return discovery


def _discovery_bind(host: str) -> str | None:
    """ "" for every interface, the address for one, None when discovery is pointless."""
    if host in ("", "0.0.0.0", "::"):  # noqa: S104 - comparing, not binding
        return ""
    try:
        addr = ipaddress.ip_address(host)
    except ValueError:
        return None  # a host name: we cannot tell which interface it is
    if addr.version != 4 or addr.is_loopback:
        return None
    return host
