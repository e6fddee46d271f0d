"""docs/protocol.md's byte-level examples must be exactly what the code produces."""

from __future__ import annotations

import base64
import hashlib
import re
import struct
from dataclasses import dataclass
from pathlib import Path

import nacl.bindings
import nacl.signing
import pytest

from p2pcrew.feed import content as c
from p2pcrew.feed.entry import create_entry, decode_entry, lipmaa, verify_signature
from p2pcrew.feed.identity import Identity, feed_key_to_curve25519
from p2pcrew.replicate import discovery_record as lan_record
from p2pcrew.replicate import discovery_skew as lan_skew
from p2pcrew.replicate import discovery_tags as lan

DOC = Path(__file__).resolve().parents[1] / "docs" / "protocol.md"
CHECK = re.compile(r"<!-- check: (?P<name>[\w.]+) -->\s*```\w*\n(?P<body>.*?)```", re.S)


def documented() -> dict[str, str]:
    return {m["name"]: "".join(m["body"].split()) for m in CHECK.finditer(DOC.read_text())}


def generated() -> dict[str, str]:
    key = nacl.signing.SigningKey(bytes(range(32)))
    p1 = c.encode_content(c.Post(text="hello crew", time=1_700_000_000_000))
    e1 = create_entry(key, 1, None, None, p1)
    p2 = c.encode_content(
        c.Request(kind="ask", title="drill", category="tools", time=1_700_000_060_000)
    )
    e2 = create_entry(key, 2, e1.id, e1.id, p2)
    return {
        "author": bytes(key.verify_key).hex(),
        "entry1.payload": p1.hex(),
        "entry1.signing": e1.signing_bytes.hex(),
        "entry1.header": e1.header.hex(),
        "entry1.id": e1.id.hex(),
        "entry2.payload": p2.hex(),
        "entry2.header": e2.header.hex(),
        "entry2.id": e2.id.hex(),
    }


def test_every_documented_example_matches_the_code() -> None:
    doc, code = documented(), generated()
    assert set(doc) >= set(code), f"examples missing from the doc: {set(code) - set(doc)}"
    for name, value in code.items():
        assert doc[name] == value, f"docs/protocol.md example {name} is stale"


def test_documented_headers_verify_on_their_own() -> None:
    doc = documented()
    for name in ("entry1.header", "entry2.header"):
        verify_signature(decode_entry(bytes.fromhex(doc[name])))


def test_documented_lipmaa_values() -> None:
    text = DOC.read_text()
    assert "lipmaa(1..13) = 0, 1, 2, 1, 4, 5, 6, 4, 8, 9, 10, 8, 4" in text
    assert [lipmaa(n) for n in range(1, 14)] == [0, 1, 2, 1, 4, 5, 6, 4, 8, 9, 10, 8, 4]


def test_documented_network_key() -> None:
    from p2pcrew.replicate.shs import P2PCREW_NETWORK_KEY

    assert P2PCREW_NETWORK_KEY.hex() in DOC.read_text()


# --------------------------------------------------------------------------- §9 LAN discovery

LAN_TIME = 1_700_000_000
LAN_NONCE = bytes(range(0xA0, 0xB0))
LAN_CREW_KEY = bytes(range(0x80, 0xA0))


@dataclass(frozen=True)
class LanExample:
    """The fixed inputs of §9.9 and what the real code derives from them."""

    a: Identity
    b: Identity
    window: int
    pair: bytes
    group: bytes
    announcement: lan_record.Announcement

    @classmethod
    def build(cls) -> LanExample:
        a = Identity.from_seed(bytes(range(32)))
        b = Identity.from_seed(bytes(range(32, 64)))
        window = lan.window_of(LAN_TIME)
        pair = lan.pair_secret(a, b.public_key)
        group = lan.group_secret(LAN_CREW_KEY)
        # Fixed decoys in place of random ones (and no shuffle), so the record is reproducible.
        tags = [bytes([0x11 * i]) * 8 for i in range(1, 8)]
        tags.insert(3, lan.tag(pair, window, LAN_NONCE))
        entry = (
            lan.tag(group, window, LAN_NONCE),
            lan.seal_key(group, window, LAN_NONCE, a.public_key),
        )
        groups = ((b"\xee" * lan_record.TAG_BYTES, b"\xee" * lan_record.SEALED_BYTES), entry)
        return cls(
            a, b, window, pair, group, lan_record.Announcement(LAN_NONCE, tuple(tags), groups)
        )


