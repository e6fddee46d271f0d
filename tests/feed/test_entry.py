"""Entry format and the pure validation rules: one test (at least) per rule."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from p2pcrew import codec
from p2pcrew.feed import errors, validate
from p2pcrew.feed.entry import (
    MAX_PAYLOAD_SIZE,
    create_entry,
    decode_entry,
    lipmaa,
    verify_signature,
)
from p2pcrew.feed.validate import Tip
from tests.feed.helpers import fields_for, key, make_chain, sign_fields

K = key(1)


def test_lipmaa_matches_bamboo_examples() -> None:
    # Values from the Bamboo specification's lipmaa figure.
    assert [lipmaa(n) for n in range(1, 14)] == [0, 1, 2, 1, 4, 5, 6, 4, 8, 9, 10, 8, 4]
    assert lipmaa(40) == 13
    assert lipmaa(121) == 40


def test_create_decode_round_trip() -> None:
    entry = create_entry(K, 1, None, None, b"hello")
    again = decode_entry(entry.header)
    assert again == entry
    verify_signature(again)
    assert len(entry.header) <= 256


def test_every_prefix_of_a_header_is_rejected() -> None:
    entry = make_chain(K, 3)[2][0]
    for cut in range(len(entry.header)):
        with pytest.raises((errors.MalformedEntry, errors.NonCanonicalEncoding)):
            decode_entry(entry.header[:cut])


def test_trailing_bytes_rejected() -> None:
    entry = create_entry(K, 1, None, None, b"x")
    with pytest.raises(errors.MalformedEntry, match="trailing"):
        decode_entry(entry.header + b"\x00")


@pytest.mark.parametrize("region", ["author", "signature", "payload_hash"])
def test_bit_flips_break_the_signature(region: str) -> None:
    entry = create_entry(K, 1, None, None, b"payload")
    offsets = {
        "author": 4,
        "payload_hash": 4 + 32 + 1 + 2 + 2 + 2,
        "signature": len(entry.header) - 10,
    }
    for bit in range(8):
        raw = bytearray(entry.header)
        raw[offsets[region] + bit] ^= 1 << bit
        with pytest.raises(errors.EntryRejected) as info:
            verify_signature(decode_entry(bytes(raw)))
        assert isinstance(info.value, errors.BadSignature | errors.MalformedEntry)


def test_signature_by_another_key_is_bad() -> None:
    fields = fields_for(K, 1, None, None, b"x")
    header = codec.encode([*fields, key(2).sign(codec.encode(fields)).signature])
    with pytest.raises(errors.BadSignature):
        verify_signature(decode_entry(header))


def test_small_order_author_key_is_rejected() -> None:
    small_order = bytes(32)  # the identity point's encoding is all zero but for one bit
    identity_point = (1).to_bytes(32, "little")
    for author in (small_order, identity_point):
        fields = [1, author, 1, None, None, bytes(32), 0]
        header = codec.encode([*fields, bytes(64)])
        with pytest.raises(errors.BadSignature):
            verify_signature(decode_entry(header))


def test_unknown_version() -> None:
    fields = fields_for(K, 1, None, None, b"x")
    fields[0] = 2
    with pytest.raises(errors.UnknownFormatVersion, match="version 2"):
        decode_entry(sign_fields(K, fields))


@pytest.mark.parametrize(
    ("index", "value", "match"),
    [
        (1, b"short", "author"),
        (2, 0, "sequence"),
        (2, -1, "sequence"),
        (2, 2**63, "sequence"),
        (3, bytes(32), "first entry"),
        (5, b"x", "payload hash"),
        (6, MAX_PAYLOAD_SIZE + 1, "payload size"),
        (6, "7", "payload size"),
    ],
)
def test_malformed_fields(index: int, value: object, match: str) -> None:
    fields = fields_for(K, 1, None, None, b"x")
    fields[index] = value
    with pytest.raises(errors.MalformedEntry, match=match):
        decode_entry(sign_fields(K, fields))


def test_later_entry_needs_links() -> None:
    fields = fields_for(K, 2, None, None, b"x")
    with pytest.raises(errors.MalformedEntry, match="backlink"):
        decode_entry(sign_fields(K, fields))


def test_non_canonical_encodings_rejected() -> None:
    entry = create_entry(K, 1, None, None, b"x")
    # The sequence number 1 written as a two-byte integer (0x18 0x01).
    wide = entry.header.replace(b"\x01\xf6\xf6", b"\x18\x01\xf6\xf6", 1)
    with pytest.raises(errors.NonCanonicalEncoding):
        decode_entry(wide)
    indefinite = b"\x9f" + entry.header[1:] + b"\xff"
    with pytest.raises(errors.MalformedEntry, match="indefinite"):
        decode_entry(indefinite)
    tagged = b"\xc0" + entry.header
    with pytest.raises(errors.MalformedEntry):
        decode_entry(tagged)


def test_oversized_header() -> None:
    with pytest.raises(errors.EntryTooLarge):
        decode_entry(b"\x88" + bytes(400))


def test_oversized_payload_refused_on_create() -> None:
    with pytest.raises(errors.EntryTooLarge):
        create_entry(K, 1, None, None, bytes(MAX_PAYLOAD_SIZE + 1))


def test_payload_checks() -> None:
    entry = create_entry(K, 1, None, None, b"abc")
    validate.check_payload(entry, b"abc")
    with pytest.raises(errors.PayloadSizeMismatch):
        validate.check_payload(entry, b"abcd")
    with pytest.raises(errors.PayloadHashMismatch):
        validate.check_payload(entry, b"abd")
    with pytest.raises(errors.EntryTooLarge):
        validate.check_payload(entry, bytes(MAX_PAYLOAD_SIZE + 1))


def test_chain_rules() -> None:
    chain = make_chain(K, 5)
    tips = [Tip(e.seq, e.id) for e, _ in chain]
    e4 = chain[3][0]
    validate.check_successor(e4, tips[2], chain[lipmaa(4) - 1][0].id)
    with pytest.raises(errors.SequenceGap, match="next expected is 3"):
        validate.check_successor(e4, tips[1], None)
    with pytest.raises(errors.SequenceRepeat):
        validate.check_successor(e4, tips[4], None)
    with pytest.raises(errors.BacklinkMismatch):
        validate.check_successor(e4, Tip(3, bytes(32)), chain[0][0].id)
    with pytest.raises(errors.LipmaaMismatch):
        validate.check_successor(e4, tips[2], bytes(32))
    with pytest.raises(errors.SequenceGap):
        validate.check_successor(chain[1][0], None, None)


def test_wrong_author_and_fork() -> None:
    entry = create_entry(K, 1, None, None, b"a")
    other = create_entry(K, 1, None, None, b"b")
    with pytest.raises(errors.WrongAuthor):
        validate.check_author(entry, bytes(key(2).verify_key))
    with pytest.raises(errors.SequenceRepeat):
        validate.check_same_entry(entry, entry)
    with pytest.raises(errors.ForkDetected):
        validate.check_same_entry(other, entry)


def test_every_rule_has_a_distinct_name() -> None:
    names = [rule.rule for rule in errors.ALL_RULES]
    assert len(names) == len(set(names))


@settings(max_examples=60, deadline=None)
@given(
    payload=st.binary(max_size=2000),
    seq=st.integers(min_value=2, max_value=2**62),
    back=st.binary(min_size=32, max_size=32),
    lip=st.binary(min_size=32, max_size=32),
)
def test_round_trip_property(payload: bytes, seq: int, back: bytes, lip: bytes) -> None:
    entry = create_entry(K, seq, back, lip, payload)
    decoded = decode_entry(entry.header)
    assert decoded == entry
    verify_signature(decoded)
    validate.check_payload(decoded, payload)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300))
def test_garbage_never_escapes_as_another_exception(data: bytes) -> None:
    with contextlib.suppress(errors.EntryRejected):
        verify_signature(decode_entry(data))


@settings(max_examples=400, deadline=None)
@given(
    seq=st.integers(min_value=1, max_value=2**62),
    size=st.integers(min_value=0, max_value=MAX_PAYLOAD_SIZE),
    flips=st.lists(st.tuples(st.integers(0, 300), st.integers(0, 7)), max_size=3),
    cut=st.integers(0, 8),
)
def test_fast_and_generic_header_decoders_agree(
    seq: int, size: int, flips: list[tuple[int, int]], cut: int
) -> None:
    from p2pcrew.feed.entry import _decode_canonical_v1, _decode_generic

    back = None if seq == 1 else bytes(range(32))
    fields = [1, bytes(K.verify_key), seq, back, back, bytes(32), size]
    raw = bytearray(sign_fields(K, fields))
    for offset, bit in flips:
        if offset < len(raw):
            raw[offset] ^= 1 << bit
    data = bytes(raw[: len(raw) - cut] if cut else raw)
    fast = _decode_canonical_v1(data)
    try:
        generic: object = _decode_generic(data)
    except errors.EntryRejected as exc:
        generic = exc
    if fast is not None:
        assert fast == generic  # the fast path only accepts what the generic one does
    if not flips and not cut:
        assert fast is not None  # and takes every well-formed header
