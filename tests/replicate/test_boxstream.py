"""Box-stream encoder/decoder: reference vectors, chunking, errors, misuse."""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from nacl.bindings import crypto_secretbox_easy

from p2pcrew.replicate.boxstream import (
    HEADER_SIZE,
    MAX_BODY_SIZE,
    BoxStreamDecoder,
    BoxStreamEncoder,
    BoxStreamEvent,
    BoxStreamKeys,
    DataReceived,
    DecoderState,
    EncoderState,
    GoodbyeReceived,
)
from p2pcrew.replicate.transport_errors import (
    LocalProtocolError,
    StreamCorrupted,
    StreamTruncated,
    TransportError,
)

VECTORS = json.loads(
    (Path(__file__).resolve().parent.parent / "vectors" / "box-stream.generated.json").read_text()
)
ENCRYPT: list[dict[str, Any]] = VECTORS["encrypt"]
DECRYPT_ERRORS: list[dict[str, Any]] = VECTORS["decrypt_errors"]
KEY = bytes.fromhex(ENCRYPT[0]["key"])
NONCE = bytes.fromhex(ENCRYPT[0]["nonce"])
h = bytes.fromhex


def _names(vectors: list[dict[str, Any]]) -> list[str]:
    return [v["name"] for v in vectors]


def _data(events: list[BoxStreamEvent]) -> bytes:
    return b"".join(e.data for e in events if isinstance(e, DataReceived))


def _decode_in_chunks(decoder: BoxStreamDecoder, stream: bytes, cuts: list[int]) -> list[Any]:
    events: list[Any] = []
    bounds = [0, *sorted(c % (len(stream) + 1) for c in cuts), len(stream)]
    for start, end in itertools.pairwise(bounds):
        if end > start:
            events += decoder.receive_data(stream[start:end])
    return events


def test_vector_file_is_complete() -> None:
    assert len(ENCRYPT) == 10
    assert len(DECRYPT_ERRORS) == 6


@pytest.mark.parametrize("vector", ENCRYPT, ids=_names(ENCRYPT))
def test_encrypt_vector(vector: dict[str, Any]) -> None:
    encoder = BoxStreamEncoder(h(vector["key"]), h(vector["nonce"]))
    for message in vector["messages"]:
        encoder.send_data(h(message))
    packets = encoder.data_to_send()
    encoder.send_goodbye()
    goodbye = encoder.data_to_send()
    expected_packets = b"".join(h(p["header"]) + h(p["body"]) for p in vector["packets"])
    assert packets == expected_packets
    assert goodbye == h(vector["goodbye"])
    assert packets + goodbye == h(vector["stream"])
    assert encoder.state is EncoderState.CLOSED


@pytest.mark.parametrize("vector", ENCRYPT, ids=_names(ENCRYPT))
def test_decrypt_vector(vector: dict[str, Any]) -> None:
    decoder = BoxStreamDecoder(h(vector["key"]), h(vector["nonce"]))
    events = decoder.receive_data(h(vector["stream"]))
    assert _data(events) == b"".join(h(m) for m in vector["messages"])
    assert events[-1] == GoodbyeReceived()
    assert [e for e in events if e == DataReceived(b"")] == []
    bodies = [e.data for e in events if isinstance(e, DataReceived)]
    assert [len(b) for b in bodies] == [len(h(p["body"])) for p in vector["packets"]]
    assert decoder.receive_data(b"") == []  # EOF after the goodbye is the clean end
    assert decoder.state is DecoderState.CLOSED


@pytest.mark.parametrize("vector", DECRYPT_ERRORS, ids=_names(DECRYPT_ERRORS))
def test_decrypt_error_vector_byte_by_byte(vector: dict[str, Any]) -> None:
    """Everything before the bad packet is delivered, then the specific error."""
    decoder = BoxStreamDecoder(h(vector["key"]), h(vector["nonce"]))
    expected = StreamTruncated if vector["error"].startswith("stream ended") else StreamCorrupted
    received = bytearray()
    with pytest.raises(expected):
        for byte in h(vector["stream"]):
            received += _data(decoder.receive_data(bytes([byte])))
        decoder.receive_data(b"")
    assert bytes(received) == h(vector["plaintext_before_error"])
    assert decoder.state is DecoderState.ERROR


