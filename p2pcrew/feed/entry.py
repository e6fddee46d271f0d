"""The entry format: a signed header plus a separate payload.

Wire form of a header (``docs/protocol.md`` is the normative description)::

    [version, author, seq, backlink, lipmaa, payload_hash, payload_size, signature]

a canonical CBOR array of eight items. The signature is Ed25519 by ``author`` over
the canonical encoding of the first seven items as an array (the *signing bytes*).
The entry id is BLAKE2b-256 of the whole eight-item encoding. The signature covers
only the payload's hash and size, so a payload can be dropped (deleted) while the
chain of headers still verifies; and there is no wall-clock time in the header.

``lipmaa`` follows Bamboo: seq ``n`` links back to ``lipmaa(n)``, so that a feed's
tail can later be verified along a logarithmic path rather than the whole history.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import nacl.bindings
import nacl.exceptions
import nacl.signing

from p2pcrew import codec
from p2pcrew.feed.errors import (
    BadSignature,
    EntryTooLarge,
    MalformedEntry,
    NonCanonicalEncoding,
    UnknownFormatVersion,
)
from p2pcrew.feed.ids import entry_id_to_text, feed_id_to_text

FORMAT_VERSION = 1
MAX_PAYLOAD_SIZE = 16 * 1024
"""Largest payload in bytes. Crew envelopes pad up to this bucket at most."""
MAX_HEADER_SIZE = 256
"""A version-1 header is at most 228 bytes; anything bigger is not ours."""
MAX_SEQ = 2**62
"""Far beyond any real feed; keeps sequence numbers within SQLite's INTEGER."""
HASH_SIZE = 32
KEY_SIZE = 32
SIGNATURE_SIZE = 64
_SIG_ENCODED = b"\x58\x40"  # CBOR head of a 64-byte byte string


def blake2b256(data: bytes) -> bytes:
    """BLAKE2b with a 32-byte digest: entry ids and payload hashes."""
    return hashlib.blake2b(data, digest_size=HASH_SIZE).digest()


def lipmaa(n: int) -> int:
    """The sequence number that entry ``n`` links to, as in Bamboo (0 for n == 1)."""
    if n < 1:
        raise ValueError("sequence numbers start at 1")
    m, po3, u = 1, 3, n
    while m < n:
        po3 *= 3
        m = (po3 - 1) // 2
    po3 //= 3
    if m != n:
        while u != 0:
            m = (po3 - 1) // 2
            po3 //= 3
            u %= m
        if m != po3:
            po3 = m
    return n - po3


@dataclass(frozen=True, slots=True)
class Entry:
    """A decoded, structurally valid header. Its signature is checked separately."""

    author: bytes
    seq: int
    backlink: bytes | None
    lipmaa_link: bytes | None
    payload_hash: bytes
    payload_size: int
    signature: bytes
    header: bytes
    """The exact header bytes as received or created: what is hashed and stored."""
    id: bytes
    """BLAKE2b-256 of ``header``."""
    version: int = FORMAT_VERSION

    @property
    def signing_bytes(self) -> bytes:
        # The canonical 8-array is 0x88 || fields || 0x5840 || sig; the canonical
        # 7-array of the same fields is 0x87 || fields. Valid only after decode or
        # create established canonical form, which every Entry has.
        return b"\x87" + self.header[1 : -(SIGNATURE_SIZE + 2)]

    def where(self) -> str:
        """A short, human-readable location for error messages."""
        return f"entry {self.seq} of {feed_id_to_text(self.author)}"

    def describe(self) -> str:
        return f"{self.where()} ({entry_id_to_text(self.id)})"


@dataclass(frozen=True, slots=True)
class EntryWithPayload:
    """A header and its payload (``None`` when deleted or not yet fetched)."""

    entry: Entry
    payload: bytes | None


