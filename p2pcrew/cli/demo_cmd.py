"""``p2pcrew demo``: a small real crew on loopback, and the app as one of its members.

Three people, each with a data directory of their own in a temporary directory: you
(Ana, in the app), Ben and Cleo. Ben and Cleo are real nodes with their own stores,
listening on loopback on ports the OS picks, running on a background thread with an
event loop of its own; the app's node dials both, so everything on screen arrived
over real handshakes and replication. Every few seconds one of them acts: a reply, a
new thread, a request, a claim, a fulfilment, an answer to what you posted. Quitting
the app stops them and deletes the temporary directory.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path

import click

from p2pcrew.cli import cli
from p2pcrew.crew import service
from p2pcrew.crew.directory import crew_states
from p2pcrew.feed import content as c
from p2pcrew.feed.identity import Identity, save_identity
from p2pcrew.feed.sqlite_store import SqliteStore
from p2pcrew.home import Home
from p2pcrew.queries import Queries
from p2pcrew.replicate.address import Address
from p2pcrew.replicate.node import Node

log = logging.getLogger(__name__)

CREW_NAME = "Demo crew"
REPLIES = (
    "Sounds good to me.",
    "I can bring snacks.",
    "Count me in!",
    "Could we start half an hour later?",
    "Thanks for organising this.",
)
THREADS = (
    "Who has the key to the tool shed this week?",
    "Photos from Saturday are in the shared folder.",
    "Reminder: bring your own cups to the meeting.",
    "Anyone up for a litter pick on Sunday morning?",
)
ASKS: tuple[tuple[c.RequestKind, str, c.RequestCategory], ...] = (
    ("ask", "Need a ladder for Thursday", "tools"),
    ("offer", "Spare bread from the bakery tonight", "food"),
    ("ask", "Lift to the station on Friday", "transport"),
    ("offer", "Can help with tax forms", "skills"),
)


class Person:
    """One demo member: a home, an identity, a store and (once started) a node."""

    def __init__(self, root: Path, name: str) -> None:
        self.name = name
        self.home = Home(root / name.lower())
        self.home.ensure()
        self.identity = Identity.generate()
        save_identity(self.identity, self.home.identity_path)
        self.store = SqliteStore(self.home.store_dir)
        self.node = Node(self.store, self.identity)
        self.node.publish([c.About(name=name, time=c.now_ms())])
        self.address: Address | None = None

    def queries(self) -> Queries:
        return Queries(self.store, self.identity.public_key)

    def crew(self) -> bytes | None:
        found = [s.crew for s in crew_states(self.store) if s.name == CREW_NAME]
        return found[0] if found else None


class DemoCrew:
    """Ben and Cleo on a background event loop; ``ana`` is the home the app opens."""

    def __init__(self, root: Path, *, interval: float = 4.0) -> None:
        self.interval = interval
        self.ana_home = Home(root / "ana")
        self.ana_home.ensure()
        ana = Identity.generate()
        save_identity(ana, self.ana_home.identity_path)
        with contextlib.closing(SqliteStore(self.ana_home.store_dir)) as store:
            Node(store, ana).publish([c.About(name="Ana", time=c.now_ms())])
        self.ben = Person(root, "Ben")
        self.cleo = Person(root, "Cleo")
        self._seed(ana.public_key)
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._run, name="p2pcrew-demo", daemon=True)
        self.step = 0

    def _seed(self, ana: bytes) -> None:
        """Ben founds the crew with everyone in it and starts a thread and two requests."""
        ben, cleo = self.ben, self.cleo
        crew, payload = service.create(
            ben.identity, CREW_NAME, members=[ana, cleo.identity.public_key]
        )
        ben.node.publish_payload(payload)
        now = c.now_ms()
        ben.node.publish(
            [
                c.Post(text="Welcome to the demo crew! Say hello.", crew=crew, time=now),
                c.Request(
                    kind="ask",
                    title="Need a drill on Saturday",
                    category="tools",
                    needed_by=now + 2 * 86_400_000,
                    place="Elm Street",
                    crew=crew,
                    time=now,
                ),
                c.Request(
                    kind="offer",
                    title="Spare seedlings: tomatoes and kale",
                    category="food",
                    crew=crew,
                    time=now,
                ),
            ]
        )

    @property
    def addresses(self) -> tuple[Address, ...]:
        return tuple(p.address for p in (self.ben, self.cleo) if p.address is not None)

    def start(self, timeout: float = 10.0) -> None:
        """Start Ben's and Cleo's nodes; returns once both listen."""
        self._thread.start()
        if not self._ready.wait(timeout):
            raise RuntimeError("the demo peers did not start")

    def stop(self) -> None:
        if self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(timeout=15)
        for person in (self.ben, self.cleo):
            person.store.close()

    def _run(self) -> None:
        try:
            self._loop.run_until_complete(self._main())
        except Exception:  # a demo problem must not take the app down with it
            log.exception("the demo crew stopped")
        finally:
            self._loop.close()

    async def _main(self) -> None:
        self._stop = asyncio.Event()
        for person in (self.ben, self.cleo):
            await person.node.start()
            host, port = await person.node.listen("127.0.0.1", 0)
            person.address = Address("tcp", host, port, person.identity.public_key)
        if self.ben.address is not None:
            await self.cleo.node.connect(self.ben.address)
        self._ready.set()
        try:
            while not self._stop.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stop.wait(), self.interval)
                if not self._stop.is_set():
                    self.act()
        finally:
            for person in (self.ben, self.cleo):
                await person.node.close()

    def act(self) -> None:
        """One step of the script (runs on the demo loop; skips what is not possible)."""
        actions: list[Callable[[], bool]] = [
            self._reply,
            self._answer_ana,
            self._new_thread,
            self._claim,
            self._fulfil,
            self._new_request,
        ]
        for offset in range(len(actions)):
            action = actions[(self.step + offset) % len(actions)]
            try:
                done = action()
            except Exception:
                log.exception("demo step failed")
                done = False
            if done:
                break
        self.step += 1

    def _who(self) -> tuple[Person, Person]:
        """(actor, the other one), alternating."""
        return (self.ben, self.cleo) if self.step % 2 else (self.cleo, self.ben)

    def _reply(self) -> bool:
        actor, _ = self._who()
        crew = actor.crew()
        threads = actor.queries().threads(crew) if crew else []
        if not threads:
            return False
        root = threads[self.step % len(threads)].root
        text = REPLIES[self.step % len(REPLIES)]
        actor.node.publish([c.Post(text=text, root=root.id, crew=crew, time=c.now_ms())])
        return True

    def _answer_ana(self) -> bool:
        """Someone answers the latest post by a person who is neither Ben nor Cleo."""
        actor, other = self._who()
        crew = actor.crew()
        if crew is None:
            return False
        bots = {actor.identity.public_key, other.identity.public_key}
        for row in actor.queries().threads(crew):
            view = actor.queries().thread(row.root.id)
            if view is None:
                continue
            posts = [view.root, *(line.item for line in view.lines)]
            latest = max(posts, key=lambda p: p.received_order)
            if latest.author not in bots:
                reply_to = None if latest.id == view.root.id else latest.id
                post = c.Post(
                    text=f"{actor.name} here: good point, thanks!",
                    root=view.root.id,
                    reply_to=reply_to,
                    crew=crew,
                    time=c.now_ms(),
                )
                actor.node.publish([post])
                return True
        return False

    def _new_thread(self) -> bool:
        actor, _ = self._who()
        crew = actor.crew()
        if crew is None:
            return False
        text = THREADS[self.step % len(THREADS)]
        actor.node.publish([c.Post(text=text, crew=crew, time=c.now_ms())])
        return True

    def _claim(self) -> bool:
        actor, _ = self._who()
        crew = actor.crew()
        me = actor.identity.public_key
        for view in actor.queries().requests(crew, "open") if crew else []:
            if view.author != me:
                update = c.RequestUpdate(
                    request=view.id, action="claim", crew=crew, time=c.now_ms()
                )
                actor.node.publish([update])
                return True
        return False

    def _fulfil(self) -> bool:
        for actor in (self.ben, self.cleo):
            crew = actor.crew()
            me = actor.identity.public_key
            for view in actor.queries().requests(crew, "claimed") if crew else []:
                if view.claimer == me:
                    update = c.RequestUpdate(
                        request=view.id, action="fulfil", crew=crew, time=c.now_ms()
                    )
                    actor.node.publish([update])
                    return True
        return False

    def _new_request(self) -> bool:
        actor, _ = self._who()
        crew = actor.crew()
        if crew is None:
            return False
        kind, title, category = ASKS[self.step % len(ASKS)]
        request = c.Request(
            kind=kind,
            title=title,
            category=category,
            crew=crew,
            time=c.now_ms(),
        )
        actor.node.publish([request])
        return True


@cli.command()
@click.option(
    "--every", default=4.0, show_default=True, help="Seconds between the demo crew's actions."
)
def demo(every: float) -> None:
    """A small real crew of local peers on loopback, with the app open as one of them.

    Nothing touches your own data: the demo lives in a temporary directory that is
    deleted when you quit the app (Ctrl+Q).
    """
    from p2pcrew.tui.app import run_app  # textual is imported only when the app opens

    with tempfile.TemporaryDirectory(prefix="p2pcrew-demo-") as tmp:
        crew = DemoCrew(Path(tmp), interval=every)
        crew.start()
        try:
            run_app(crew.ana_home, listen=("127.0.0.1", 0), connect=crew.addresses, lan=False)
        finally:
            crew.stop()
