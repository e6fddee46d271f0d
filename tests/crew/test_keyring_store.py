"""The store and the keyring together: envelopes open whenever the keys arrive."""

from __future__ import annotations

from pathlib import Path

import pytest

from p2pcrew import publishing
from p2pcrew.crew import service
from p2pcrew.crew.keyring import Keyring
from p2pcrew.feed import content as c
from p2pcrew.feed.identity import Identity
from p2pcrew.feed.memory_store import MemoryStore
from p2pcrew.feed.sqlite_store import SqliteStore
from p2pcrew.feed.store import Store
from p2pcrew.queries import Queries


@pytest.fixture(params=["sqlite", "memory"])
def member_store(request: pytest.FixtureRequest, tmp_path: Path) -> Store:
    return SqliteStore(tmp_path / "m") if request.param == "sqlite" else MemoryStore()


def test_envelopes_ingested_before_a_keyring_open_once_it_is_attached(
    tmp_path: Path, member_store: Store
) -> None:
    founder, member = Identity.generate(), Identity.generate()
    source = SqliteStore(tmp_path / "founder")
    Keyring.attach(source, founder)
    crew, payload = service.create(founder, "tenants", members=[member.public_key])
    publishing.publish_payloads(source, founder, [payload])
    publishing.publish(source, founder, [c.Post(text="meet at 7", crew=crew, time=1)])
    items = source.raw_range(founder.public_key, 1, 10)
    # The member's store ingests with no keyring: everything stays sealed...
    result = member_store.ingest(items)
    assert len(result.accepted) == 2
    assert Queries(member_store, member.public_key).threads(crew) == []
    # ...and opens when the keyring arrives.
    Keyring.attach(member_store, member)
    [row] = Queries(member_store, member.public_key).threads(crew)
    assert row.root.post.text == "meet at 7"
    source.close()
    member_store.close()
