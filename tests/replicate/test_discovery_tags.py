"""LAN announcement tags: derivation, unlinkability, skew, strict TXT parsing, group keys."""

from __future__ import annotations

import base64
import contextlib
import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from p2pcrew.feed.identity import Identity
from p2pcrew.replicate import discovery_record as dr
from p2pcrew.replicate import discovery_tags as dt
from p2pcrew.replicate.discovery_record import (
    Announcement,
    BadAnnouncement,
    UnsupportedVersion,
)
from p2pcrew.replicate.discovery_tags import BadSecret, Contact, Secret

ANA, BEN, CLEO = Identity.generate(), Identity.generate(), Identity.generate()
WINDOW = dt.window_of(1_760_000_000)
NONCE = bytes(range(16))
CREW_KEY = b"k" * 32


def pair(me: Identity, other: Identity) -> Secret:
    return Secret(dt.pair_secret(me, other.public_key), other.public_key, "contact")


def group(crew_key: bytes = CREW_KEY) -> Secret:
    return Secret(dt.group_secret(crew_key), None, "crew")


def txt(*strings: bytes) -> bytes:
    return b"".join(bytes((len(s),)) + s for s in strings)


def b64(data: bytes) -> bytes:
    return base64.urlsafe_b64encode(data).rstrip(b"=")


# ---- derivation ---------------------------------------------------------------------


def test_pairwise_secret_is_the_same_from_both_ends() -> None:
    assert dt.pair_secret(ANA, BEN.public_key) == dt.pair_secret(BEN, ANA.public_key)
    assert dt.pair_secret(ANA, BEN.public_key) != dt.pair_secret(ANA, CLEO.public_key)
    assert len(dt.pair_secret(ANA, BEN.public_key)) == 32


def test_pairwise_secret_refuses_unusable_keys() -> None:
    with pytest.raises(BadSecret):
        dt.pair_secret(ANA, b"\x00" * 32)  # low order: an all-zero shared secret
    with pytest.raises(BadSecret):
        dt.pair_secret(ANA, b"\x01" * 31)
    with pytest.raises(BadSecret):
        dt.group_secret(b"short")


def test_secrets_never_print() -> None:
    secret = pair(ANA, BEN)
    assert secret.value.hex() not in repr(secret)


def test_window_rotates_every_ten_minutes() -> None:
    assert dt.window_of(0) == 0
    assert dt.window_of(599.9) == 0
    assert dt.window_of(600) == 1
    assert dt.window_of(1_760_000_000) == 1_760_000_000 // 600


def test_ana_recognises_ben_and_ben_recognises_ana() -> None:
    ben_says = dt.build_announcement(BEN.public_key, [pair(BEN, ANA)], WINDOW)
    ana_says = dt.build_announcement(ANA.public_key, [pair(ANA, BEN)], WINDOW)
    assert [m.peer for m in dt.match(ben_says, [pair(ANA, BEN)], ANA.public_key, WINDOW)] == [
        BEN.public_key
    ]
    assert [m.peer for m in dt.match(ana_says, [pair(BEN, ANA)], BEN.public_key, WINDOW)] == [
        ANA.public_key
    ]


def test_a_stranger_recognises_nobody() -> None:
    ben_says = dt.build_announcement(BEN.public_key, [pair(BEN, ANA)], WINDOW)
    cleo_knows = [pair(CLEO, ANA), pair(CLEO, BEN)]
    assert dt.match(ben_says, cleo_knows, CLEO.public_key, WINDOW) == []


def test_tags_are_unlinkable_across_nonces_and_windows() -> None:
    secret = pair(ANA, BEN).value
    tags = {
        dt.tag(secret, w, n)
        for w in range(WINDOW, WINDOW + 5)
        for n in (NONCE, bytes(16), b"\xff" * 16)
    }
    assert len(tags) == 15
    first = dt.build_announcement(ANA.public_key, [pair(ANA, BEN), pair(ANA, CLEO)], WINDOW)
    second = dt.build_announcement(ANA.public_key, [pair(ANA, BEN), pair(ANA, CLEO)], WINDOW)
    assert first.nonce != second.nonce
    assert not set(first.tags) & set(second.tags)


def test_announcement_holds_no_key_and_pads_the_contact_count() -> None:
    few = dt.build_announcement(ANA.public_key, [pair(ANA, BEN)], WINDOW)
    more = dt.build_announcement(ANA.public_key, [pair(ANA, BEN), pair(ANA, CLEO)], WINDOW)
    assert len(few.tags) == len(more.tags) == 8
    raw = dr.encode_txt(more)
    for key in (ANA.public_key, BEN.public_key, CLEO.public_key):
        for form in (key, key.hex().encode(), b64(key), base64.b64encode(key)):
            assert form not in raw