def create_entry(
    signing_key: nacl.signing.SigningKey,
    seq: int,
    backlink: bytes | None,
    lipmaa_link: bytes | None,
    payload: bytes,
) -> Entry:
    """Sign a new header for ``payload``.

    Raises:
        EntryTooLarge: the payload exceeds MAX_PAYLOAD_SIZE.
        MalformedEntry: inconsistent links for ``seq`` (a local bug).
    """
    if len(payload) > MAX_PAYLOAD_SIZE:
        raise EntryTooLarge(
            f"payload of {len(payload)} bytes exceeds the maximum of {MAX_PAYLOAD_SIZE}"
        )
    author = bytes(signing_key.verify_key)
    fields: list[object] = [
        FORMAT_VERSION,
        author,
        seq,
        backlink,
        lipmaa_link,
        blake2b256(payload),
        len(payload),
    ]
    _check_fields(fields, where=f"new entry {seq}")
    signing_bytes = codec.encode_checked_shape(fields)  # _check_fields just checked it
    signature = signing_key.sign(signing_bytes).signature
    header = b"\x88" + signing_bytes[1:] + _SIG_ENCODED + signature
    return _entry_from_fields(fields, signature, header)


def decode_entry(header: bytes) -> Entry:
    """Parse header bytes into an Entry; checks structure, not signature or links.

    Raises:
        EntryTooLarge, MalformedEntry, NonCanonicalEncoding, UnknownFormatVersion.
    """
    if len(header) > MAX_HEADER_SIZE:
        raise EntryTooLarge(f"header of {len(header)} bytes exceeds {MAX_HEADER_SIZE}")
    fast = _decode_canonical_v1(bytes(header))
    if fast is not None:
        return fast
    return _decode_generic(header)


def _uint(data: bytes, at: int) -> tuple[int, int] | None:
    """A canonical (shortest-form) CBOR unsigned integer at ``at``: (value, next)."""
    if at >= len(data):
        return None
    head = data[at]
    if head < 0x18:
        return head, at + 1
    width = {0x18: 1, 0x19: 2, 0x1A: 4, 0x1B: 8}.get(head)
    if width is None or at + 1 + width > len(data):
        return None
    value = int.from_bytes(data[at + 1 : at + 1 + width], "big")
    minimum = {1: 0x18, 2: 0x100, 4: 0x10000, 8: 0x100000000}[width]
    return (value, at + 1 + width) if value >= minimum else None


def _hash_or_null(data: bytes, at: int) -> tuple[bytes | None, int] | None:
    if data[at : at + 1] == b"\xf6":
        return None, at + 1
    if data[at : at + 2] != b"\x58\x20" or at + 34 > len(data):
        return None
    return data[at + 2 : at + 34], at + 34


def _decode_canonical_v1(data: bytes) -> Entry | None:
    """The common case, parsed by position: exactly the canonical encoding of a
    version-1 header with well-typed fields, or None.

    None sends the bytes through the generic strict decoder, which gives the precise
    error; so this path can only ever accept what the generic one accepts (a test
    checks the two agree on random and mutated headers).
    """
    if data[:4] != b"\x88\x01\x58\x20" or len(data) < 36:
        return None
    author = data[4:36]
    seq_at = _uint(data, 36)
    if seq_at is None:
        return None
    seq, at = seq_at
    back = _hash_or_null(data, at) if at < len(data) else None
    if back is None:
        return None
    backlink, at = back
    lip = _hash_or_null(data, at) if at < len(data) else None
    if lip is None:
        return None
    lipmaa_link, at = lip
    if data[at : at + 2] != b"\x58\x20" or at + 34 > len(data):
        return None
    payload_hash, at = data[at + 2 : at + 34], at + 34
    size_at = _uint(data, at)
    if size_at is None:
        return None
    size, at = size_at
    if data[at : at + 2] != b"\x58\x40" or at + 66 != len(data):
        return None
    signature = data[at + 2 :]
    if not 1 <= seq <= MAX_SEQ or size > MAX_PAYLOAD_SIZE:
        return None
    if (seq == 1) != (backlink is None) or (seq == 1) != (lipmaa_link is None):
        return None
    return Entry(
        author=author,
        seq=seq,
        backlink=backlink,
        lipmaa_link=lipmaa_link,
        payload_hash=payload_hash,
        payload_size=size,
        signature=signature,
        header=data,
        id=blake2b256(data),
    )