def lan_generated() -> dict[str, str]:
    ex = LanExample.build()
    x_a = ex.a.curve25519_secret()
    u_b = feed_key_to_curve25519(ex.b.public_key)
    box_key = hashlib.blake2b(b"p2pcrew-lan-key", key=ex.group, digest_size=32).digest()
    return {
        "lan.b.author": ex.b.public_key.hex(),
        "lan.a.x25519_secret": x_a.hex(),
        "lan.b.x25519_public": u_b.hex(),
        "lan.pair.x25519": nacl.bindings.crypto_scalarmult(x_a, u_b).hex(),
        "lan.pair.secret": ex.pair.hex(),
        "lan.tag.input": (b"p2pcrew-lan-tag" + struct.pack(">Q", ex.window) + LAN_NONCE).hex(),
        "lan.pair.tag": lan.tag(ex.pair, ex.window, LAN_NONCE).hex(),
        "lan.group.secret": ex.group.hex(),
        "lan.group.tag": lan.tag(ex.group, ex.window, LAN_NONCE).hex(),
        "lan.group.box_key": box_key.hex(),
        "lan.group.box_nonce": (LAN_NONCE + struct.pack(">Q", ex.window)).hex(),
        "lan.group.sealed": ex.announcement.groups[1][1].hex(),
        "lan.txt": lan_record.encode_txt(ex.announcement).hex(),
    }


def test_every_documented_lan_example_matches_the_code() -> None:
    doc, code = documented(), lan_generated()
    assert set(doc) >= set(code), f"examples missing from the doc: {set(code) - set(doc)}"
    for name, value in code.items():
        assert doc[name] == value, f"docs/protocol.md example {name} is stale"


def test_documented_lan_formulas_agree_with_the_code() -> None:
    """The formulas of §9.2-9.4, recomputed by hand from primitives, give the code's bytes."""
    ex = LanExample.build()
    doc = documented()
    seed_hash = bytearray(hashlib.sha512(bytes(range(32))).digest()[:32])
    seed_hash[0] &= 248
    seed_hash[31] &= 127
    seed_hash[31] |= 64
    assert bytes(seed_hash).hex() == doc["lan.a.x25519_secret"]
    # Both ends compute the same pairwise secret: smaller feed id first.
    low, high = sorted((ex.a.public_key, ex.b.public_key))
    shared = bytes.fromhex(doc["lan.pair.x25519"])
    by_hand = hashlib.blake2b(shared + low + high, digest_size=32, person=b"p2pcrew-lan-pair")
    from_b = lan.pair_secret(ex.b, ex.a.public_key)
    assert by_hand.hexdigest() == doc["lan.pair.secret"] == from_b.hex()
    assert ex.window == LAN_TIME // 600 == 2833333
    tag_input = bytes.fromhex(doc["lan.tag.input"])
    assert len(tag_input) == 39
    key = bytes.fromhex(doc["lan.pair.secret"])
    tag = hashlib.blake2b(tag_input, key=key, digest_size=32).digest()[:8]
    assert tag.hex() == doc["lan.pair.tag"]
    group = hashlib.blake2b(b"", key=LAN_CREW_KEY, digest_size=32, person=b"p2pcrew-lan-crew")
    assert group.hexdigest() == doc["lan.group.secret"]
    sealed = nacl.bindings.crypto_secretbox(
        ex.a.public_key,
        bytes.fromhex(doc["lan.group.box_nonce"]),
        bytes.fromhex(doc["lan.group.box_key"]),
    )
    assert sealed.hex() == doc["lan.group.sealed"]


