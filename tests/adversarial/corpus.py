"""The adversarial corpus: hostile inputs for everything a peer can make us parse, and the oracle.

``generate(seed)`` builds the corpus deterministically from one integer seed (default 2026,
or ``P2PCREW_CORPUS_SEED``): the same seed gives byte-identical inputs, and every seed gives
the same number of inputs per category (only sampled positions, keys and values change).
Each ``Case`` names its category, the input, and the outcome the protocol requires:
the specific rule (``docs/protocol.md`` §3.2) or exception class that must reject it.

``run_corpus`` feeds every case through the code path a real peer reaches:

* entries and replication messages: a replication DATA frame on an open ``replicate``
  stream of a server-side ``RpcConnection`` (so the frame goes through ``rpc_frames`` and
  ``codec``), ``messages.decode_message`` on the body, then ``Store.ingest`` on a
  ``SqliteStore`` exactly as ``Node._ingest`` does (all feeds counted as wanted, the
  stricter case: ``Node.message_from`` only ever drops more);
* RPC garbage: ``RpcConnection.receive_data`` (then EOF where the case says so);
* Secret Handshake: the sans-IO ``ServerHandshake`` / ``ClientHandshake`` machines, built
  with fixed ephemeral secrets so that recorded transcripts can be mutated and replayed;
* box-stream: ``BoxStreamDecoder.receive_data``;
* crew envelopes: ``open_envelope``.

The oracle (``Report``): nothing accepted, no exception outside the family the layer
promises (``EntryRejected`` via ``IngestResult``, ``BadReplicationMessage``,
``RpcProtocolError``, ``HandshakeFailed``, ``TransportError``, ``CrewError``), and each
rejection is exactly the expected one. A handshake machine that queues bytes after it
failed (a server answering a bad msg1 or msg3) counts as a failure too.

Run it on its own: ``.venv/bin/python -m tests.adversarial.corpus`` prints the table.
"""

from __future__ import annotations

import hashlib
import os
import random
import sys
import tempfile
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import nacl.bindings as sodium
from nacl.signing import SigningKey

from p2pcrew import codec
from p2pcrew.crew import envelope
from p2pcrew.crew.envelope import (
    MAC_SIZE,
    NONCE_SIZE,
    PAD_BUCKETS,
    SLOT_BUCKETS,
    SLOT_SIZE,
    OpenedEnvelope,
    open_envelope,
)
from p2pcrew.crew.errors import CrewError, EnvelopeMalformed
from p2pcrew.feed.entry import (
    MAX_HEADER_SIZE,
    MAX_PAYLOAD_SIZE,
    MAX_SEQ,
    Entry,
    blake2b256,
    create_entry,
    lipmaa,
)
from p2pcrew.feed.errors import (
    BadSignature,
    FeedForked,
    ForkDetected,
    LipmaaMismatch,
    MalformedEntry,
    NonCanonicalEncoding,
    PayloadHashMismatch,
    PayloadSizeMismatch,
    SequenceGap,
    SequenceRepeat,
    UnknownFormatVersion,
)
from p2pcrew.feed.store import Store
from p2pcrew.replicate import messages
from p2pcrew.replicate.boxstream import BoxStreamDecoder, BoxStreamEncoder
from p2pcrew.replicate.rpc import DataReceived, RpcConnection
from p2pcrew.replicate.rpc_errors import (
    BadStreamId,
    ConnectionLost,
    FlowControlViolation,
    FrameTooLarge,
    MalformedFrame,
    RpcProtocolError,
    UnexpectedFrame,
    UnknownStream,
)
from p2pcrew.replicate.rpc_frames import Frame, FrameType, encode_frame
from p2pcrew.replicate.shs import (
    P2PCREW_NETWORK_KEY,
    SSB_MAIN_NETWORK_KEY,
    ClientHandshake,
    ServerHandshake,
    make_challenge,
    public_key_to_curve25519,
)
from p2pcrew.replicate.transport_errors import (
    BadAuthentication,
    BadNetworkKey,
    HandshakeFailed,
    InvalidPeerKey,
    StreamCorrupted,
    StreamTruncated,
    TransportError,
    WrongServerKey,
)

SEED_ENV = "P2PCREW_CORPUS_SEED"
DEFAULT_SEED = 2026

Item = tuple[bytes, bytes | None]

# ---- outcomes -------------------------------------------------------------------------

ACCEPTED = "ACCEPTED"
"""An entry stored, a replication message decoded, a handshake completed, an envelope opened."""
UNHANDLED = "UNHANDLED"
"""Prefix of the outcome of an exception outside the family the layer promises."""
SENT_AFTER_FAILURE = "SENT-AFTER-FAILURE"
"""A handshake machine failed but still had bytes queued for the peer."""
NO_DECISION = "NO-DECISION"
"""All input consumed without a rejection (nor an acceptance): the input was not refused."""
NOT_OPENED = "not-opened"
"""``open_envelope`` returned None: the normal answer for someone else's envelope."""

# Rejection names: entry rules by their stable ``rule``; everything else by exception class.
MALFORMED = MalformedEntry.rule
NON_CANONICAL = NonCanonicalEncoding.rule
UNKNOWN_VERSION = UnknownFormatVersion.rule
BAD_SIGNATURE = BadSignature.rule
SEQUENCE_GAP = SequenceGap.rule
SEQUENCE_REPEAT = SequenceRepeat.rule
LIPMAA_MISMATCH = LipmaaMismatch.rule
PAYLOAD_HASH = PayloadHashMismatch.rule
PAYLOAD_SIZE = PayloadSizeMismatch.rule
FORK = ForkDetected.rule
FEED_FORKED = FeedForked.rule
BAD_MESSAGE = messages.BadReplicationMessage.__name__
# A tag that cbor2 resolves into a data-model value (bignum 2/3, self-describe 55799,
# stringref namespace 256) passes the data-model walk and fails the re-encode of §1
# (non-canonical); any other tag is refused by the decoder (malformed). §1 forbids tags
# either way, so both names are correct rejections for these few tags.
TAG_RESOLVED = f"{MALFORMED}|{NON_CANONICAL}"


def name(exc_type: type[BaseException]) -> str:
    return exc_type.__name__


# ---- inputs ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ReplicateInput:
    """A replication message body sent as DATA on the ``replicate`` stream.

    ``preload`` are valid entries stored first (they must all be accepted: case setup).
    """

    body: Any
    preload: tuple[Item, ...] = ()


@dataclass(frozen=True, slots=True)
class RpcInput:
    """Bytes from the dialling peer to a fresh server-side RpcConnection, then maybe EOF."""

    chunks: tuple[bytes, ...]
    eof: bool = False


@dataclass(frozen=True, slots=True)
class ShsInput:
    """Bytes fed to a handshake machine; ``b""`` in ``feed`` is EOF."""

    role: Literal["server", "client"]
    network_key: bytes
    local_seed: bytes
    ephemeral: bytes
    feed: tuple[bytes, ...]
    server_pk: bytes = b""


@dataclass(frozen=True, slots=True)
class BoxInput:
    key: bytes
    nonce: bytes
    chunks: tuple[bytes, ...]
    eof: bool = False


@dataclass(frozen=True, slots=True)
class EnvelopeInput:
    payload: bytes
    epoch_keys: tuple[bytes, ...]
    curve_secret: bytes | None = None
    curve_public: bytes | None = None


Input = ReplicateInput | RpcInput | ShsInput | BoxInput | EnvelopeInput


@dataclass(frozen=True, slots=True)
class Case:
    category: str
    label: str
    input: Input
    expect: tuple[str, ...]
    """One name per entry of an ENTRIES message, else one name; ``a|b`` allows either."""


@dataclass(frozen=True, slots=True)
class Corpus:
    seed: int
    base: tuple[Item, ...]
    """Valid entries stored before any case runs (the feeds the chain cases extend)."""
    cases: tuple[Case, ...]

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for case in self.cases:
            out[case.category] = out.get(case.category, 0) + 1
        return out

    def digest(self) -> str:
        """SHA-256 over every input and expectation: equal digests, identical corpora."""
        h = hashlib.sha256()
        h.update(repr(self.base).encode())
        for case in self.cases:
            h.update(repr(case).encode())
        return h.hexdigest()


def corpus_seed() -> int:
    return int(os.environ.get(SEED_ENV, DEFAULT_SEED))


# ---- hand-made CBOR ---------------------------------------------------------------------


def head(major: int, value: int, extra: int | None = None) -> bytes:
    """A CBOR head; ``extra`` forces 0 (inline), 1, 2, 4 or 8 argument bytes."""
    if extra is None:
        extra = (
            0
            if value < 24
            else 1
            if value < 2**8
            else 2
            if value < 2**16
            else (4 if value < 2**32 else 8)
        )
    if extra == 0:
        return bytes([major << 5 | value])
    info = {1: 24, 2: 25, 4: 26, 8: 27}[extra]
    return bytes([major << 5 | info]) + value.to_bytes(extra, "big")


def frame_bytes(body: bytes) -> bytes:
    """An RPC frame with an arbitrary body: 4-byte big-endian length, then the body."""
    return len(body).to_bytes(4, "big") + body


def frame(value: Any) -> bytes:
    """An RPC frame of a canonical CBOR value (any shape, valid frame or not)."""
    return frame_bytes(codec.encode(value))


def open_replicate() -> bytes:
    return encode_frame(Frame(FrameType.OPEN, 1, method="replicate", body={"version": 1}))


def header_parts(entry: Entry) -> list[bytes]:
    """The canonical encodings of the eight header items of ``entry``."""
    fields = [
        1,
        entry.author,
        entry.seq,
        entry.backlink,
        entry.lipmaa_link,
        entry.payload_hash,
        entry.payload_size,
        entry.signature,
    ]
    return [codec.encode(f) for f in fields]