@pytest.mark.parametrize("skew", [-1, 0, 1])
def test_clock_skew_of_one_window_is_tolerated(skew: int) -> None:
    ben_says = dt.build_announcement(BEN.public_key, [pair(BEN, ANA)], WINDOW)
    (found,) = dt.match(ben_says, [pair(ANA, BEN)], ANA.public_key, WINDOW + skew)
    assert found.peer == BEN.public_key
    assert found.window == WINDOW


@pytest.mark.parametrize("skew", [-2, 2, 10])
def test_clock_skew_beyond_one_window_is_not(skew: int) -> None:
    ben_says = dt.build_announcement(BEN.public_key, [pair(BEN, ANA)], WINDOW)
    assert dt.match(ben_says, [pair(ANA, BEN)], ANA.public_key, WINDOW + skew) == []


def test_own_announcement_never_matches_me() -> None:
    mine = dt.build_announcement(ANA.public_key, [group()], WINDOW)
    assert dt.match(mine, [group()], ANA.public_key, WINDOW) == []


# ---- groups ------------------------------------------------------------------------


def test_group_member_learns_who_announced() -> None:
    ben_says = dt.build_announcement(BEN.public_key, [group()], WINDOW)
    assert len(ben_says.groups) == 2  # one real, one decoy
    (found,) = dt.match(ben_says, [group()], ANA.public_key, WINDOW + 1)
    assert (found.peer, found.label) == (BEN.public_key, "crew")


def test_sealed_key_round_trip_and_non_member() -> None:
    secret = dt.group_secret(CREW_KEY)
    sealed = dt.seal_key(secret, WINDOW, NONCE, BEN.public_key)
    assert len(sealed) == dr.SEALED_BYTES
    assert dt.open_key(secret, WINDOW, NONCE, sealed) == BEN.public_key
    outsider = dt.group_secret(b"o" * 32)
    assert dt.open_key(outsider, WINDOW, NONCE, sealed) is None
    assert dt.open_key(secret, WINDOW + 1, NONCE, sealed) is None  # bound to the window
    assert dt.open_key(secret, WINDOW, bytes(16), sealed) is None  # and to the nonce
    tampered = sealed[:-1] + bytes([sealed[-1] ^ 1])
    assert dt.open_key(secret, WINDOW, NONCE, tampered) is None


def test_non_member_cannot_recognise_a_group_announcement() -> None:
    ben_says = dt.build_announcement(BEN.public_key, [group()], WINDOW)
    assert dt.match(ben_says, [group(b"o" * 32)], CLEO.public_key, WINDOW) == []


def test_group_secret_is_not_the_crew_key() -> None:
    assert dt.group_secret(CREW_KEY) != CREW_KEY
    assert dt.group_secret(CREW_KEY) != dt.group_secret(b"j" * 32)


# ---- bounds and ranking ----------------------------------------------------------------


def test_too_many_contacts_announce_the_most_recently_active() -> None:
    people = [Identity.generate() for _ in range(dr.MAX_PAIR_TAGS + 5)]
    contacts = [Contact(p.public_key, activity_ms=i) for i, p in enumerate(people)]
    ranked = dt.rank_contacts(contacts)
    assert ranked[0] == people[-1].public_key
    owned = [Secret(dt.pair_secret(ANA, f), f, "contact") for f in ranked]
    ann = dt.build_announcement(ANA.public_key, [*owned, group()], WINDOW)
    assert len(ann.tags) == dr.MAX_PAIR_TAGS
    recognised = {m.peer for m in dt.match(ann, owned, ANA.public_key, WINDOW)}
    assert recognised == set(ranked[: dr.MAX_PAIR_TAGS])


def test_largest_record_fits_one_mdns_packet() -> None:
    owned = [Secret(bytes([i]) * 32, bytes([i]) * 32, "c") for i in range(60)]
    owned += [Secret(bytes([i]) * 32, None, "g") for i in range(9)]
    ann = dt.build_announcement(ANA.public_key, owned, WINDOW)
    raw = dr.encode_txt(ann)
    assert (len(ann.tags), len(ann.groups)) == (dr.MAX_PAIR_TAGS, dr.MAX_GROUP_TAGS)
    assert len(raw) <= dr.MAX_TXT_BYTES <= 1300
    assert dr.decode_txt(raw) == ann


@given(
    tags=st.lists(st.binary(min_size=8, max_size=8), max_size=dr.MAX_PAIR_TAGS),
    groups=st.lists(
        st.tuples(st.binary(min_size=8, max_size=8), st.binary(min_size=48, max_size=48)),
        max_size=dr.MAX_GROUP_TAGS,
    ),
    nonce=st.binary(min_size=16, max_size=16),
)
def test_txt_round_trip(tags: list[bytes], groups: list[tuple[bytes, bytes]], nonce: bytes) -> None:
    ann = Announcement(nonce, tuple(tags), tuple(groups))
    assert dr.decode_txt(dr.encode_txt(ann)) == ann


# ---- strict parsing -----------------------------------------------------------------------

