"""Helpers for the crew functional tests: several peers at once, and raw store bytes.

CLI processes cost most of these tests' time (each one imports p2pcrew afresh), so
independent calls on different data directories run side by side through ``each``,
and setup that is not under test (creating identities, founding a crew) can be done
in-process on a data directory no node is running on. Otherwise stores are only read
from the test process, read-only, beside running nodes.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from p2pcrew import publishing
from p2pcrew.crew import service
from p2pcrew.crew.directory import crew_states
from p2pcrew.crew.keyring import Keyring
from p2pcrew.feed import content as c
from p2pcrew.feed.entry import Entry, create_entry, lipmaa
from p2pcrew.feed.identity import Identity, save_identity
from p2pcrew.feed.ids import feed_id_to_text
from p2pcrew.feed.sqlite_store import DB_NAME
from p2pcrew.home import Home
from tests.functional.procs import Crew, Peer, wait_until

T = TypeVar("T")
R = TypeVar("R")

SYNC_WAIT = 30.0
CREW = "tenants"


def each(fn: Callable[[T], R], items: Iterable[T]) -> list[R]:
    """``[fn(item) for item in items]``, run side by side (one thread per item).

    Only for items on different data directories: two writers on one are refused.
    """
    todo = list(items)
    if len(todo) <= 1:
        return [fn(item) for item in todo]
    with ThreadPoolExecutor(len(todo)) as pool:
        return list(pool.map(fn, todo))


def _learn_feed(peer: Peer) -> Peer:
    peer._feed = feed_id_to_text(Home(peer.home).load_identity().public_key)
    return peer


def cli_peers(crew: Crew, *names: str) -> list[Peer]:
    """Peers set up with ``p2pcrew init``, side by side."""
    return [_learn_feed(peer) for peer in each(crew.peer, names)]


def quick_peers(crew: Crew, *names: str) -> list[Peer]:
    """Peers set up in-process as ``p2pcrew init`` would: an identity and a store."""
    made = []
    for name in names:
        home = Home(crew.root / name)
        home.ensure()
        save_identity(Identity.generate(), home.identity_path, None)
        with contextlib.closing(home.open_store()):
            pass
        made.append(_learn_feed(crew.peer(name, init=False)))
    return made


def found_crew(
    founder: Peer, name: str, members: Iterable[Peer | bytes], description: str | None = None
) -> bytes:
    """Create crew ``name`` with ``members`` at once (epoch 0), in-process; no node may
    run on the founder's data directory. Returns the crew id."""
    home = Home(founder.home)
    identity = home.load_identity()
    keys = [m.key if isinstance(m, Peer) else m for m in members]
    with contextlib.closing(home.open_store()) as store:
        Keyring.attach(store, identity)
        crew_id, payload = service.create(identity, name, description=description, members=keys)
        publishing.publish_payloads(store, identity, [payload])
    return crew_id


def follow(peer: Peer, *others: Peer) -> None:
    """``peer`` follows ``others``, in-process (no node may run on its data directory)."""
    home = Home(peer.home)
    items: list[c.Content] = [
        c.Contact(contact=o.key, action="follow", time=c.now_ms()) for o in others
    ]
    with contextlib.closing(home.open_store()) as store:
        publishing.publish(store, home.load_identity(), items)


def sync_all(address: str, members: Iterable[Peer]) -> None:
    each(lambda p: p.run("sync", address), members)


def fails(peer: Peer, *args: str) -> Any:
    out = peer.run(*args, ok=False)
    assert out.returncode != 0, f"p2pcrew {' '.join(args)} should fail: {out.stdout}"
    return out


def holds(peer: Peer, feed: Peer, seq: int) -> bool:
    return peer.latest(feed.key) >= seq


def wait_holds(peer: Peer, feed: Peer, seq: int, timeout: float = SYNC_WAIT) -> None:
    wait_until(
        lambda: holds(peer, feed, seq), timeout, f"{peer!r} to hold {feed!r}'s feed up to {seq}"
    )


def wait_all_hold(readers: Iterable[Peer], authors: Iterable[Peer]) -> None:
    """Every reader holds every author's whole feed (as the author holds it now)."""
    targets = [(a, a.latest(a.key)) for a in authors]
    for reader in readers:
        for author, seq in targets:
            if reader is not author:
                wait_holds(reader, author, seq)


# --- what is in a store's files ----------------------------------------------------------


def db_files(peer: Peer) -> list[Path]:
    """The store's database files: the main file, its WAL and its shared-memory index."""
    main = Home(peer.home).store_dir / DB_NAME
    assert main.exists(), f"no store at {main}"
    return [p for p in (main, Path(f"{main}-wal"), Path(f"{main}-shm")) if p.exists()]


def plaintext_found(peer: Peer, secrets: Iterable[str]) -> list[str]:
    """The secrets whose UTF-8 bytes appear anywhere in the peer's database files."""
    raw = b"".join(p.read_bytes() for p in db_files(peer))
    return [s for s in secrets if s.encode("utf-8") in raw]


# --- views, as the CLI prints them ---------------------------------------------------------


def crew_view(peer: Peer) -> dict[str, Any]:
    """Name, epoch and members of the one crew ``peer`` knows (``crew list``/``members``)."""
    rows = peer.json("crew", "list")
    assert len(rows) == 1, f"{peer!r} lists crews {rows}"
    name = str(rows[0]["name"])
    members = [m["feed"] for m in peer.json("crew", "members", name)]
    return {"name": name, "epoch": rows[0]["epoch"], "members": sorted(members)}


def stored_crew_view(peer: Peer) -> list[tuple[str, int, list[str]]]:
    """The same, read from the store in-process (cheap enough to poll)."""
    with peer.reading() as store:
        return [
            (s.name, s.epoch, sorted(feed_id_to_text(m) for m in s.members))
            for s in crew_states(store)
        ]


def board(peer: Peer, crew_name: str = CREW) -> list[dict[str, Any]]:
    """The crew's whole requests board, without the per-viewer ``you_can``."""
    rows = peer.json("requests", "--crew", crew_name, "--all")
    return sorted(
        ({k: v for k, v in row.items() if k != "you_can"} for row in rows),
        key=lambda r: str(r["id"]),
    )


def texts(rows: Iterable[dict[str, Any]]) -> list[str]:
    return [str(r["text"]) for r in rows]


def dump(value: Any) -> str:
    return json.dumps(value, indent=1, sort_keys=True)


# --- entries a broken or hostile member's client could write --------------------------------


def chain_of(identity: Identity, payloads: Sequence[bytes]) -> list[tuple[Entry, bytes]]:
    """A validly signed feed of ``identity`` from seq 1 holding exactly ``payloads``."""
    chain: list[tuple[Entry, bytes]] = []
    for seq, payload in enumerate(payloads, start=1):
        backlink = chain[-1][0].id if chain else None
        lip = chain[lipmaa(seq) - 1][0].id if seq > 1 else None
        chain.append((create_entry(identity.signing_key, seq, backlink, lip, payload), payload))
    return chain


def flip_last_byte(data: bytes) -> bytes:
    return data[:-1] + bytes([data[-1] ^ 0x01])
