"""Crew envelopes: sealing, opening, padding buckets, slots, and hostile bytes."""

from __future__ import annotations

import os
import re
from pathlib import Path

import nacl.bindings as sodium
import nacl.public
import nacl.signing
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from p2pcrew import codec
from p2pcrew.crew import envelope
from p2pcrew.crew.envelope import (
    MAX_RECIPIENTS,
    PAD_BUCKETS,
    SLOT_BUCKETS,
    SLOT_SIZE,
    OpenedEnvelope,
    is_envelope,
    max_content_size,
    new_key,
    open_envelope,
    pad_buckets,
    seal_for_crew,
    seal_for_members,
    slot_count,
)
from p2pcrew.crew.errors import (
    BadRecipientKey,
    CrewError,
    EnvelopeMalformed,
    EnvelopeTooLarge,
    TooManyRecipients,
)
from p2pcrew.crew.membership import create_crew
from p2pcrew.crew.state import encode_crew_state
from p2pcrew.feed.content import Post, encode_content
from p2pcrew.feed.entry import MAX_PAYLOAD_SIZE

OVERHEAD = 3 + 2 + 24 + 16  # CBOR head, version, nslots, nonce, MAC


class Keys:
    """A Curve25519 key pair as a member's node holds it."""

    def __init__(self) -> None:
        private = nacl.public.PrivateKey.generate()
        self.secret = bytes(private)
        self.public = bytes(private.public_key)

    def open(self, payload: bytes, epoch_keys: list[bytes] | None = None) -> OpenedEnvelope | None:
        return open_envelope(payload, epoch_keys or [], self.secret, self.public)


@pytest.fixture(scope="module")
def people() -> list[Keys]:
    return [Keys() for _ in range(MAX_RECIPIENTS + 1)]


def body(payload: bytes) -> bytes:
    value = codec.decode(payload)
    assert type(value) is bytes
    return value


def expected_size(content_size: int, nslots: int = 0) -> int:
    bucket = next(b for b in pad_buckets(nslots) if content_size < b)
    return OVERHEAD + nslots * SLOT_SIZE + bucket


# --- ordinary crew content ------------------------------------------------------------------


def test_limits_follow_from_the_payload_size() -> None:
    assert max_content_size(0) == MAX_PAYLOAD_SIZE - OVERHEAD - 1 == 16_338
    assert max_content_size(64) == MAX_PAYLOAD_SIZE - OVERHEAD - 64 * 80 - 1 == 11_218
    assert pad_buckets(0) == (*PAD_BUCKETS, 16_339)
    for nslots in (0, *SLOT_BUCKETS):
        assert pad_buckets(nslots)[-1] > PAD_BUCKETS[-1]


SIZES = sorted(
    {0, 1, 100, max_content_size(0)}
    | {b + d for b in PAD_BUCKETS for d in (-2, -1, 0)}
    | {max_content_size(0) - 1}
)


@pytest.mark.parametrize("size", SIZES)
def test_seal_for_crew_round_trip_and_exact_bucket(size: int) -> None:
    key = new_key()
    content = os.urandom(size)
    payload = seal_for_crew(content, key)
    assert len(payload) == expected_size(size)
    assert len(payload) <= MAX_PAYLOAD_SIZE
    assert is_envelope(payload)
    assert codec.decode(payload) == body(payload)  # canonical CBOR byte string
    assert body(payload)[:2] == b"\x01\x00"
    opened = open_envelope(payload, [new_key(), key], None, None)
    assert opened == OpenedEnvelope(content, key, via_slot=False)