@pytest.mark.parametrize("vector", DECRYPT_ERRORS, ids=_names(DECRYPT_ERRORS))
def test_decrypt_error_vector_in_one_piece(vector: dict[str, Any]) -> None:
    decoder = BoxStreamDecoder(h(vector["key"]), h(vector["nonce"]))
    with pytest.raises((StreamTruncated, StreamCorrupted)):
        decoder.receive_data(h(vector["stream"]))
        decoder.receive_data(b"")
    with pytest.raises(LocalProtocolError):
        decoder.receive_data(b"more")


def test_truncation_is_an_eof_error_and_not_a_goodbye() -> None:
    decoder = BoxStreamDecoder(KEY, NONCE)
    with pytest.raises(EOFError, match="before the peer's goodbye"):
        decoder.receive_data(b"")


@pytest.mark.parametrize("cut", [1, HEADER_SIZE - 1, HEADER_SIZE, HEADER_SIZE + 5])
def test_eof_inside_a_packet_is_truncation(cut: int) -> None:
    encoder = BoxStreamEncoder(KEY, NONCE)
    encoder.send_data(b"x" * 10)
    decoder = BoxStreamDecoder(KEY, NONCE)
    assert decoder.receive_data(encoder.data_to_send()[:cut]) == []
    with pytest.raises(StreamTruncated):
        decoder.receive_data(b"")


@given(cuts=st.lists(st.integers(min_value=0, max_value=30_000), max_size=40))
@settings(max_examples=60, deadline=None)
def test_any_chunking_of_a_vector_decodes_the_same(cuts: list[int]) -> None:
    vector = next(v for v in ENCRYPT if v["name"].startswith("10000 bytes"))
    decoder = BoxStreamDecoder(h(vector["key"]), h(vector["nonce"]))
    events = _decode_in_chunks(decoder, h(vector["stream"]), cuts)
    assert _data(events) == h(vector["messages"][0])
    assert events[-1] == GoodbyeReceived()


@given(
    messages=st.lists(st.binary(max_size=9000), max_size=6),
    cuts=st.lists(st.integers(min_value=0, max_value=60_000), max_size=30),
)
@settings(max_examples=60, deadline=None)
def test_round_trip_with_random_chunking(messages: list[bytes], cuts: list[int]) -> None:
    encoder = BoxStreamEncoder(KEY, NONCE)
    for message in messages:
        encoder.send_data(message)
    encoder.send_goodbye()
    stream = encoder.data_to_send()
    decoder = BoxStreamDecoder(KEY, NONCE)
    events = _decode_in_chunks(decoder, stream, cuts)
    assert _data(events) == b"".join(messages)
    assert all(0 < len(e.data) <= MAX_BODY_SIZE for e in events if isinstance(e, DataReceived))
    assert events[-1] == GoodbyeReceived()
    assert decoder.receive_data(b"") == []


@given(cuts=st.lists(st.integers(min_value=0, max_value=30_000), max_size=20))
@settings(max_examples=30, deadline=None)
def test_decoder_never_buffers_more_than_one_body(cuts: list[int]) -> None:
    encoder = BoxStreamEncoder(KEY, NONCE)
    encoder.send_data(bytes(20_000))
    stream = encoder.data_to_send()
    decoder = BoxStreamDecoder(KEY, NONCE)
    bounds = [0, *sorted(c % len(stream) for c in cuts), len(stream)]
    for start, end in itertools.pairwise(bounds):
        if end > start:  # an empty chunk would mean EOF
            decoder.receive_data(stream[start:end])
        # White-box check of the bound the module promises.
        assert len(decoder._buffer) <= MAX_BODY_SIZE


def test_empty_write_sends_nothing() -> None:
    encoder = BoxStreamEncoder(KEY, NONCE)
    encoder.send_data(b"")
    assert encoder.data_to_send() == b""