def _decode_generic(header: bytes) -> Entry:
    try:
        fields = codec.decode(bytes(header))
    except codec.NonCanonicalCBOR as exc:
        raise NonCanonicalEncoding(f"header is not canonical CBOR: {exc}") from exc
    except codec.MalformedCBOR as exc:
        raise MalformedEntry(f"header is not valid CBOR: {exc}") from exc
    if type(fields) is not list or len(fields) != 8:
        raise MalformedEntry("header must be a CBOR array of 8 items")
    if fields[0] != FORMAT_VERSION or type(fields[0]) is not int:
        raise UnknownFormatVersion(
            f"format version {fields[0]!r} is not supported (this p2pcrew reads "
            f"version {FORMAT_VERSION}); the author may use a newer p2pcrew"
        )
    signature = fields[7]
    if type(signature) is not bytes or len(signature) != SIGNATURE_SIZE:
        raise MalformedEntry("signature must be 64 bytes")
    _check_fields(fields[:7], where=f"entry {fields[2]!r}")
    return _entry_from_fields(fields, signature, bytes(header))


_HEADER_PREFIX = b"\x88\x01\x58\x20"  # 8-array, version 1, 32-byte author follows


def header_author(header: bytes) -> bytes | None:
    """The author of a version-1 header without decoding it (None if not recognisable).

    Only for routing decisions (is this a feed we want?); validity is decided later
    by ``decode_entry`` and ``verify_signature``.
    """
    if header[:4] != _HEADER_PREFIX or len(header) < 36:
        return None
    return bytes(header[4:36])


def verify_signature(entry: Entry) -> None:
    """Raise BadSignature unless ``entry.author`` signed ``entry``.

    libsodium also refuses small-order and non-canonical public keys here.
    """
    try:
        nacl.bindings.crypto_sign_open(entry.signature + entry.signing_bytes, entry.author)
    except (nacl.exceptions.BadSignatureError, nacl.exceptions.CryptoError, ValueError) as exc:
        raise BadSignature("signature does not verify", where=entry.where()) from exc


def _check_fields(fields: list[object], *, where: str) -> None:
    _, author, seq, backlink, lip, payload_hash, size = fields
    if type(author) is not bytes or len(author) != KEY_SIZE:
        raise MalformedEntry("author must be a 32-byte Ed25519 public key", where=where)
    if type(seq) is not int or not 1 <= seq <= MAX_SEQ:
        raise MalformedEntry(f"sequence must be an integer from 1 to {MAX_SEQ}", where=where)
    if type(payload_hash) is not bytes or len(payload_hash) != HASH_SIZE:
        raise MalformedEntry("payload hash must be 32 bytes", where=where)
    if type(size) is not int or not 0 <= size <= MAX_PAYLOAD_SIZE:
        raise MalformedEntry(
            f"payload size must be 0..{MAX_PAYLOAD_SIZE}, got {size!r}", where=where
        )
    if seq == 1:
        if backlink is not None or lip is not None:
            raise MalformedEntry(
                "the first entry must have no backlink or lipmaa link", where=where
            )
        return
    for name, link in (("backlink", backlink), ("lipmaa link", lip)):
        if type(link) is not bytes or len(link) != HASH_SIZE:
            raise MalformedEntry(f"{name} must be a 32-byte hash", where=where)


def _entry_from_fields(fields: list[object], signature: bytes, header: bytes) -> Entry:
    _, author, seq, backlink, lip, payload_hash, size = fields[:7]
    return Entry(
        author=author,  # type: ignore[arg-type]
        seq=seq,  # type: ignore[arg-type]
        backlink=backlink,  # type: ignore[arg-type]
        lipmaa_link=lip,  # type: ignore[arg-type]
        payload_hash=payload_hash,  # type: ignore[arg-type]
        payload_size=size,  # type: ignore[arg-type]
        signature=signature,
        header=header,
        id=blake2b256(header),
    )
