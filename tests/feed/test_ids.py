"""Tests for p2pcrew.feed.ids: textual feed/entry ids."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from p2pcrew.feed.ids import (
    ENTRY_PREFIX,
    FEED_PREFIX,
    InvalidId,
    entry_id_to_text,
    feed_id_to_text,
    short,
    text_to_entry_id,
    text_to_feed_id,
)

keys = st.binary(min_size=32, max_size=32)
# Word characters only: a double click selects the whole id.
SELECTABLE = re.compile(r"^\w+$", re.ASCII)


@given(keys)
def test_feed_id_round_trip(pk: bytes) -> None:
    text = feed_id_to_text(pk)
    assert text.startswith(FEED_PREFIX)
    assert len(text) == len(FEED_PREFIX) + 52
    assert SELECTABLE.match(text)
    assert text == text.lower()
    assert text_to_feed_id(text) == pk


@given(keys)
def test_entry_id_round_trip(h: bytes) -> None:
    text = entry_id_to_text(h)
    assert text.startswith(ENTRY_PREFIX)
    assert len(text) == len(ENTRY_PREFIX) + 52
    assert SELECTABLE.match(text)
    assert text_to_entry_id(text) == h


@given(keys, st.sampled_from([" ", "\n", "\t", " \r\n "]), st.booleans())
def test_whitespace_and_case_are_ignored(pk: bytes, ws: str, upper: bool) -> None:
    text = feed_id_to_text(pk)
    mangled = ws + (text.upper() if upper else text.swapcase()) + ws
    assert text_to_feed_id(mangled) == pk
    etext = entry_id_to_text(pk)
    assert text_to_entry_id(ws + etext.upper() + ws) == pk


def test_known_vector() -> None:
    assert feed_id_to_text(bytes(32)) == "feed_" + "a" * 52
    assert entry_id_to_text(b"\xff" * 32) == "entry_" + "7" * 51 + "q"


def test_entry_id_given_where_feed_expected() -> None:
    with pytest.raises(
        InvalidId, match="expected a feed id starting with 'feed_', got an entry id"
    ):
        text_to_feed_id(entry_id_to_text(bytes(32)))


def test_feed_id_given_where_entry_expected() -> None:
    with pytest.raises(InvalidId, match=r"expected an entry id .* got a feed id"):
        text_to_entry_id(feed_id_to_text(bytes(32)))


@pytest.mark.parametrize("text", ["", "   ", "abc", "@abcd.ed25519", "feed-" + "a" * 52])
def test_missing_prefix(text: str) -> None:
    with pytest.raises(InvalidId, match="starting with 'feed_'"):
        text_to_feed_id(text)


def test_invalid_id_is_value_error() -> None:
    with pytest.raises(ValueError):
        text_to_feed_id("nope")


@pytest.mark.parametrize(
    ("bad", "hint"),
    [
        ("0", "did you mean 'o'"),
        ("1", "did you mean 'l'"),
        ("8", "did you mean 'b'"),
        ("=", "a-z"),
        ("-", "a-z"),
        ("é", "a-z"),
        (" ", "split across lines"),
    ],
)
def test_bad_characters(bad: str, hint: str) -> None:
    body = list("a" * 52)
    body[10] = bad
    with pytest.raises(InvalidId, match="invalid character") as info:
        text_to_feed_id("feed_" + "".join(body))
    assert hint in str(info.value)
    assert "position 15" in str(info.value)


@pytest.mark.parametrize("n", [0, 1, 51, 53, 56])
def test_wrong_length(n: int) -> None:
    with pytest.raises(InvalidId, match="expected 52 characters"):
        text_to_feed_id("feed_" + "a" * n)
    with pytest.raises(InvalidId, match="expected 52 characters"):
        text_to_entry_id("entry_" + "a" * n)


def test_padding_rejected() -> None:
    with pytest.raises(InvalidId, match="invalid character '='"):
        text_to_feed_id(feed_id_to_text(bytes(32)) + "====")


def test_non_canonical_trailing_bits_rejected() -> None:
    # 52 chars carry 260 bits; 'b' as last char sets one of the 4 unused bits.
    with pytest.raises(InvalidId, match="canonical"):
        text_to_feed_id("feed_" + "a" * 51 + "b")


def test_non_str_rejected() -> None:
    with pytest.raises(InvalidId, match="as text"):
        text_to_feed_id(b"feed_" + b"a" * 52)  # type: ignore[arg-type]


@pytest.mark.parametrize("n", [0, 31, 33])
def test_encode_wrong_length(n: int) -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        feed_id_to_text(bytes(n))
    with pytest.raises(ValueError, match="32 bytes"):
        entry_id_to_text(bytes(n))


def test_short() -> None:
    pk = bytes(range(32))
    fid = feed_id_to_text(pk)
    eid = entry_id_to_text(pk)
    assert short(fid) == fid[: len("feed_") + 8]
    assert short(eid) == eid[: len("entry_") + 8]
    assert short(" " + fid.upper() + "\n") == short(fid)
    assert SELECTABLE.match(short(fid))


@pytest.mark.parametrize("text", ["", "hello", "feed_abc", "entry_" + "0" * 52])
def test_short_rejects_garbage(text: str) -> None:
    with pytest.raises(InvalidId):
        short(text)


def test_long_garbage_is_truncated_in_message() -> None:
    with pytest.raises(InvalidId) as info:
        text_to_feed_id("x" * 1000)
    assert len(str(info.value)) < 200
