"""Crafting entries for tests, including ones the real code would never produce."""

from __future__ import annotations

import nacl.signing

from p2pcrew import codec
from p2pcrew.feed.entry import FORMAT_VERSION, Entry, blake2b256, create_entry, lipmaa


def sign_fields(key: nacl.signing.SigningKey, fields: list[object]) -> bytes:
    """Sign an arbitrary 7-field list and return the 8-item header bytes."""
    signature = key.sign(codec.encode(fields)).signature
    return codec.encode([*fields, signature])


def fields_for(
    key: nacl.signing.SigningKey,
    seq: int,
    backlink: bytes | None,
    lip: bytes | None,
    payload: bytes,
) -> list[object]:
    return [
        FORMAT_VERSION,
        bytes(key.verify_key),
        seq,
        backlink,
        lip,
        blake2b256(payload),
        len(payload),
    ]


def make_chain(
    key: nacl.signing.SigningKey, count: int, prefix: bytes = b"p"
) -> list[tuple[Entry, bytes]]:
    """A valid chain of ``count`` entries with distinct payloads."""
    chain: list[tuple[Entry, bytes]] = []
    for seq in range(1, count + 1):
        payload = prefix + seq.to_bytes(4, "big")
        backlink = chain[-1][0].id if chain else None
        lip = chain[lipmaa(seq) - 1][0].id if seq > 1 else None
        chain.append((create_entry(key, seq, backlink, lip, payload), payload))
    return chain


def key(n: int) -> nacl.signing.SigningKey:
    return nacl.signing.SigningKey(bytes([n]) * 32)