GOOD_NONCE = b"n=" + b64(NONCE)
GOOD_TAGS = b"t0=" + b64(b"12345678" * 2)


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param(b"", id="empty"),
        pytest.param(txt(GOOD_NONCE, GOOD_TAGS), id="no-version"),
        pytest.param(txt(b"v=1", GOOD_TAGS), id="no-nonce"),
        pytest.param(txt(b"v=1", b"n=" + b64(b"short"), GOOD_TAGS), id="short-nonce"),
        pytest.param(txt(b"v=1", GOOD_NONCE + b"=", GOOD_TAGS), id="padded-nonce"),
        pytest.param(txt(b"v=1", b"n=" + base64.b64encode(b"\xff" * 16)), id="not-url-alphabet"),
        pytest.param(txt(b"v=1", GOOD_NONCE, b"t0=" + b64(b"1234567")), id="partial-tag"),
        pytest.param(txt(b"v=1", GOOD_NONCE, b"t0="), id="empty-value"),
        pytest.param(txt(b"v=1", GOOD_NONCE, b"t0"), id="no-equals"),
        pytest.param(txt(b"v=1", GOOD_NONCE, b"t1=" + b64(b"12345678")), id="gap-in-tags"),
        pytest.param(txt(b"v=1", GOOD_NONCE, GOOD_TAGS, GOOD_TAGS), id="duplicate-key"),
        pytest.param(txt(b"v=1", GOOD_NONCE, b"pk=" + b64(ANA.public_key)), id="unknown-key"),
        pytest.param(txt(b"v=1", GOOD_NONCE, b"g0=" + b64(b"x" * 55)), id="short-group"),
        pytest.param(txt(b"v=1", GOOD_NONCE) + b"\x09t0=", id="truncated"),
        pytest.param(
            txt(b"v=1", GOOD_NONCE, b"t0=" + b64(b"12345678" * (dr.TAGS_PER_STRING + 1))),
            id="long-tag-string",
        ),
        pytest.param(
            txt(b"v=1", GOOD_NONCE, *(b"g%d=" % i + b64(b"x" * 56) for i in range(5))),
            id="too-many-groups",
        ),
        pytest.param(
            txt(
                b"v=1",
                GOOD_NONCE,
                *(b"t%d=" % i + b64(b"12345678" * dr.TAGS_PER_STRING) for i in range(4)),
            ),
            id="too-many-tags",
        ),
        pytest.param(
            txt(b"v=1", GOOD_NONCE, *(b"x" * 200 for _ in range(6))),
            id="oversized",
        ),
    ],
)
def test_malformed_records_are_rejected(raw: bytes) -> None:
    with pytest.raises(BadAnnouncement):
        dr.decode_txt(raw)


def test_other_versions_are_skipped_distinctly() -> None:
    with pytest.raises(UnsupportedVersion):
        dr.decode_txt(txt(b"v=2", GOOD_NONCE))


def test_well_formed_minimal_record() -> None:
    ann = dr.decode_txt(txt(b"v=1", GOOD_NONCE, GOOD_TAGS))
    assert ann == Announcement(NONCE, (b"12345678", b"12345678"), ())


@given(st.binary(max_size=1500))
def test_decoding_garbage_raises_only_bad_announcement(raw: bytes) -> None:
    with contextlib.suppress(BadAnnouncement):
        dr.decode_txt(raw)


@given(st.data())
def test_single_byte_corruptions_never_crash(data: st.DataObject) -> None:
    ann = dt.build_announcement(ANA.public_key, [pair(ANA, BEN), group()], WINDOW)
    raw = bytearray(dr.encode_txt(ann))
    i = data.draw(st.integers(0, len(raw) - 1))
    raw[i] = data.draw(st.integers(0, 255))
    with contextlib.suppress(BadAnnouncement):
        dr.decode_txt(bytes(raw))


# ---- addresses ---------------------------------------------------------------------------


def test_addresses_on_my_subnet_come_first_and_junk_is_dropped() -> None:
    remote = ["192.168.9.4", "10.231.0.2", "127.0.0.1", "224.0.0.251", "0.0.0.0", "nonsense"]
    remote += ["fe80::1", "10.231.0.2", "169.254.7.7", "240.0.0.1"]
    assert dr.order_addresses(remote, ["10.231.0.1/24"]) == [
        "10.231.0.2",
        "192.168.9.4",
        "169.254.7.7",
    ]
    assert dr.order_addresses(["10.0.0.9"], []) == ["10.0.0.9"]


def test_a_forged_record_cannot_send_us_to_the_internet() -> None:
    assert dr.order_addresses(["8.8.8.8", "93.184.216.34"], ["10.231.0.1/24"]) == []
    # ... unless that public address is on our own network (a LAN with public addresses)
    assert dr.order_addresses(["93.184.216.34"], ["93.184.216.1/24"]) == ["93.184.216.34"]


def test_constants_are_consistent() -> None:
    assert dr.SEALED_BYTES == 48 and dr.GROUP_ENTRY_BYTES == 56
    assert all(a < b for a, b in itertools.pairwise(dr.PAIR_BUCKETS))