def test_long_write_is_split_into_4096_byte_bodies() -> None:
    encoder = BoxStreamEncoder(KEY, NONCE)
    encoder.send_data(bytes(3 * MAX_BODY_SIZE + 1))
    assert len(encoder.data_to_send()) == 4 * HEADER_SIZE + 3 * MAX_BODY_SIZE + 1


def test_writing_after_goodbye_is_local_misuse() -> None:
    encoder = BoxStreamEncoder(KEY, NONCE)
    encoder.send_goodbye()
    with pytest.raises(LocalProtocolError, match="goodbye was already sent"):
        encoder.send_data(b"late")
    with pytest.raises(LocalProtocolError):
        encoder.send_goodbye()


def test_data_after_goodbye_is_corruption() -> None:
    encoder = BoxStreamEncoder(KEY, NONCE)
    encoder.send_goodbye()
    decoder = BoxStreamDecoder(KEY, NONCE)
    with pytest.raises(StreamCorrupted, match=r"after|closed"):
        decoder.receive_data(encoder.data_to_send() + b"\x00")


@pytest.mark.parametrize("length", [0, MAX_BODY_SIZE + 1, 0xFFFF])
def test_header_with_out_of_range_length_is_corruption(length: int) -> None:
    header = crypto_secretbox_easy(length.to_bytes(2, "big") + b"\x01" * 16, NONCE, KEY)
    decoder = BoxStreamDecoder(KEY, NONCE)
    with pytest.raises(StreamCorrupted, match=r"1\.\.4096"):
        decoder.receive_data(header)


def test_goodbye_from_another_key_is_corruption_not_a_clean_end() -> None:
    other = BoxStreamEncoder(bytes(32), NONCE)
    other.send_goodbye()
    decoder = BoxStreamDecoder(KEY, NONCE)
    with pytest.raises(StreamCorrupted):
        decoder.receive_data(other.data_to_send())


def test_replayed_packet_is_corruption() -> None:
    encoder = BoxStreamEncoder(KEY, NONCE)
    encoder.send_data(b"once")
    packet = encoder.data_to_send()
    decoder = BoxStreamDecoder(KEY, NONCE)
    assert _data(decoder.receive_data(packet)) == b"once"
    with pytest.raises(StreamCorrupted):
        decoder.receive_data(packet)


@pytest.mark.parametrize("flip_at", [0, 17, HEADER_SIZE - 1, HEADER_SIZE, HEADER_SIZE + 3])
def test_every_bit_flip_is_caught(flip_at: int) -> None:
    encoder = BoxStreamEncoder(KEY, NONCE)
    encoder.send_data(b"four")
    packet = bytearray(encoder.data_to_send())
    for bit in range(8):
        damaged = bytearray(packet)
        damaged[flip_at] ^= 1 << bit
        with pytest.raises(StreamCorrupted):
            BoxStreamDecoder(KEY, NONCE).receive_data(bytes(damaged))


def test_errors_belong_to_the_transport_hierarchy() -> None:
    assert issubclass(StreamTruncated, TransportError)
    assert issubclass(StreamCorrupted, TransportError)
    assert not issubclass(LocalProtocolError, TransportError)


@pytest.mark.parametrize(("key", "nonce"), [(bytes(31), NONCE), (KEY, bytes(23))])
def test_wrong_key_or_nonce_size_is_rejected(key: bytes, nonce: bytes) -> None:
    with pytest.raises(ValueError, match="32-byte key"):
        BoxStreamEncoder(key, nonce)
    with pytest.raises(ValueError, match="32-byte key"):
        BoxStreamDecoder(key, nonce)


def test_keys_never_appear_in_repr() -> None:
    keys = BoxStreamKeys(KEY, NONCE, KEY, NONCE)
    assert KEY.hex() not in repr(keys)
    assert len(keys.to_bytes()) == 112
    assert "BoxStreamEncoder OPEN" in repr(BoxStreamEncoder(KEY, NONCE))