def test_ciphertext_length_depends_only_on_the_bucket() -> None:
    key = new_key()
    lower = 0
    for bucket in pad_buckets(0):
        sizes = {
            len(seal_for_crew(b"x" * n, key)) for n in (lower, (lower + bucket) // 2, bucket - 1)
        }
        assert sizes == {OVERHEAD + bucket}
        lower = bucket


def test_largest_content_fills_the_payload_and_one_more_byte_is_refused() -> None:
    key = new_key()
    assert len(seal_for_crew(bytes(max_content_size(0)), key)) == MAX_PAYLOAD_SIZE
    with pytest.raises(EnvelopeTooLarge, match="does not fit"):
        seal_for_crew(bytes(max_content_size(0) + 1), key)


def test_wrong_or_missing_keys_return_none() -> None:
    payload = seal_for_crew(b"hello crew", new_key())
    assert open_envelope(payload, [], None, None) is None
    assert open_envelope(payload, [new_key() for _ in range(20)], None, None) is None
    assert Keys().open(payload, [new_key()]) is None


def test_plaintext_payloads_are_not_envelopes() -> None:
    post = encode_content(Post(time=1, text="hi"))
    for payload in (post, b"", b"\x59", b"\x59\x00\x01\x01", bytes(10)):
        assert not is_envelope(payload)
        with pytest.raises(EnvelopeMalformed):
            open_envelope(payload, [new_key()], None, None)


def test_bad_key_arguments_are_local_bugs() -> None:
    payload = seal_for_crew(b"x", new_key())
    with pytest.raises(ValueError, match="32 bytes"):
        seal_for_crew(b"x", b"short")
    with pytest.raises(ValueError, match="32 bytes"):
        open_envelope(payload, [b"short"], None, None)
    with pytest.raises(ValueError, match="both halves"):
        open_envelope(payload, [], bytes(32), None)


# --- key distribution ---------------------------------------------------------------------


@pytest.mark.parametrize("count", [1, 2, 3, 5, 8, 9, 17, 32, 33, 64])
def test_every_recipient_opens_and_slot_count_is_a_bucket(count: int, people: list[Keys]) -> None:
    recipients = people[:count]
    content = b"crew state"
    key = new_key()
    payload = seal_for_members(content, [p.public for p in recipients], key=key)
    assert body(payload)[1] == slot_count(count) == min(b for b in SLOT_BUCKETS if b >= count)
    assert len(payload) == expected_size(len(content), slot_count(count))
    for person in recipients:
        assert person.open(payload) == OpenedEnvelope(content, key, via_slot=True)
    assert people[-1].open(payload) is None  # not a recipient
    # Whoever holds the key opens it without a slot, before any X25519 work.
    assert open_envelope(payload, [key], None, None) == OpenedEnvelope(content, key, False)


def test_65_recipients_are_refused(people: list[Keys]) -> None:
    with pytest.raises(TooManyRecipients, match="64"):
        seal_for_members(b"x", [p.public for p in people])
    assert issubclass(TooManyRecipients, EnvelopeTooLarge)


def test_recipient_argument_errors(people: list[Keys]) -> None:
    with pytest.raises(ValueError, match="at least one"):
        seal_for_members(b"x", [])
    with pytest.raises(ValueError, match="duplicate"):
        seal_for_members(b"x", [people[0].public, people[0].public])
    with pytest.raises(BadRecipientKey):
        seal_for_members(b"x", [bytes(32)])  # a low-order point
    with pytest.raises(BadRecipientKey):
        seal_for_members(b"x", [b"short"])
    with pytest.raises(EnvelopeTooLarge):
        seal_for_members(bytes(max_content_size(64) + 1), [p.public for p in people[:64]])
    fits = seal_for_members(bytes(max_content_size(64)), [p.public for p in people[:64]])
    assert len(fits) == MAX_PAYLOAD_SIZE


def test_dummy_slots_look_like_sealed_boxes(people: list[Keys]) -> None:
    payload = seal_for_members(b"x", [p.public for p in people[:33]])
    data = body(payload)
    assert data[1] == 64
    for index in range(64):
        slot = data[2 + index * SLOT_SIZE : 2 + (index + 1) * SLOT_SIZE]
        assert slot[31] & 0x80 == 0  # an X25519 public key, as in a real sealed box


def test_real_slots_are_shuffled(people: list[Keys]) -> None:
    def my_slot(payload: bytes) -> int:
        data = body(payload)
        for index in range(data[1]):
            slot = data[2 + index * SLOT_SIZE : 2 + (index + 1) * SLOT_SIZE]
            try:
                sodium.crypto_box_seal_open(slot, people[0].public, people[0].secret)
            except Exception:
                continue
            return index
        raise AssertionError("no slot for us")

    positions = {my_slot(seal_for_members(b"x", [p.public for p in people[:5]])) for _ in range(40)}
    assert len(positions) > 1


# --- tampering and hostile envelopes --------------------------------------------------------


def rebuild(data: bytes) -> bytes:
    return codec.encode(data)


def test_tampering_gives_none_or_malformed(people: list[Keys]) -> None:
    me = people[0]
    key = new_key()
    payload = seal_for_members(b"secret", [p.public for p in people[:3]], key=key)
    data = body(payload)
    ciphertext_at = 2 + 4 * SLOT_SIZE + 24
    for position in (2, 2 + SLOT_SIZE * 3 + 5, 2 + 4 * SLOT_SIZE + 1, ciphertext_at, len(data) - 1):
        mutated = bytearray(data)
        mutated[position] ^= 0x01
        try:
            result = me.open(rebuild(bytes(mutated)), [key])
        except EnvelopeMalformed:
            continue
        assert result is None or result.content == b"secret"  # a dummy slot changed
    for bad in (data[:-1], data + b"\x00", data[:1] + b"\x03" + data[2:], b"\x02" + data[1:]):
        with pytest.raises(EnvelopeMalformed):
            me.open(rebuild(bad), [key])


def test_a_ciphertext_flip_is_rejected_by_the_mac() -> None:
    key = new_key()
    data = bytearray(body(seal_for_crew(b"hello", key)))
    data[-1] ^= 0x80
    assert open_envelope(rebuild(bytes(data)), [key], None, None) is None


def test_authenticated_content_with_broken_padding_is_malformed() -> None:
    key, nonce = new_key(), os.urandom(24)
    unpadded = bytes(256)  # no 0x80 marker
    data = b"\x01\x00" + nonce + sodium.crypto_secretbox_easy(unpadded, nonce, key)
    with pytest.raises(EnvelopeMalformed, match="padding"):
        open_envelope(rebuild(data), [key], None, None)


def test_a_slot_for_us_with_the_wrong_key_is_malformed(people: list[Keys]) -> None:
    me = people[0]
    real = envelope._seal(b"x", new_key(), [sodium.crypto_box_seal(new_key(), me.public)])
    with pytest.raises(EnvelopeMalformed, match="slot"):
        me.open(real)


def test_a_low_order_ephemeral_key_in_a_slot_is_not_a_crash(people: list[Keys]) -> None:
    slot = bytes(32) + os.urandom(48)
    payload = envelope._seal(b"x", new_key(), [slot])
    assert people[0].open(payload) is None


def test_a_non_canonical_head_is_malformed() -> None:
    data = body(seal_for_crew(b"x", new_key()))
    four_byte_head = b"\x5a" + len(data).to_bytes(4, "big") + data
    assert not is_envelope(four_byte_head)
    with pytest.raises(EnvelopeMalformed):
        open_envelope(four_byte_head, [new_key()], None, None)


def test_errors_have_reasons() -> None:
    for cls in (EnvelopeMalformed, EnvelopeTooLarge, TooManyRecipients, BadRecipientKey):
        assert issubclass(cls, CrewError)
        assert cls.reason and cls.reason != CrewError.reason


def test_opened_envelope_repr_has_no_key() -> None:
    key = new_key()
    opened = open_envelope(seal_for_crew(b"x", key), [key], None, None)
    assert opened is not None
    assert key.hex() not in repr(opened) and repr(key) not in repr(opened)


# --- properties -----------------------------------------------------------------------------

FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
KEY = new_key()
FIXTURE_KEYS = Keys()
SAMPLES = [
    seal_for_crew(b"ordinary content", KEY),
    seal_for_members(b"to members", [FIXTURE_KEYS.public, Keys().public], key=KEY),
    seal_for_crew(bytes(3000), KEY),
]


@settings(max_examples=60, deadline=None)
@given(st.binary(max_size=max_content_size(0)))
def test_round_trip_any_content(content: bytes) -> None:
    key = new_key()
    payload = seal_for_crew(content, key)
    assert len(payload) == expected_size(len(content))
    assert open_envelope(payload, [key], None, None) == OpenedEnvelope(content, key, False)


@FUZZ
@given(st.binary(max_size=600))
def test_random_bytes_never_raise_anything_else(data: bytes) -> None:
    for payload in (data, rebuild(data), b"\x59" + len(b"\x01" + data).to_bytes(2, "big")):
        try:
            result = open_envelope(payload, [KEY], FIXTURE_KEYS.secret, FIXTURE_KEYS.public)
        except EnvelopeMalformed:
            continue
        assert result is None


@FUZZ
@given(
    st.sampled_from(SAMPLES),
    st.lists(st.tuples(st.integers(0, 20_000), st.integers(0, 255)), min_size=1, max_size=4),
    st.integers(-40, 40),
)
def test_mutated_envelopes_give_none_malformed_or_the_original(
    payload: bytes, flips: list[tuple[int, int]], resize: int
) -> None:
    original = open_envelope(payload, [KEY], None, None)
    assert original is not None
    data = bytearray(payload)
    for position, value in flips:
        data[position % len(data)] = value
    if resize > 0:
        data.extend(os.urandom(resize))
    elif resize < 0:
        del data[resize:]
    for candidate in (bytes(data), rebuild(body_or_raw(bytes(data)))):
        try:
            result = open_envelope(candidate, [KEY], FIXTURE_KEYS.secret, FIXTURE_KEYS.public)
        except EnvelopeMalformed:
            continue
        assert result is None or result.content == original.content


def body_or_raw(data: bytes) -> bytes:
    """The byte string's contents if ``data`` still decodes as one, else ``data``."""
    try:
        value = codec.decode(data)
    except codec.CodecError:
        return data[3:]
    return value if type(value) is bytes else data


# --- docs/crews.md examples -------------------------------------------------------------------

DOC = Path(__file__).resolve().parents[2] / "docs" / "crews.md"
CHECK = re.compile(r"<!-- check: (?P<name>[\w.]+) -->\s*```\w*\n(?P<body>.*?)```", re.S)


def test_documented_examples_match_the_code() -> None:
    documented = {m["name"]: "".join(m["body"].split()) for m in CHECK.finditer(DOC.read_text())}
    founder = bytes(nacl.signing.SigningKey(bytes(range(32))).verify_key)
    k0 = bytes([1]) * 32
    state = create_crew(founder, "night crew", time=1_700_000_000_000, key=k0)
    post = encode_content(Post(text="hello crew", time=1_700_000_000_000, crew=state.crew))
    sealed = envelope._seal(post, k0, [], nonce=bytes([2]) * 24)
    generated = {
        "crew.id": state.crew.hex(),
        "crew.state0": encode_crew_state(state).hex(),
        "crew.post_envelope": sealed.hex(),
    }
    assert documented == generated
    assert open_envelope(sealed, [k0], None, None) == OpenedEnvelope(post, k0, False)


def test_documented_numbers() -> None:
    text = DOC.read_text()
    sizes = ", ".join(f"{OVERHEAD + b:,}" for b in PAD_BUCKETS)
    assert f"{sizes} or {MAX_PAYLOAD_SIZE:,} bytes" in text
    assert f"{max_content_size(0):,} bytes" in text and f"{max_content_size(64):,}" in text