def with_part(entry: Entry, index: int, encoded: bytes, array: bytes = b"\x88") -> bytes:
    parts = header_parts(entry)
    parts[index] = encoded
    return array + b"".join(parts)


def sign7(key: SigningKey, fields: list[Any]) -> bytes:
    """Header bytes for seven arbitrary (data-model) fields, really signed by ``key``."""
    signature = key.sign(codec.encode(fields)).signature
    return codec.encode([*fields, signature])


def flip_bit(data: bytes, bit: int) -> bytes:
    out = bytearray(data)
    out[bit // 8] ^= 0x80 >> (bit % 8)
    return bytes(out)


def xor_byte(data: bytes, pos: int, mask: int) -> bytes:
    out = bytearray(data)
    out[pos] ^= mask
    return bytes(out)


# ---- Ed25519 encodings an attacker may use as an author ----------------------------------

_P = 2**255 - 19

SMALL_ORDER_ENCODINGS: tuple[bytes, ...] = tuple(
    bytes.fromhex(h)
    for h in (
        "0100000000000000000000000000000000000000000000000000000000000000",  # order 1
        "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",  # order 2
        "0000000000000000000000000000000000000000000000000000000000000000",  # order 4
        "0000000000000000000000000000000000000000000000000000000000000080",  # order 4
        "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05",  # order 8
        "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc85",  # order 8
        "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a",  # order 8
        "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac03fa",  # order 8
    )
)
"""The eight canonical encodings of the points of order 1, 2, 4 and 8."""

NON_CANONICAL_ENCODINGS: tuple[bytes, ...] = (
    *((y | sign).to_bytes(32, "little") for y in range(_P, 2**255) for sign in (0, 1 << 255)),
    (1 | 1 << 255).to_bytes(32, "little"),  # the identity (x = 0) with the sign bit set
    (_P - 1 | 1 << 255).to_bytes(32, "little"),  # y = -1 (x = 0) with the sign bit set
)
"""y >= p (19 values, both signs), and x = 0 points with the sign bit: 40 encodings."""


# ---- the generator ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Session:
    """A recorded, successful handshake with deterministic keys."""

    net: bytes
    client_seed: bytes
    server_seed: bytes
    client_eph: bytes
    server_eph: bytes
    server_pk: bytes
    client_pk: bytes
    msgs: tuple[bytes, bytes, bytes, bytes]


def record_session(
    net: bytes, client_seed: bytes, server_seed: bytes, client_eph: bytes, server_eph: bytes
) -> _Session:
    server_pk = bytes(SigningKey(server_seed).verify_key)
    client = ClientHandshake(net, client_seed, server_pk, ephemeral_secret=client_eph)
    server = ServerHandshake(net, server_seed, ephemeral_secret=server_eph)
    msg1 = client.data_to_send()
    server.receive_data(msg1)
    msg2 = server.data_to_send()
    client.receive_data(msg2)
    msg3 = client.data_to_send()
    done_server = server.receive_data(msg3)
    msg4 = server.data_to_send()
    done_client = client.receive_data(msg4)
    if not (done_server and done_client):  # pragma: no cover - a broken generator
        raise RuntimeError("the reference handshake did not complete")
    return _Session(
        net,
        client_seed,
        server_seed,
        client_eph,
        server_eph,
        server_pk,
        bytes(SigningKey(client_seed).verify_key),
        (msg1, msg2, msg3, msg4),
    )


def forge_msg3(
    net: bytes, server_pk: bytes, server_eph: bytes, attacker_eph: bytes, hello: bytes
) -> tuple[bytes, bytes]:
    """(msg1, msg3) of an attacker who knows the network key and picks ``hello`` freely.

    The box opens for the server (the attacker knows ``a``; ``b`` and ``B`` are public);
    only the signature inside, over a key the attacker chose, can stop it.
    """
    a_pub = sodium.crypto_scalarmult_base(attacker_eph)
    b_pub = sodium.crypto_scalarmult_base(server_eph)
    ab = sodium.crypto_scalarmult(attacker_eph, b_pub)
    a_bob = sodium.crypto_scalarmult(attacker_eph, public_key_to_curve25519(server_pk))
    key = hashlib.sha256(net + ab + a_bob).digest()
    return make_challenge(net, a_pub), sodium.crypto_secretbox_easy(hello, bytes(24), key)


def signed_hello(
    net: bytes, server_pk: bytes, server_eph: bytes, attacker_eph: bytes, client_seed: bytes
) -> bytes:
    """A genuine msg3 plaintext (sig_A || A): the control for ``forge_msg3``."""
    b_pub = sodium.crypto_scalarmult_base(server_eph)
    ab = sodium.crypto_scalarmult(attacker_eph, b_pub)
    signing = SigningKey(client_seed)
    signed = net + server_pk + hashlib.sha256(ab).digest()
    return signing.sign(signed).signature + bytes(signing.verify_key)


def sealed_slot(rng: random.Random, key: bytes, recipient: bytes) -> bytes:
    """``crypto_box_seal(key, recipient)`` with a seeded ephemeral key (deterministic)."""
    eph_sk = rng.randbytes(32)
    eph_pk = sodium.crypto_scalarmult_base(eph_sk)
    nonce = hashlib.blake2b(eph_pk + recipient, digest_size=24).digest()
    return eph_pk + sodium.crypto_box(key, nonce, recipient, eph_sk)


def dummy_slot(rng: random.Random) -> bytes:
    return sodium.crypto_scalarmult_base(rng.randbytes(32)) + rng.randbytes(SLOT_SIZE - 32)


def envelope_structure_ok(data: bytes) -> bool:
    """Step 1 of the reader (docs/crews.md §1), written from the spec, not the code."""
    if len(data) < 5 or data[0] != 0x59 or data[3] != 1:
        return False
    if int.from_bytes(data[1:3], "big") != len(data) - 3:
        return False
    nslots = data[4]
    if nslots not in (0, *SLOT_BUCKETS):
        return False
    padded = len(data) - 5 - SLOT_SIZE * nslots - NONCE_SIZE - MAC_SIZE
    return padded in (*PAD_BUCKETS, MAX_PAYLOAD_SIZE - 45 - SLOT_SIZE * nslots)


class _Generator:
    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.cases: list[Case] = []
        self.key_a = self.new_key()
        self.chain_a = self.chain(self.key_a, 12)  # next is 13: lipmaa(13) = 4, not 12
        self.key_b = self.new_key()
        self.chain_b = self.chain(self.key_b, 3)  # next is 4: lipmaa(4) = 1
        self.next_a, self.next_a_payload = self.successor(self.key_a, self.chain_a, size=300)
        self.base: tuple[Item, ...] = tuple(
            (e.header, p) for e, p in (*self.chain_a, *self.chain_b)
        )

    # -- helpers --------------------------------------------------------------------

    def new_key(self) -> SigningKey:
        return SigningKey(self.rng.randbytes(32))

    def payload(self, size: int | None = None) -> bytes:
        return self.rng.randbytes(self.rng.randint(16, 400) if size is None else size)

    def chain(self, key: SigningKey, count: int) -> list[tuple[Entry, bytes]]:
        out: list[tuple[Entry, bytes]] = []
        for _ in range(count):
            out.append(self.successor(key, out))
        return out

    def successor(
        self,
        key: SigningKey,
        chain: Sequence[tuple[Entry, bytes]],
        *,
        size: int | None = None,
        payload: bytes | None = None,
    ) -> tuple[Entry, bytes]:
        """The valid next entry of ``chain`` (not stored anywhere)."""
        seq = len(chain) + 1
        body = self.payload(size) if payload is None else payload
        backlink = chain[-1][0].id if chain else None
        lip = chain[lipmaa(seq) - 1][0].id if seq > 1 else None
        return create_entry(key, seq, backlink, lip, body), body

    def first(self, size: int | None = None) -> tuple[Entry, bytes, SigningKey]:
        key = self.new_key()
        entry, body = self.successor(key, [], size=size)
        return entry, body, key

    def add(self, category: str, label: str, inp: Input, *expect: str) -> None:
        self.cases.append(Case(category, label, inp, tuple(expect)))

    def entries(
        self,
        category: str,
        label: str,
        items: Iterable[Item],
        *expect: str,
        preload: Iterable[Item] = (),
    ) -> None:
        body = [messages.ENTRIES, [[h, p] for h, p in items]]
        self.add(category, label, ReplicateInput(body, tuple(preload)), *expect)

    def sample(self, population: int, k: int) -> list[int]:
        return sorted(self.rng.sample(range(population), min(k, population)))

    # -- entries: bit flips ---------------------------------------------------------------

    def bitflips(self) -> None:
        fresh = [self.first() for _ in range(2)]
        targets: list[tuple[Entry, bytes]] = [
            (fresh[0][0], fresh[0][1]),
            (self.next_a, self.next_a_payload),
            (fresh[1][0], fresh[1][1]),
        ]
        for bit in range(64 * 8):
            entry, body = targets[bit % len(targets)]
            start = len(entry.header) - 64
            header = entry.header[:start] + flip_bit(entry.header[start:], bit)
            self.entries(
                "bitflip-signature", f"seq {entry.seq} bit {bit}", [(header, body)], BAD_SIGNATURE
            )
        for bit in range(32 * 8):
            entry, body = targets[bit % len(targets)]
            header = entry.header[:4] + flip_bit(entry.header[4:36], bit) + entry.header[36:]
            self.entries(
                "bitflip-author", f"seq {entry.seq} bit {bit}", [(header, body)], BAD_SIGNATURE
            )
        # Bits of the signed byte-string fields: payload hash, backlink, lipmaa link.
        regions: list[tuple[Entry, bytes, str, bytes, int]] = [
            (entry, body, "payload hash", entry.payload_hash, 96) for entry, body in targets
        ]
        regions.append(
            (self.next_a, self.next_a_payload, "backlink", self.next_a.backlink or b"", 64)
        )
        regions.append(
            (self.next_a, self.next_a_payload, "lipmaa", self.next_a.lipmaa_link or b"", 64)
        )
        for entry, body, what, value, count in regions:
            at = entry.header.index(value)
            for bit in self.sample(256, count):
                header = entry.header[:at] + flip_bit(value, bit) + entry.header[at + 32 :]
                self.entries(
                    "bitflip-signed-fields",
                    f"seq {entry.seq} {what} bit {bit}",
                    [(header, body)],
                    BAD_SIGNATURE,
                )
        # Payload bits: the header promises another payload.
        for entry, body, bits in (
            (self.next_a, self.next_a_payload, 224),
            (fresh[0][0], fresh[0][1], 64),
        ):
            for bit in self.sample(len(body) * 8, bits):
                self.entries(
                    "bitflip-payload",
                    f"seq {entry.seq} bit {bit}",
                    [(entry.header, flip_bit(body, bit))],
                    PAYLOAD_HASH,
                )
        for pos in self.sample(len(self.next_a_payload), 64):
            mask = self.rng.randint(1, 255)
            self.entries(
                "bitflip-payload",
                f"seq 13 byte {pos} ^ {mask:#04x}",
                [(self.next_a.header, xor_byte(self.next_a_payload, pos, mask))],
                PAYLOAD_HASH,
            )

    # -- entries: small-order and non-canonical authors ------------------------------------

    def weak_authors(self) -> None:
        body = self.payload(41)
        for category, encodings in (
            ("small-order-author", SMALL_ORDER_ENCODINGS),
            ("non-canonical-author", NON_CANONICAL_ENCODINGS),
        ):
            for index, author in enumerate(encodings):
                # Signatures a lax verifier accepts for such keys: R of small order and
                # S = 0 ([0]B = R + [k]A holds whenever [k]A = -R), R = identity with S = 1,
                # R = A, and random bytes.
                signatures = [r + bytes(32) for r in SMALL_ORDER_ENCODINGS]
                signatures += [
                    SMALL_ORDER_ENCODINGS[0] + (1).to_bytes(32, "little"),
                    author + bytes(32),
                    self.rng.randbytes(64),
                ]
                fields: list[Any] = [1, author, 1, None, None, blake2b256(body), len(body)]
                for s_index, signature in enumerate(signatures):
                    header = codec.encode([*fields, signature])
                    self.entries(
                        category, f"author #{index} sig #{s_index}", [(header, body)], BAD_SIGNATURE
                    )

    # -- entries: forks and chain links --------------------------------------------------

    def forks(self) -> None:
        rng = self.rng
        for n in range(60):
            key = self.new_key()
            chain = self.chain(key, rng.randint(1, 6))
            k = [1, len(chain)][n % 2] if n < 10 else rng.randint(1, len(chain))
            alt, alt_body = self.successor(key, chain[: k - 1])
            self.entries(
                "fork-same-seq",
                f"{len(chain)} stored, second entry {k}",
                [(alt.header, alt_body if n % 3 else None)],
                FORK,
                preload=[(e.header, p) for e, p in chain],
            )
        for n in range(40):
            key = self.new_key()
            chain = self.chain(key, rng.randint(1, 6))
            tip = len(chain)
            if n % 2:
                alt, _ = self.successor(key, chain[:-1])
                link = alt.id
                label = "successor of another entry"
            else:
                link = rng.randbytes(32)
                label = "successor linking to nowhere"
            seq = tip + 1
            lip = link if lipmaa(seq) == tip else chain[lipmaa(seq) - 1][0].id
            body = self.payload()
            entry = create_entry(key, seq, link, lip, body)
            self.entries(
                "fork-successor",
                f"{label} at {seq}",
                [(entry.header, body)],
                FORK,
                preload=[(e.header, p) for e, p in chain],
            )
        for n in range(30):
            key = self.new_key()
            chain = self.chain(key, rng.randint(2, 6))
            k = rng.randint(1, len(chain))
            alt, alt_body = self.successor(key, chain[: k - 1])
            nxt, nxt_body = self.successor(key, chain)
            after = [(nxt.header, nxt_body), (alt.header, alt_body), (chain[0][0].header, None)]
            follow = after[n % 3]
            then = ("the next entry", "the fork again", "a repeat")[n % 3]
            self.entries(
                "fork-aftermath",
                f"fork at {k}, then {then}",
                [(alt.header, alt_body), follow],
                FORK,
                FEED_FORKED,
                preload=[(e.header, p) for e, p in chain],
            )
        # lipmaa links: A's next is 13 (must name 4), B's next is 4 (must name 1).
        for key, chain, wrong in (
            (self.key_a, self.chain_a, [e.id for e, _ in self.chain_a if e.seq != 4]),
            (self.key_b, self.chain_b, [e.id for e, _ in self.chain_b if e.seq != 1]),
        ):
            seq = len(chain) + 1
            for lip in [*wrong, *(self.rng.randbytes(32) for _ in range(8))]:
                body = self.payload()
                entry = create_entry(key, seq, chain[-1][0].id, lip, body)
                self.entries(
                    "chain-lipmaa",
                    f"seq {seq} lipmaa elsewhere",
                    [(entry.header, body)],
                    LIPMAA_MISMATCH,
                )

    # -- entries: sequence numbers ---------------------------------------------------------

    def sequences(self) -> None:
        rng = self.rng
        gap_targets: list[tuple[SigningKey, int, str]] = [
            (self.key_a, 12, "A"),
            (self.key_b, 3, "B"),
        ]
        for key, tip, who in gap_targets:
            for seq in [*range(tip + 2, tip + 22), tip + rng.randint(23, 10**6), 2**40, MAX_SEQ]:
                body = self.payload()
                entry = create_entry(key, seq, rng.randbytes(32), rng.randbytes(32), body)
                self.entries(
                    "sequence-gap", f"{who} seq {seq}", [(entry.header, body)], SEQUENCE_GAP
                )
        for seq in range(2, 8):
            key = self.new_key()
            body = self.payload()
            entry = create_entry(key, seq, rng.randbytes(32), rng.randbytes(32), body)
            self.entries(
                "sequence-gap", f"unknown feed seq {seq}", [(entry.header, body)], SEQUENCE_GAP
            )
        for entry, body in (*self.chain_a, *self.chain_b):
            for variant, payload in (
                ("with payload", body),
                ("without payload", None),
                ("with another payload", self.payload()),
            ):
                self.entries(
                    "sequence-repeat",
                    f"seq {entry.seq} {variant}",
                    [(entry.header, payload)],
                    SEQUENCE_REPEAT,
                )
        # Absurd values: all malformed; hand-encoded where the data model cannot hold them.
        key = self.new_key()
        body = self.payload(41)
        author = bytes(key.verify_key)
        h = blake2b256(body)
        absurd = [0, -1, -2, -(2**32), -(2**63), -(2**64), MAX_SEQ + 1, 2**63, 2**64 - 1]
        for seq in absurd:
            for links in (None, rng.randbytes(32)):
                header = sign7(key, [1, author, seq, links, links, h, len(body)])
                self.entries(
                    "sequence-absurd",
                    f"seq {seq} links {links is not None}",
                    [(header, body)],
                    MALFORMED,
                )
        for value in (2**64, 2**65, 2**200):
            raw = value.to_bytes((value.bit_length() + 7) // 8, "big")
            bignum = b"\xc2" + head(2, len(raw)) + raw
            for links in (None, rng.randbytes(32)):
                parts = [codec.encode(f) for f in (1, author)]
                parts.append(bignum)
                parts += [codec.encode(f) for f in (links, links, h, len(body))]
                parts.append(codec.encode(rng.randbytes(64)))
                self.entries(
                    "sequence-absurd",
                    f"seq {value} as a bignum",
                    [(b"\x88" + b"".join(parts), body)],
                    MALFORMED,
                )
        for seq, back, lip, expect in (
            (MAX_SEQ, None, None, MALFORMED),
            (MAX_SEQ, rng.randbytes(32), rng.randbytes(32), SEQUENCE_GAP),
            (1, rng.randbytes(32), None, MALFORMED),
            (1, None, rng.randbytes(32), MALFORMED),
            (1, rng.randbytes(32), rng.randbytes(32), MALFORMED),
            (2, None, None, MALFORMED),
            (2, rng.randbytes(32), None, MALFORMED),
            (2, None, rng.randbytes(32), MALFORMED),
            (True, None, None, MALFORMED),
            (False, None, None, MALFORMED),
        ):
            header = sign7(key, [1, author, seq, back, lip, h, len(body)])
            self.entries(
                "sequence-absurd",
                f"seq {seq!r} links {back is not None}/{lip is not None}",
                [(header, body)],
                expect,
            )

    # -- entries: oversize ---------------------------------------------------------------

    def oversize(self) -> None:
        entry = self.next_a
        for size in (MAX_PAYLOAD_SIZE + 1, MAX_PAYLOAD_SIZE + 2, 17_000, 32_768, 65_000):
            self.entries(
                "oversize",
                f"payload of {size} bytes",
                [(entry.header, self.rng.randbytes(size))],
                BAD_MESSAGE,
            )
        # A frame body above 65,536 bytes never reaches the replication layer.
        for size in (66_000, 100_000):
            body = [messages.ENTRIES, [[entry.header, self.rng.randbytes(size)]]]
            self.add(
                "oversize",
                f"payload of {size} bytes (frame too large)",
                ReplicateInput(body),
                name(FrameTooLarge),
            )
        for size in (MAX_HEADER_SIZE + 1, 300, 1024, 16_384, 60_000):
            header = entry.header + self.rng.randbytes(size - len(entry.header))
            self.entries(
                "oversize", f"header of {size} bytes", [(header, self.next_a_payload)], BAD_MESSAGE
            )
        # The largest payload, with a header that promises it, but other bytes.
        key = self.new_key()
        big = self.rng.randbytes(MAX_PAYLOAD_SIZE)
        first = create_entry(key, 1, None, None, big)
        for variant in range(3):
            wrong = xor_byte(big, self.rng.randrange(MAX_PAYLOAD_SIZE), 1 + variant)
            self.entries(
                "oversize",
                "16,384-byte payload, other bytes",
                [(first.header, wrong)],
                PAYLOAD_HASH,
            )
        self.entries(
            "oversize",
            "16,384-byte payload for a 300-byte header",
            [(entry.header, big)],
            PAYLOAD_SIZE,
        )
        author = bytes(key.verify_key)
        for size in (MAX_PAYLOAD_SIZE + 1, 2**32, 2**64 - 1):
            header = sign7(key, [1, author, 1, None, None, blake2b256(big), size])
            self.entries("oversize", f"header promising {size} bytes", [(header, big)], MALFORMED)
        # Within 256 bytes, but fields too big for their slot.
        for field_index in (1, 5, 7):
            parts = header_parts(first)
            parts[field_index] = codec.encode(self.rng.randbytes(100))
            header = b"\x88" + b"".join(parts)
            assert len(header) <= MAX_HEADER_SIZE
            self.entries("oversize", f"item {field_index} of 100 bytes", [(header, big)], MALFORMED)

    # -- entries: prefixes ---------------------------------------------------------------

    def prefixes(self) -> None:
        fresh, fresh_body, _ = self.first(size=41)
        for entry, body in ((fresh, fresh_body), (self.next_a, self.next_a_payload)):
            for cut in range(len(entry.header)):
                self.entries(
                    "prefix-header",
                    f"seq {entry.seq} first {cut} bytes",
                    [(entry.header[:cut], body)],
                    MALFORMED,
                )
            for cut in range(len(body)):
                self.entries(
                    "prefix-payload",
                    f"seq {entry.seq} first {cut} payload bytes",
                    [(entry.header, body[:cut])],
                    PAYLOAD_SIZE,
                )

    # -- entries: non-canonical CBOR and wrong field types ---------------------------------

    def non_canonical(self) -> None:
        fresh, fresh_body, _ = self.first()
        for entry, body in ((fresh, fresh_body), (self.next_a, self.next_a_payload)):
            values: list[Any] = [
                1,
                entry.author,
                entry.seq,
                entry.backlink,
                entry.lipmaa_link,
                entry.payload_hash,
                entry.payload_size,
                entry.signature,
            ]
            assert b"\x88" + b"".join(header_parts(entry)) == entry.header

            def emit(
                label: str, header: bytes, expect: str, _e: Entry = entry, _b: bytes = body
            ) -> None:
                self.entries("non-canonical-cbor", f"seq {_e.seq} {label}", [(header, _b)], expect)

            for index in (0, 2, 6):  # unsigned integers, written wider than needed
                value = values[index]
                shortest = len(head(0, value)) - 1
                for extra in (1, 2, 4, 8):
                    if extra > shortest:
                        emit(
                            f"item {index} with {extra} argument bytes",
                            with_part(entry, index, head(0, value, extra)),
                            NON_CANONICAL,
                        )
            for index, value in enumerate(values):  # byte strings with wider lengths
                if type(value) is bytes:
                    for extra in (2, 4, 8):
                        emit(
                            f"item {index} length with {extra} bytes",
                            with_part(entry, index, head(2, len(value), extra) + value),
                            NON_CANONICAL,
                        )
                    cut = self.rng.randint(1, len(value) - 1)
                    chunks = [value[:cut], value[cut:]]
                    indefinite = b"\x5f" + b"".join(codec.encode(c) for c in chunks) + b"\xff"
                    emit(
                        f"item {index} as an indefinite byte string",
                        with_part(entry, index, indefinite),
                        MALFORMED,
                    )
            for extra in (1, 2, 4, 8):
                emit(
                    f"array head with {extra} argument bytes",
                    head(4, 8, extra) + entry.header[1:],
                    NON_CANONICAL,
                )
            emit("indefinite array", b"\x9f" + entry.header[1:] + b"\xff", MALFORMED)
            maps = [
                ("unsorted map", "a2616202616101", NON_CANONICAL),
                ("bytewise-sorted map {24: 0, -1: 0}", "a21818002000", NON_CANONICAL),
                ("unsorted int-key map", "a202010101", NON_CANONICAL),
                ("duplicate text keys", "a2616101616102", MALFORMED),
                ("duplicate int keys", "a201010102", MALFORMED),
                ("duplicate keys, unsorted", "a2616201616201", MALFORMED),
                ("indefinite map", "bf616101ff", MALFORMED),
            ]
            for label, hex_value, expect in maps:
                encoded = bytes.fromhex(hex_value)
                for index in (0, 3, 7):
                    emit(f"item {index} as {label}", with_part(entry, index, encoded), expect)
            tags: list[tuple[str, bytes, int, str]] = [
                ("tag 24 (embedded CBOR)", b"\xd8\x18", 5, MALFORMED),
                ("tag 42", b"\xd8\x2a", 1, MALFORMED),
                ("tag 1000", b"\xd9\x03\xe8", 7, MALFORMED),
                ("tag 2^32", b"\xdb" + (2**32).to_bytes(8, "big"), 5, MALFORMED),
                ("tag 1 (epoch time)", b"\xc1", 2, MALFORMED),
                ("tag 2 (bignum) on bytes", b"\xc2", 1, TAG_RESOLVED),
                ("tag 55799 (self-described)", b"\xd9\xd9\xf7", 2, TAG_RESOLVED),
                ("tag 256 (stringref namespace)", b"\xd9\x01\x00", 6, TAG_RESOLVED),
            ]
            for label, tag, index, expect in tags:
                emit(
                    f"item {index} under {label}",
                    with_part(entry, index, tag + header_parts(entry)[index]),
                    expect,
                )
            emit("whole header under tag 55799", b"\xd9\xd9\xf7" + entry.header, TAG_RESOLVED)
            emit("whole header under tag 24", b"\xd8\x18" + codec.encode(entry.header), MALFORMED)
            emit("version 1 as a bignum", with_part(entry, 0, b"\xc2\x41\x01"), TAG_RESOLVED)
            emit("version as a negative bignum", with_part(entry, 0, b"\xc3\x41\xfe"), TAG_RESOLVED)
            floats = {
                "half": b"\xf9" + bytes.fromhex("3c00"),
                "single": b"\xfa" + bytes.fromhex("3f800000"),
                "double": b"\xfb" + bytes.fromhex("3ff0000000000000"),
                "NaN": b"\xf9\x7e\x00",
                "infinity": b"\xf9\x7c\x00",
            }
            for label, encoded in floats.items():
                for index in (0, 2, 6):
                    emit(
                        f"item {index} as a {label} float",
                        with_part(entry, index, encoded),
                        MALFORMED,
                    )
            simples = {
                "undefined": b"\xf7",
                "simple(0)": b"\xe0",
                "simple(19)": b"\xf3",
                "simple(32)": b"\xf8\x20",
                "two-byte null": b"\xf8\x16",
                "break": b"\xff",
            }
            for label, encoded in simples.items():
                for index in (3, 5):
                    emit(f"item {index} as {label}", with_part(entry, index, encoded), MALFORMED)
            emit("trailing byte", entry.header + b"\x00", MALFORMED)
            emit("trailing item", entry.header + codec.encode(1), MALFORMED)
            emit("trailing null", entry.header + b"\xf6", MALFORMED)

    def bad_fields(self) -> None:
        values: list[Any]
        value: Any
        key = self.new_key()
        body = self.payload(41)
        author = bytes(key.verify_key)
        h = blake2b256(body)
        good: list[Any] = [1, author, 1, None, None, h, len(body)]
        prev = self.rng.randbytes(32)
        good2: list[Any] = [1, author, 2, prev, prev, h, len(body)]
        sig = self.rng.randbytes(64)

        def emit(label: str, header: bytes, expect: str) -> None:
            self.entries("bad-fields", label, [(header, body)], expect)

        for label, value in (
            ("a map", {}),
            ("an integer", 1),
            ("a byte string", b"\x88"),
            ("a text string", "entry"),
            ("null", None),
            ("an empty array", []),
            ("the signing bytes (7 items)", good),
            ("a 9-item array", [*good, sig, 0]),
            ("a nested header", [[*good, sig]]),
        ):
            emit(f"header is {label}", codec.encode(value), MALFORMED)
        # The version is checked before the other fields (§3.2 validation order).
        emit("header is an 8-item array of nulls", codec.encode([None] * 8), UNKNOWN_VERSION)
        for version in (0, 2, 255, 2**64 - 1, -1, True, "1", b"\x01", None, [1]):
            emit(f"version {version!r}", sign7(key, [version, *good[1:]]), UNKNOWN_VERSION)
        emit(
            "version 2 with garbage fields",
            codec.encode([2, None, None, 0, 0, 0, -1, 0]),
            UNKNOWN_VERSION,
        )
        for index, label, values in (
            (1, "author", [b"", self.rng.randbytes(31), self.rng.randbytes(33), "key", None, 7]),
            (2, "seq", ["1", b"\x01", None, [1]]),
            (3, "backlink", [self.rng.randbytes(31), self.rng.randbytes(33), "link", 0, b""]),
            (4, "lipmaa", [self.rng.randbytes(31), self.rng.randbytes(33), "link", 0, b""]),
            (5, "payload hash", [self.rng.randbytes(31), self.rng.randbytes(64), "h", None]),
            (6, "payload size", [-1, "41", None, b"\x29"]),
        ):
            for value in values:
                fields = list(good2 if index in (3, 4) else good)
                fields[index] = value
                emit(f"{label} {value!r}", sign7(key, fields), MALFORMED)
        for value in (b"", self.rng.randbytes(63), self.rng.randbytes(65), "sig", None, 0):
            emit(f"signature {value!r:.40}", codec.encode([*good, value]), MALFORMED)

    # -- replication messages ------------------------------------------------------------

    def replication(self) -> None:
        value: Any
        pair: Any
        rng = self.rng
        feed = rng.randbytes(32)
        valid_first, valid_body, _ = self.first()  # a new valid entry: must not slip in
        good_item = [valid_first.header, valid_body]
        bodies: list[tuple[str, Any]] = [
            ("null", None),
            ("an integer", 2),
            ("true", True),
            ("bytes", b"\x02"),
            ("text", "entries"),
            ("a map", {0: b""}),
            ("an empty list", []),
            ("one item", [messages.HELLO]),
            ("three items", [messages.HELLO, b"", 0]),
            ("kind true", [True, b""]),
            ("kind false", [False, b""]),
            ("kind text", ["0", b""]),
            ("kind bytes", [b"\x00", b""]),
            ("kind null", [None, b""]),
            ("kind -1", [-1, b""]),
            ("kind 3", [3, b""]),
            ("kind 255", [255, []]),
            ("kind 2^63", [2**63, []]),
            ("kind 2^64-1", [2**64 - 1, []]),
            ("kind -2^64", [-(2**64), []]),
        ]
        for size in (1, 16, 31, 33, 64, 1000):
            bodies.append((f"hello digest of {size} bytes", [messages.HELLO, rng.randbytes(size)]))
        for label, value in (("text", "digest"), ("null", None), ("int", 0), ("list", [])):
            bodies.append((f"hello digest as {label}", [messages.HELLO, value]))
        for label, value in (("null", None), ("bytes", b""), ("map", {}), ("int", 0)):
            bodies.append((f"notes as {label}", [messages.NOTES, value]))
        bodies.append(
            ("1025 notes", [messages.NOTES, [[rng.randbytes(32), 2] for _ in range(1025)]])
        )
        for label, pair in (
            ("not a list", b"note"),
            ("one item", [feed]),
            ("three items", [feed, 2, 0]),
            ("feed of 31 bytes", [feed[:31], 2]),
            ("feed of 33 bytes", [feed + b"\x00", 2]),
            ("feed as text", ["feed", 2]),
            ("note -2", [feed, -2]),
            ("note -2^63", [feed, -(2**63)]),
            ("note 2^63", [feed, 2**63]),
            ("note 2^64-1", [feed, 2**64 - 1]),
            ("note true", [feed, True]),
            ("note null", [feed, None]),
            ("note text", [feed, "2"]),
            ("note bytes", [feed, b"\x02"]),
        ):
            valid = [[rng.randbytes(32), 2 * rng.randint(0, 1000)] for _ in range(3)]
            position = rng.randint(0, 3)
            bodies.append(
                (
                    f"a note {label} (at {position})",
                    [messages.NOTES, [*valid[:position], pair, *valid[position:]]],
                )
            )
        for label, value in (("null", None), ("bytes", b""), ("map", {}), ("empty list", [])):
            bodies.append((f"entries as {label}", [messages.ENTRIES, value]))
        bodies.append(("257 entries", [messages.ENTRIES, [[b"", None]] * 256 + [good_item]]))
        for label, pair in (
            ("not a list", b"entry"),
            ("one item", [valid_first.header]),
            ("three items", [valid_first.header, valid_body, None]),
            ("header as text", ["header", valid_body]),
            ("header null", [None, valid_body]),
            ("header int", [0, valid_body]),
            ("header list", [[1], valid_body]),
            ("header of 257 bytes", [rng.randbytes(257), valid_body]),
            ("header of 4096 bytes", [rng.randbytes(4096), valid_body]),
            ("payload as text", [valid_first.header, "payload"]),
            ("payload int", [valid_first.header, 0]),
            ("payload true", [valid_first.header, True]),
            ("payload list", [valid_first.header, [valid_body]]),
            ("payload map", [valid_first.header, {}]),
            ("payload of 16,385 bytes", [valid_first.header, rng.randbytes(16_385)]),
        ):
            for position in (0, 1):
                # A new valid entry rides along: a lenient decoder would store it.
                items = [good_item, pair] if position else [pair, good_item]
                bodies.append((f"an entry {label} (at {position})", [messages.ENTRIES, items]))
        for label, value in bodies:
            self.add("replication-malformed", label, ReplicateInput(value), BAD_MESSAGE)

    # -- RPC ---------------------------------------------------------------------------------

    def rpc(self) -> None:
        rng = self.rng
        opened = open_replicate()

        def emit(
            label: str, expect: type[RpcProtocolError], *chunks: bytes, eof: bool = False
        ) -> None:
            self.add("rpc-garbage", label, RpcInput(tuple(chunks), eof), name(expect))

        lengths = [65_537, 65_538, 2**20, 2**31 - 1, 2**32 - 1]
        lengths += [rng.randint(65_537, 2**32 - 1) for _ in range(20)]
        for length in lengths:
            tail = rng.randbytes(rng.randint(0, 64))
            emit(f"length {length}", FrameTooLarge, length.to_bytes(4, "big") + tail)
        for _ in range(5):
            emit("length 0", MalformedFrame, bytes(4) + rng.randbytes(rng.randint(0, 16)))
        non_array = [b for b in range(256) if not 0x80 <= b <= 0x9F]
        for _ in range(60):
            body = bytes([rng.choice(non_array)]) + rng.randbytes(rng.randint(0, 300))
            wire = frame_bytes(body)
            cuts = sorted(rng.sample(range(1, len(wire)), min(3, len(wire) - 1)))
            chunks = [wire[a:b] for a, b in zip([0, *cuts], [*cuts, len(wire)], strict=True)]
            emit(f"random body of {len(body)} bytes", MalformedFrame, *chunks)
        for _ in range(20):  # an array whose first item is not a frame type 0..7
            body = head(4, rng.randint(1, 6)) + bytes([rng.randint(8, 255)])
            body += rng.randbytes(rng.randint(0, 40))
            emit(f"array of random items, {len(body)} bytes", MalformedFrame, frame_bytes(body))
        ping = "8400016470696e67"  # [0, 1, "ping", ...
        non_canonical = {
            "GOODBYE with a wide type": "811807",
            "GOODBYE with a wide array head": "980107",
            "GOODBYE as an indefinite array": "9f07ff",
            "GOODBYE under tag 55799": "d9d9f78107",
            "GOODBYE under tag 24": "d818428107",
            "GOODBYE, then a trailing byte": "810700",
            "REQUEST with an unsorted map body": ping + "a2616202616101",
            "REQUEST with duplicate keys": ping + "a2616101616102",
            "REQUEST with a float body": ping + "f93c00",
            "REQUEST with an undefined body": ping + "f7",
            "REQUEST with a tag-24 body": ping + "d8184101",
            "REQUEST with a too-deep body": ping + "81" * 17 + "01",
            "REQUEST id with 8 argument bytes": "84001b00000000000000016470696e67f6",
            "REQUEST method with a wide length": "840001780470696e67f6",
            "DATA with invalid UTF-8 text": "830162fffe",
        }
        for label, hex_value in non_canonical.items():
            emit(label, MalformedFrame, opened, frame_bytes(bytes.fromhex(hex_value)))
        arity = {0: 4, 1: 3, 2: 4, 3: 3, 4: 2, 5: 4, 6: 3, 7: 1}
        sample_items: list[Any] = [0, 1, "replicate", None, "m"]
        for ftype, count in arity.items():
            for delta in (-1, 1):
                items = [ftype, *sample_items[: count - 1 + delta]] if count + delta > 0 else []
                emit(f"type {ftype} with {count + delta} items", MalformedFrame, frame(items))
        for label, value in (
            ("REQUEST id -1", [0, -1, "ping", None]),
            ("REQUEST id text", [0, "1", "ping", None]),
            ("REQUEST id null", [0, None, "ping", None]),
            ("REQUEST method bytes", [0, 1, b"ping", None]),
            ("REQUEST method int", [0, 1, 0, None]),
            ("OPEN id true", [2, True, "replicate", None]),
            ("DATA id bytes", [3, b"\x01", None]),
            ("END id -3", [4, -3]),
            ("ERROR reason int", [5, 1, 0, "m"]),
            ("ERROR message null", [5, 1, "r", None]),
            ("CREDIT 0", [6, 1, 0]),
            ("CREDIT -1", [6, 1, -1]),
            ("CREDIT true", [6, 1, True]),
            ("CREDIT text", [6, 1, "1"]),
            ("CREDIT null", [6, 1, None]),
        ):
            emit(label, MalformedFrame, opened, frame(value))
        for ftype_value in (8, 9, 255, 2**64 - 1, -1, -(2**64), "0", True, None, b"\x00", [0]):
            emit(f"frame type {ftype_value!r}", MalformedFrame, frame([ftype_value, 1]))
        emit("an empty array", MalformedFrame, frame([]))
        for label, chunks in (
            ("OPEN on id 0", [frame([2, 0, "replicate", None])]),
            ("REQUEST on id 0", [frame([0, 0, "ping", None])]),
            ("OPEN on our parity", [frame([2, 2, "replicate", None])]),
            ("REQUEST on our parity", [frame([0, 4, "ping", None])]),
            ("OPEN reusing id 1", [opened, frame([2, 1, "replicate", None])]),
            (
                "REQUEST below the last id",
                [frame([0, 5, "ping", None]), frame([0, 3, "ping", None])],
            ),
            ("DATA on id 0", [opened, frame([3, 0, None])]),
            ("CREDIT on id 0", [opened, frame([6, 0, 1])]),
        ):
            emit(label, BadStreamId, *chunks)
        for label, chunks in (
            ("DATA on a stream never opened", [frame([3, 5, None])]),
            ("END on a stream never opened", [frame([4, 7])]),
            ("CREDIT on a stream never opened", [frame([6, 9, 100])]),
            ("ERROR on a stream never opened", [frame([5, 3, "r", "m"])]),
            ("RESPONSE to a request never sent", [frame([1, 2, None])]),
            ("DATA on the next id", [opened, frame([3, 3, None])]),
            ("DATA on our unused id", [opened, frame([3, 2, None])]),
        ):
            emit(label, UnknownStream, *chunks)
        for label, chunks in (
            ("DATA on a request", [frame([0, 1, "ping", None]), frame([3, 1, None])]),
            ("END on a request", [frame([0, 1, "ping", None]), frame([4, 1])]),
            ("RESPONSE on the peer's own stream", [opened, frame([1, 1, None])]),
            ("DATA after the peer's END", [opened, frame([4, 1]), frame([3, 1, None])]),
            ("END twice", [opened, frame([4, 1]), frame([4, 1])]),
            ("OPEN after GOODBYE", [frame([7]), opened]),
            ("GOODBYE twice", [frame([7]), frame([7])]),
            ("DATA after GOODBYE", [opened, frame([7]), frame([3, 1, None])]),
            ("a stray byte after GOODBYE", [frame([7]), b"\x00"]),
        ):
            emit(label, UnexpectedFrame, *chunks)
        big = frame([3, 1, rng.randbytes(65_000)])
        emit("DATA beyond the window", FlowControlViolation, opened, *([big] * 5))
        emit("CREDIT above 2^32-1", FlowControlViolation, opened, frame([6, 1, 2**32]))
        emit(
            "CREDIT overflowing in two steps",
            FlowControlViolation,
            opened,
            frame([6, 1, 2**31]),
            frame([6, 1, 2**31]),
        )
        emit("CREDIT of 2^64-1", FlowControlViolation, opened, frame([6, 1, 2**64 - 1]))
        emit("EOF at once", ConnectionLost, eof=True)
        emit("EOF after OPEN", ConnectionLost, opened, eof=True)
        emit("EOF inside a length", ConnectionLost, opened[:2], eof=True)
        emit("EOF inside a body", ConnectionLost, opened[:-1], eof=True)
        # Truncation: every prefix of a real session start (OPEN + an ENTRIES DATA), then EOF.
        sample_entry, sample_body, _ = self.first(size=40)
        data = encode_frame(
            Frame(
                FrameType.DATA,
                1,
                body=[messages.ENTRIES, [[sample_entry.header, sample_body]]],
            )
        )
        stream = opened + data
        for cut in range(len(stream)):
            self.add(
                "rpc-truncated",
                f"first {cut} of {len(stream)} bytes, then EOF",
                RpcInput((stream[:cut],), eof=True),
                name(ConnectionLost),
            )
        body = data[4:]
        for cut in self.sample(len(body), 100):
            self.add(
                "rpc-truncated",
                f"DATA body cut to {cut} bytes, length adjusted",
                RpcInput((opened, frame_bytes(body[:cut]))),
                name(MalformedFrame),
            )

    # -- Secret Handshake ------------------------------------------------------------------

    def new_session(self, net: bytes = P2PCREW_NETWORK_KEY) -> _Session:
        r = self.rng
        return record_session(
            net, r.randbytes(32), r.randbytes(32), r.randbytes(32), r.randbytes(32)
        )

    def server(
        self,
        s: _Session,
        *feed: bytes,
        net: bytes | None = None,
        eph: bytes | None = None,
        seed: bytes | None = None,
    ) -> ShsInput:
        return ShsInput(
            "server",
            s.net if net is None else net,
            s.server_seed if seed is None else seed,
            s.server_eph if eph is None else eph,
            tuple(feed),
        )

    def client(
        self, s: _Session, *feed: bytes, net: bytes | None = None, eph: bytes | None = None
    ) -> ShsInput:
        return ShsInput(
            "client",
            s.net if net is None else net,
            s.client_seed,
            s.client_eph if eph is None else eph,
            tuple(feed),
            s.server_pk,
        )

    def handshake(self) -> None:
        rng = self.rng
        sessions = [self.new_session() for _ in range(8)]
        steps: list[tuple[int, str, type[HandshakeFailed], int]] = [
            (0, "shs-msg1", BadNetworkKey, 32),
            (1, "shs-msg2", BadNetworkKey, 32),
            (2, "shs-msg3", BadAuthentication, 48),
            (3, "shs-msg4", BadAuthentication, 40),
        ]
        for index, category, expect, bits in steps:
            size = len(sessions[0].msgs[index])
            mutations: list[tuple[str, int, int]] = [
                (f"byte {pos} ^ mask", pos, rng.randint(1, 255)) for pos in range(size)
            ]
            mutations += [
                (f"bit {bit}", bit // 8, 0x80 >> (bit % 8)) for bit in self.sample(size * 8, bits)
            ]
            for n, (label, pos, mask) in enumerate(mutations):
                s = sessions[n % len(sessions)]
                bad = xor_byte(s.msgs[index], pos, mask)
                chunked = (
                    (bad[: pos + 1], bad[pos + 1 :]) if n % 5 == 0 and pos + 1 < size else (bad,)
                )
                if index in (0, 2):
                    inp = self.server(s, *(s.msgs[:1] if index == 2 else ()), *chunked)
                else:
                    inp = self.client(s, *(s.msgs[1:2] if index == 3 else ()), *chunked)
                self.add(category, f"{label} ({mask:#04x})", inp, name(expect))
        # Truncated, extended and empty messages.
        s = sessions[0]
        hangups: list[tuple[str, ShsInput, type[HandshakeFailed]]] = []
        for cut in (0, 1, 31, 32, 63):
            hangups.append(
                (f"msg1 cut to {cut}, EOF", self.server(s, s.msgs[0][:cut], b""), HandshakeFailed)
            )
            hangups.append(
                (f"msg2 cut to {cut}, EOF", self.client(s, s.msgs[1][:cut], b""), BadNetworkKey)
            )
        for cut in (0, 1, 16, 80, 111):
            hangups.append(
                (
                    f"msg3 cut to {cut}, EOF",
                    self.server(s, s.msgs[0], s.msgs[2][:cut], b""),
                    BadNetworkKey,
                )
            )
        for cut in (0, 1, 16, 79):
            hangups.append(
                (
                    f"msg4 cut to {cut}, EOF",
                    self.client(s, s.msgs[1], s.msgs[3][:cut], b""),
                    WrongServerKey,
                )
            )
        for extra in (1, 32, 64, 112):
            tail = rng.randbytes(extra)
            hangups.append(
                (f"msg1 + {extra} bytes", self.server(s, s.msgs[0] + tail), HandshakeFailed)
            )
            hangups.append(
                (f"msg2 + {extra} bytes", self.client(s, s.msgs[1] + tail), HandshakeFailed)
            )
        hangups.append(
            ("msg1 + msg3 in one write", self.server(s, s.msgs[0] + s.msgs[2]), HandshakeFailed)
        )
        hangups.append(
            ("msg2 + msg4 in one write", self.client(s, s.msgs[1] + s.msgs[3]), HandshakeFailed)
        )
        for label, inp, expect in hangups:
            self.add("shs-length", label, inp, name(expect))
        # Replays: a recorded transcript against machines with fresh ephemeral keys.
        for n in range(20):
            s = sessions[n % len(sessions)]
            other = sessions[(n + 1) % len(sessions)]
            fresh_eph = rng.randbytes(32)
            self.add(
                "shs-replay",
                f"msg1+msg3 of session {n % 8} to a new server",
                self.server(s, s.msgs[0], s.msgs[2], eph=fresh_eph),
                name(BadAuthentication),
            )
            self.add(
                "shs-replay",
                f"msg2+msg4 of session {n % 8} to a new client",
                self.client(s, s.msgs[1], s.msgs[3], eph=fresh_eph),
                name(BadAuthentication),
            )
            self.add(
                "shs-replay",
                f"msg3 of another session after msg1 of session {n % 8}",
                self.server(s, s.msgs[0], other.msgs[2]),
                name(BadAuthentication),
            )
            self.add(
                "shs-replay",
                f"msg1+msg3 of session {n % 8} to another server key",
                self.server(s, s.msgs[0], s.msgs[2], seed=other.server_seed),
                name(BadAuthentication),
            )
        # Wrong network keys, both directions.
        nets: list[tuple[str, bytes]] = [
            ("the SSB main network", SSB_MAIN_NETWORK_KEY),
            ("zeros", bytes(32)),
            ("0xff", b"\xff" * 32),
        ]
        nets += [
            (f"our key with bit {b} flipped", flip_bit(P2PCREW_NETWORK_KEY, b))
            for b in self.sample(256, 17)
        ]
        nets += [(f"random key {n}", rng.randbytes(32)) for n in range(20)]
        for label, net in nets:
            theirs = self.new_session(net)
            self.add(
                "shs-wrong-network",
                f"client on {label}",
                self.server(theirs, theirs.msgs[0], net=P2PCREW_NETWORK_KEY),
                name(BadNetworkKey),
            )
            self.add(
                "shs-wrong-network",
                f"server on {label}",
                self.client(theirs, theirs.msgs[1], net=P2PCREW_NETWORK_KEY),
                name(BadNetworkKey),
            )
        # Low-order ephemeral keys with a correct HMAC, and forged msg3 for weak client keys.
        low_order = [
            (x | top).to_bytes(32, "little")
            for x in (
                0,
                1,
                325606250916557431795983626356110631294008115727848805560023387167927233504,
                39382357235489614581723060781553021112529911719440698176882885853963445705823,
                _P - 1,
                _P,
                _P + 1,
            )
            for top in (0, 1 << 255)
        ]
        for point in low_order:
            challenge = make_challenge(s.net, point)
            self.add(
                "shs-low-order",
                f"msg1 with ephemeral {point.hex()[:12]}…",
                self.server(s, challenge),
                name(InvalidPeerKey),
            )
            self.add(
                "shs-low-order",
                f"msg2 with ephemeral {point.hex()[:12]}…",
                self.client(s, challenge),
                name(InvalidPeerKey),
            )
        for weak in (*SMALL_ORDER_ENCODINGS, *NON_CANONICAL_ENCODINGS):
            attacker = rng.randbytes(32)
            forged_sig = SMALL_ORDER_ENCODINGS[0] + bytes(32)
            msg1, msg3 = forge_msg3(s.net, s.server_pk, s.server_eph, attacker, forged_sig + weak)
            self.add(
                "shs-low-order",
                f"msg3 forged for client key {weak.hex()[:12]}…",
                self.server(s, msg1, msg3),
                name(BadAuthentication),
            )

    # -- box-stream --------------------------------------------------------------------------

    def boxstream(self) -> None:
        rng = self.rng
        key, nonce = rng.randbytes(32), rng.randbytes(24)

        def packets(*parts: bytes, goodbye: bool = False) -> bytes:
            enc = BoxStreamEncoder(key, nonce)
            for part in parts:
                enc.send_data(part)
            if goodbye:
                enc.send_goodbye()
            return enc.data_to_send()

        def emit(
            label: str,
            expect: type[TransportError],
            *chunks: bytes,
            eof: bool = False,
            k: bytes = key,
        ) -> None:
            self.add(
                "boxstream-garbage", label, BoxInput(k, nonce, tuple(chunks), eof), name(expect)
            )

        stream = packets(rng.randbytes(100), rng.randbytes(300), goodbye=True)
        for pos in self.sample(len(stream), 64):
            emit(f"byte {pos} flipped", StreamCorrupted, xor_byte(stream, pos, rng.randint(1, 255)))
        for _ in range(16):
            emit("random bytes", StreamCorrupted, rng.randbytes(rng.randint(34, 400)))
        for cut in self.sample(len(stream), 24):
            emit(f"cut to {cut} bytes, EOF", StreamTruncated, stream[:cut], eof=True)
        emit("data, then EOF without goodbye", StreamTruncated, packets(b"x" * 50), eof=True)
        for extra in (1, 34, 100):
            emit(
                f"goodbye, then {extra} bytes",
                StreamCorrupted,
                packets(b"hi", goodbye=True) + rng.randbytes(extra),
            )
        one = packets(b"first")
        two = packets(b"first", b"second")
        emit("a packet replayed", StreamCorrupted, one + one)
        emit("packets reordered", StreamCorrupted, two[len(one) :] + one)
        emit("the second packet alone", StreamCorrupted, two[len(one) :])
        for label, length in (("0", 0), ("4097", 4097), ("65535", 65535)):
            plain = length.to_bytes(2, "big") + rng.randbytes(16)
            header = sodium.crypto_secretbox_easy(plain, nonce, key)
            emit(f"authentic header announcing {label} bytes", StreamCorrupted, header)
        for _ in range(5):
            emit("another key", StreamCorrupted, stream, k=rng.randbytes(32))

    # -- crew envelopes ----------------------------------------------------------------------

    def envelopes(self) -> None:
        rng = self.rng

        def keypair() -> tuple[bytes, bytes]:
            secret = rng.randbytes(32)
            return secret, sodium.crypto_scalarmult_base(secret)

        epoch = rng.randbytes(32)
        ordinary = [
            envelope._seal(rng.randbytes(size), epoch, [], nonce=rng.randbytes(24))
            for size in (10, 300, 1500, 5000, 12000)
        ]
        me_secret, me_public = keypair()
        # Key distribution: 3 real recipients (me among them) and a dummy, shuffled.
        others = [keypair() for _ in range(2)]
        slots = [sealed_slot(rng, epoch, me_public)]
        slots += [sealed_slot(rng, epoch, pub) for _, pub in others]
        slots.append(dummy_slot(rng))
        order = list(range(4))
        rng.shuffle(order)
        my_slot = order.index(0)
        kd = envelope._seal(
            rng.randbytes(200), epoch, [slots[i] for i in order], nonce=rng.randbytes(24)
        )
        foreign = [(5 + SLOT_SIZE * i, 5 + SLOT_SIZE * (i + 1)) for i in range(4) if i != my_slot]

        def emit(category: str, label: str, inp: EnvelopeInput, expect: str) -> None:
            self.add(category, label, inp, expect)

        for payload in (*ordinary, kd):
            for n in range(12):
                keys = tuple(rng.randbytes(32) for _ in range(n % 4))
                pair = keypair() if n % 2 else (None, None)
                emit(
                    "envelope-wrong-key",
                    f"{len(payload)}-byte envelope, {len(keys)} keys",
                    EnvelopeInput(payload, keys, *pair),
                    NOT_OPENED,
                )
        for _ in range(16):  # a member of another crew, and a non-recipient of the slots
            emit(
                "envelope-wrong-key",
                "an outsider's key pair and an older epoch key",
                EnvelopeInput(kd, (rng.randbytes(32),), *keypair()),
                NOT_OPENED,
            )
        # Tampered: every byte of the smallest ordinary envelope, opened with the right keys.
        small = ordinary[0]
        for pos in range(len(small)):
            bad = xor_byte(small, pos, rng.randint(1, 255))
            expect = NOT_OPENED if envelope_structure_ok(bad) else name(EnvelopeMalformed)
            emit(
                "envelope-tampered",
                f"ordinary, byte {pos}",
                EnvelopeInput(bad, (epoch,), me_secret, me_public),
                expect,
            )
        for payload in ordinary[1:]:
            for pos in [*range(5), *self.sample(len(payload), 12)]:
                bad = xor_byte(payload, pos, rng.randint(1, 255))
                expect = NOT_OPENED if envelope_structure_ok(bad) else name(EnvelopeMalformed)
                emit(
                    "envelope-tampered",
                    f"{len(payload)} bytes, byte {pos}",
                    EnvelopeInput(bad, (epoch,), me_secret, me_public),
                    expect,
                )
        # Key distribution opened through our slot: our slot broken -> nothing opens;
        # nonce or ciphertext broken -> our slot's key fails to open it: malformed.
        # (Bytes of the other recipients' slots are not covered by any MAC the opener
        # checks; an entry's signed payload hash covers them, see envelope-in-entry.)
        # With the epoch key too, only bytes outside every slot (the epoch key opens
        # the content without any slot).
        del foreign
        mine = 5 + SLOT_SIZE * my_slot
        sealed_at = 5 + SLOT_SIZE * 4
        regions: list[tuple[str, list[int], tuple[tuple[bytes, ...], ...]]] = [
            ("structure", list(range(5)), ((), (epoch,))),
            ("our slot", [mine + i for i in self.sample(SLOT_SIZE, 40)], ((),)),
            (
                "nonce or ciphertext",
                [sealed_at + i for i in self.sample(len(kd) - sealed_at, 120)],
                ((), (epoch,)),
            ),
        ]
        for region, chosen, key_sets in regions:
            for at in chosen:
                bad = xor_byte(kd, at, rng.randint(1, 255))
                if not envelope_structure_ok(bad):
                    expect = name(EnvelopeMalformed)
                elif region == "our slot":
                    expect = NOT_OPENED
                else:
                    expect = name(EnvelopeMalformed)
                for keys in key_sets:
                    emit(
                        "envelope-tampered",
                        f"key distribution, {region} byte {at}, "
                        f"{'with' if keys else 'without'} the epoch key",
                        EnvelopeInput(bad, keys, me_secret, me_public),
                        expect,
                    )
        # Tampered envelopes carried by an entry: the signed payload hash catches every byte.
        key_c = self.new_key()
        chain = self.chain(key_c, 2)
        entry, _ = self.successor(key_c, chain, payload=kd)
        for pos in self.sample(len(kd), 64):
            bad = xor_byte(kd, pos, rng.randint(1, 255))
            self.entries(
                "envelope-in-entry",
                f"key distribution, byte {pos}",
                [(entry.header, bad)],
                PAYLOAD_HASH,
                preload=[(e.header, p) for e, p in chain],
            )
        post = envelope._seal(b"\xa1dtextbhi", epoch, [], nonce=rng.randbytes(24))
        first = create_entry(self.new_key(), 1, None, None, post)
        for pos in self.sample(len(post), 16):
            self.entries(
                "envelope-in-entry",
                f"crew post, byte {pos}",
                [(first.header, xor_byte(post, pos, 0x01))],
                PAYLOAD_HASH,
            )

    # -- whole batches -----------------------------------------------------------------

    def batches(self) -> None:
        """ENTRIES messages of many hostile entries at once (the verifier's parallel path).

        Items are drawn from the single-entry cases above that need no setup; each keeps
        its own expected rule, since one rejection never affects another item here.
        """
        pool = [
            case
            for case in self.cases
            if isinstance(case.input, ReplicateInput)
            and not case.input.preload
            and len(case.expect) == 1
            and case.expect[0] not in (BAD_MESSAGE, name(FrameTooLarge))
        ]
        for n in range(8):
            items: list[list[Any]] = []
            expect: list[str] = []
            size = 0
            while len(items) < messages.MAX_ENTRIES_PER_MESSAGE:
                case = self.rng.choice(pool)
                item = case.input.body[1][0]  # type: ignore[union-attr]
                item_size = len(item[0]) + len(item[1] or b"") + 8
                if size + item_size > 60_000:
                    break
                size += item_size
                items.append(item)
                expect.append(case.expect[0])
            self.add(
                "mixed-batch",
                f"batch {n} of {len(items)} entries",
                ReplicateInput([messages.ENTRIES, items]),
                *expect,
            )

    def build(self, seed: int) -> Corpus:
        self.bitflips()
        self.weak_authors()
        self.forks()
        self.sequences()
        self.oversize()
        self.prefixes()
        self.non_canonical()
        self.bad_fields()
        self.replication()
        self.rpc()
        self.handshake()
        self.boxstream()
        self.envelopes()
        self.batches()
        return Corpus(seed, self.base, tuple(self.cases))


def generate(seed: int | None = None) -> Corpus:
    """The corpus for ``seed`` (default: ``P2PCREW_CORPUS_SEED`` or 2026)."""
    seed = corpus_seed() if seed is None else seed
    return _Generator(seed).build(seed)


# ---- the harnesses ----------------------------------------------------------------------


class CorpusSetupError(RuntimeError):
    """A case's own setup (its preload of valid entries) failed: a corpus bug."""


def _unhandled(exc: BaseException) -> tuple[str]:
    return (f"{UNHANDLED}:{type(exc).__name__}: {str(exc)[:200]}",)


def run_replicate(store: Store, inp: ReplicateInput) -> tuple[str, ...]:
    """DATA on the replicate stream -> decode_message -> Store.ingest, as a Node does."""
    if inp.preload:
        setup = store.ingest(list(inp.preload))
        if setup.rejected or len(setup.accepted) + setup.duplicates != len(inp.preload):
            raise CorpusSetupError(f"preload not accepted: {setup.rejected[:1]}")
    rpc = RpcConnection(client=False)
    rpc.receive_data(open_replicate())
    try:
        events = rpc.receive_data(encode_frame(Frame(FrameType.DATA, 1, body=inp.body)))
    except RpcProtocolError as exc:
        return (name(type(exc)),)
    data = [e for e in events if isinstance(e, DataReceived)]
    if len(data) != 1:
        return (NO_DECISION,)
    try:
        message = messages.decode_message(data[0].body)
    except messages.BadReplicationMessage:
        return (BAD_MESSAGE,)
    rpc.consume(1, data[0].flow_bytes)
    if not isinstance(message, messages.Entries):
        return (ACCEPTED,)
    result = store.ingest(message.items)
    outcome = [""] * len(message.items)
    for rejection in result.rejected:
        outcome[rejection.index] = rejection.error.rule
    accepted = {entry.header for entry in result.accepted}
    duplicates = 0
    for index, (header, _payload) in enumerate(message.items):
        if outcome[index]:
            continue
        if header in accepted:
            outcome[index] = ACCEPTED
        else:
            outcome[index] = SEQUENCE_REPEAT
            duplicates += 1
    if duplicates != result.duplicates:
        return (f"{UNHANDLED}:bookkeeping: {duplicates} != {result.duplicates} duplicates",)
    return tuple(outcome)


def run_rpc(inp: RpcInput) -> tuple[str, ...]:
    rpc = RpcConnection(client=False)
    try:
        for chunk in inp.chunks:
            rpc.receive_data(chunk)
        if inp.eof:
            rpc.receive_data(b"")
    except RpcProtocolError as exc:
        return (name(type(exc)),)
    return (NO_DECISION,)


def run_shs(inp: ShsInput) -> tuple[str, ...]:
    machine: ServerHandshake | ClientHandshake
    if inp.role == "server":
        machine = ServerHandshake(inp.network_key, inp.local_seed, ephemeral_secret=inp.ephemeral)
    else:
        machine = ClientHandshake(
            inp.network_key, inp.local_seed, inp.server_pk, ephemeral_secret=inp.ephemeral
        )
    machine.data_to_send()  # the client's msg1
    for chunk in inp.feed:
        try:
            events = machine.receive_data(chunk)
        except HandshakeFailed as exc:
            if machine.data_to_send():
                return (SENT_AFTER_FAILURE,)
            return (name(type(exc)),)
        if events:
            return (ACCEPTED,)
        machine.data_to_send()
    return (NO_DECISION,)


def run_box(inp: BoxInput) -> tuple[str, ...]:
    decoder = BoxStreamDecoder(inp.key, inp.nonce)
    try:
        for chunk in inp.chunks:
            decoder.receive_data(chunk)
        if inp.eof:
            decoder.receive_data(b"")
    except TransportError as exc:
        return (name(type(exc)),)
    return (NO_DECISION,)


def run_envelope(inp: EnvelopeInput) -> tuple[str, ...]:
    try:
        opened = open_envelope(
            inp.payload, list(inp.epoch_keys), inp.curve_secret, inp.curve_public
        )
    except CrewError as exc:
        return (name(type(exc)),)
    if isinstance(opened, OpenedEnvelope):
        return (ACCEPTED,)
    return (NOT_OPENED,)


def run_case(store: Store, case: Case) -> tuple[str, ...]:
    """The outcome of one case; exceptions outside each layer's promise become UNHANDLED."""
    inp = case.input
    try:
        if isinstance(inp, ReplicateInput):
            return run_replicate(store, inp)
        if isinstance(inp, RpcInput):
            return run_rpc(inp)
        if isinstance(inp, ShsInput):
            return run_shs(inp)
        if isinstance(inp, BoxInput):
            return run_box(inp)
        return run_envelope(inp)
    except CorpusSetupError:
        raise
    except Exception as exc:
        return _unhandled(exc)


def matches(outcome: Sequence[str], expect: Sequence[str]) -> bool:
    return len(outcome) == len(expect) and all(
        got in want.split("|") for got, want in zip(outcome, expect, strict=True)
    )


@dataclass
class CategoryResult:
    inputs: int = 0
    accepted: int = 0
    unhandled: int = 0
    unexpected: int = 0
    """Rejected, but not for the expected reason (or not decided at all)."""


@dataclass
class Report:
    seed: int
    categories: dict[str, CategoryResult] = field(default_factory=dict)
    failures: list[tuple[Case, tuple[str, ...]]] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def inputs(self) -> int:
        return sum(c.inputs for c in self.categories.values())

    @property
    def accepted(self) -> int:
        return sum(c.accepted for c in self.categories.values())

    @property
    def unhandled(self) -> int:
        return sum(c.unhandled for c in self.categories.values())

    @property
    def unexpected(self) -> int:
        return sum(c.unexpected for c in self.categories.values())

    def summary(self) -> str:
        return (
            f"{self.inputs} inputs in {len(self.categories)} categories, {self.accepted} "
            f"accepted, {self.unhandled} unhandled exceptions; "
            + (
                "each rejection carried the expected reason"
                if not self.unexpected
                else f"{self.unexpected} rejections did not carry the expected reason"
            )
            + f" (seed {self.seed}, {self.seconds:.1f} s)"
        )

    def table(self) -> str:
        width = max(len(c) for c in self.categories)
        lines = [f"{'category':<{width}}  inputs  accepted  unhandled  unexpected"]
        for category, r in self.categories.items():
            lines.append(
                f"{category:<{width}}  {r.inputs:>6}  {r.accepted:>8}  {r.unhandled:>9}  "
                f"{r.unexpected:>10}"
            )
        lines.append(self.summary())
        return "\n".join(lines)

    def describe_failures(self, limit: int = 20) -> str:
        return "\n".join(
            f"[{case.category}] {case.label}: expected {case.expect}, got {outcome}"
            for case, outcome in self.failures[:limit]
        )


def run_corpus(corpus: Corpus, store: Store) -> Report:
    """Run every case against ``store`` (a fresh store: the base feeds are stored first)."""
    start = time.perf_counter()
    setup = store.ingest(list(corpus.base))
    if setup.rejected or len(setup.accepted) != len(corpus.base):
        raise CorpusSetupError("the base feeds were not accepted")
    report = Report(corpus.seed)
    for case in corpus.cases:
        outcome = run_case(store, case)
        result = report.categories.setdefault(case.category, CategoryResult())
        result.inputs += 1
        if ACCEPTED in outcome:
            result.accepted += 1
        elif any(o.startswith(UNHANDLED) for o in outcome):
            result.unhandled += 1
        elif not matches(outcome, case.expect):
            result.unexpected += 1
        else:
            continue
        report.failures.append((case, outcome))
    report.seconds = time.perf_counter() - start
    return report


def main(argv: Sequence[str] = ()) -> int:
    from p2pcrew.feed.sqlite_store import SqliteStore

    seed = int(argv[0]) if argv else corpus_seed()
    corpus = generate(seed)
    with tempfile.TemporaryDirectory(prefix="p2pcrew-corpus-") as tmp:
        store = SqliteStore(Path(tmp) / "store")
        try:
            report = run_corpus(corpus, store)
        finally:
            store.close()
    print(report.table())
    print(f"corpus digest {corpus.digest()}")
    if report.failures:
        print(report.describe_failures())
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