def test_documented_txt_record_decodes_and_is_recognised() -> None:
    ex = LanExample.build()
    raw = bytes.fromhex(documented()["lan.txt"])
    announcement = lan_record.decode_txt(raw)
    assert announcement == ex.announcement
    assert len(raw) == 277 and "The TXT rdata, 277 bytes" in DOC.read_text()
    # B recognises A through their pairwise secret and through the crew, within one window
    # of skew either way, and not beyond.
    by_pair = lan.Secret(ex.pair, ex.a.public_key, "contact")
    by_crew = lan.Secret(ex.group, None, "crew")
    for skew in (-1, 0, 1):
        found = lan.match(announcement, [by_pair, by_crew], ex.b.public_key, ex.window + skew)
        assert [(m.peer, m.label, m.window) for m in found] == [
            (ex.a.public_key, "contact", ex.window),
            (ex.a.public_key, "crew", ex.window),
        ]
    for skew in (-2, 2):
        assert lan.match(announcement, [by_pair, by_crew], ex.b.public_key, ex.window + skew) == []
    # Beyond one window only the wide search of \u00a79.7 finds it: up to 1008 windows away.
    for skew in (-2, 12, -1008):
        found = lan_skew.wide_match(
            announcement, [by_pair, by_crew], ex.b.public_key, ex.window + skew
        )
        assert [m.window for m in found] == [ex.window, ex.window]
    assert (
        lan_skew.wide_match(announcement, [by_pair, by_crew], ex.b.public_key, ex.window + 1009)
        == []
    )
    # A never recognises itself through the crew.
    assert lan.match(announcement, [by_crew], ex.a.public_key, ex.window) == []


def test_documented_lan_constants() -> None:
    text = DOC.read_text()
    assert f"DNS-SD service type `{lan.SERVICE_TYPE}`" in text
    assert lan.WINDOW_SECONDS == 600 and sorted(lan.SKEW_WINDOWS) == [-1, 0, 1]
    assert "the windows `w`, `w \u2212 1`, `w + 1`\nin that order" in text
    assert lan.SKEW_WINDOWS == (0, -1, 1)
    # \u00a79.7's wide search: what it tries, in which order, and its budget.
    assert lan_skew.LEARNED_SKEWS == 4 and "(the last **4**, latest\n   first)" in text
    assert lan_skew.learned_offsets((20,)) == [20, 19, 21]
    assert "the windows `w + d`, `w + d \u2212 1`, `w + d + 1`" in text
    assert lan_skew.WIDE_SEARCH_GROUPS == 16 and "group secrets (at most **16**)" in text
    assert lan_skew.WIDE_SEARCH_SECRETS == 16 and "the first **16** pairwise secrets" in text
    assert list(lan_skew.wide_offsets())[:4] == [2, -2, 3, -3]
    assert "`w + 2`, `w \u2212 2`, `w + 3`, `w \u2212 3`, ..." in text
    assert lan_skew.WIDE_WINDOWS == 1008 and list(lan_skew.wide_offsets())[-2:] == [1008, -1008]
    assert "`w + 1008`, `w \u2212 1008` (**7 days** either side)" in text
    assert lan_skew.MAX_CLOCK_SKEW == 7 * 24 * 3600 and len(list(lan_skew.wide_offsets())) == 2014
    assert "costs up to 2,014 keyed BLAKE2b calls per secret" in text
    assert (lan_skew.WIDE_SEARCHES_PER_MINUTE, lan_skew.WIDE_SEARCH_BURST) == (4, 4)
    assert "at most **4 sweeps a minute, 4 saved up at most" in text
    assert lan_skew.WIDE_SEARCH_NONCES_KEPT == 256 and "(it remembers the last 256)" in text
    assert lan_record.PAIR_BUCKETS == (8, 16, 32, 48) and "**8, 16, 32, 48**" in text
    assert lan_record.GROUP_BUCKETS == (0, 2, 4) and "**0, 2, 4**" in text
    assert f"at most **{lan_record.MAX_TXT_BYTES}**" in text
    assert f"then its group secrets, {lan.MAX_MATCH_SECRETS} secrets\nat most" in text
    smallest = lan_record.encode_txt(lan.build_announcement(bytes(32), [], 0))
    everything = [lan.Secret(bytes([i]) * 32, bytes([i]) * 32, "c") for i in range(60)]
    everything += [lan.Secret(bytes([i]) * 32, None, "g") for i in range(6)]
    largest = lan_record.encode_txt(lan.build_announcement(bytes(32), everything, 0))
    assert f"between {len(smallest)} bytes (8 tags, no group) and {len(largest)} bytes (48" in text


