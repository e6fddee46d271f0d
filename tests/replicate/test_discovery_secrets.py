"""Which secrets a browsing node checks: its crews always, however many people it follows."""

from __future__ import annotations

from pathlib import Path

import nacl.signing

from p2pcrew.feed import content as c
from p2pcrew.feed.identity import Identity
from p2pcrew.feed.sqlite_store import SqliteStore
from p2pcrew.replicate.discovery import collect_secrets
from p2pcrew.replicate.discovery_tags import MAX_MATCH_SECRETS
from p2pcrew.replicate.node import Node


def _follows(node: Node, count: int) -> None:
    keys = [bytes(nacl.signing.SigningKey.generate().verify_key) for _ in range(count)]
    node.publish([c.Contact(contact=k, action="follow", time=1) for k in keys])


def test_crew_secrets_are_kept_when_following_more_than_the_limit(tmp_path: Path) -> None:
    node = Node(SqliteStore(tmp_path / "me"), Identity.generate())
    try:
        _follows(node, MAX_MATCH_SECRETS + 8)
        crews = [(bytes([i]) * 32, f"crew {i}") for i in range(1, 3)]
        secrets = collect_secrets(node, lambda: crews)
        assert len(secrets) == MAX_MATCH_SECRETS
        assert [s.label for s in secrets if s.peer is None] == ["crew 1", "crew 2"]
        assert sum(1 for s in secrets if s.peer is not None) == MAX_MATCH_SECRETS - 2
    finally:
        node.store.close()


def test_below_the_limit_everyone_and_every_crew_is_checked(tmp_path: Path) -> None:
    node = Node(SqliteStore(tmp_path / "me"), Identity.generate())
    try:
        _follows(node, 5)
        secrets = collect_secrets(node, lambda: [(b"\x07" * 32, "crew")])
        assert sum(1 for s in secrets if s.peer is not None) == 5
        assert [s.label for s in secrets if s.peer is None] == ["crew"]
    finally:
        node.store.close()