def _txt(*strings: bytes) -> bytes:
    return b"".join(bytes((len(s),)) + s for s in strings)


def _b64(data: bytes) -> bytes:
    """Unpadded base64url, written out here so the test does not trust the codec under test."""
    return base64.urlsafe_b64encode(data).rstrip(b"=")


V, N = b"v=1", b"n=oKGio6SlpqeoqaqrrK2urw"
T8 = b"t0=" + _b64(bytes(64))


@pytest.mark.parametrize(
    "raw",
    [
        _txt(V, N, T8) + b"\x00" * (lan_record.MAX_TXT_BYTES - len(_txt(V, N, T8)) + 1),  # > 1024
        _txt(V, N, T8)[:-1],  # truncated string
        _txt(V, N, T8, b""),  # empty string
        _txt(V, N, T8, b"x"),  # bare key
        _txt(V, N, T8, b"x="),  # empty value
        _txt(V, N, T8, V),  # duplicate key
        _txt(N, T8),  # no version
        _txt(V, T8),  # no nonce
        _txt(V, N + b"==", T8),  # padded base64url
        _txt(V, b"n=oKGio6SlpqeoqaqrrK2urx", T8),  # non-zero unused bits
        _txt(V, b"n=oKGio6SlpqeoqaqrrK2u+w", T8),  # '+' is not base64url
        _txt(V, b"n=oKGio6SlpqeoqaqrrK2u", T8),  # 15-byte nonce
        _txt(V, N, b"t1=" + T8[3:]),  # numbering gap
        _txt(V, N, b"t00=" + T8[3:]),  # not a known key
        _txt(V, N, b"T0=" + T8[3:]),  # keys are case-sensitive
        _txt(V, N, b"t0=" + _b64(bytes(12))),  # not a multiple of 8
        _txt(V, N, b"t0=" + _b64(bytes(136))),  # more than 16 tags in a string
        _txt(V, N, *(b"t%d=" % i + _b64(bytes(56)) for i in range(7))),  # 49 tags
        _txt(V, N, T8, b"g0=" + _b64(bytes(55))),  # group entry of the wrong size
        _txt(V, N, T8, *(b"g%d=" % i + _b64(bytes(56)) for i in range(5))),  # 5 groups
    ],
)
def test_documented_decoding_rules_reject(raw: bytes) -> None:
    with pytest.raises(lan_record.BadAnnouncement):
        lan_record.decode_txt(raw)


def test_documented_decoding_rules_accept() -> None:
    assert lan_record.decode_txt(_txt(V, N)).tags == ()  # no pairwise string at all
    assert len(lan_record.decode_txt(_txt(T8, N, V)).tags) == 8  # any order of strings
    split = _txt(V, N, b"t0=" + _b64(bytes(8)), b"t1=" + _b64(bytes(120)))
    assert len(lan_record.decode_txt(split).tags) == 16  # strings need not be full
    with pytest.raises(lan_record.UnsupportedVersion):
        lan_record.decode_txt(_txt(b"v=2", b"anything=goes"))
