"""The LAN announcement as it travels: its TXT record, and which announced addresses to dial.

What goes *into* a record (tags, sealed keys, decoys) is decided in
``discovery_tags``; this module only fixes its shape on the wire, because that shape
is what every device on the LAN can see and any of them can forge.

Record. The TXT rdata is a sequence of length-prefixed ``key=value`` strings (RFC 6763
section 6): ``v=1``; ``n=`` the 16-byte nonce; ``t0=``, ``t1=``, ... the pairwise tags,
up to 16 per string; ``g0=``, ``g1=``, ... one group tag with its sealed feed key each.
Values are unpadded base64url.

Bounds (mDNS packets must stay small). At most ``MAX_PAIR_TAGS`` (48) pairwise tags
and ``MAX_GROUP_TAGS`` (4) group tags; the largest record is 870 bytes, under
``MAX_TXT_BYTES`` (1024), the smallest 119.

``decode_txt`` is strict (exact keys, canonical unpadded base64url, exact sizes, no
duplicates, index numbers without gaps); anything else raises ``BadAnnouncement`` and
the browser ignores that service.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final

import nacl.secret

from p2pcrew.errors import P2PCrewError

FORMAT_VERSION: Final = b"1"
NONCE_BYTES: Final = 16
TAG_BYTES: Final = 8
KEY_BYTES: Final = 32
SEALED_BYTES: Final = KEY_BYTES + nacl.secret.SecretBox.MACBYTES
GROUP_ENTRY_BYTES: Final = TAG_BYTES + SEALED_BYTES
PAIR_BUCKETS: Final = (8, 16, 32, 48)
GROUP_BUCKETS: Final = (0, 2, 4)
MAX_PAIR_TAGS: Final = PAIR_BUCKETS[-1]
MAX_GROUP_TAGS: Final = GROUP_BUCKETS[-1]
TAGS_PER_STRING: Final = 16
MAX_TXT_BYTES: Final = 1024


class BadAnnouncement(P2PCrewError, ValueError):
    """A TXT record that is not a well-formed announcement of this format (remote)."""


class UnsupportedVersion(BadAnnouncement):
    """An announcement of another format version: skipped, not an error."""


@dataclass(frozen=True, slots=True)
class Announcement:
    """The decoded TXT record: nonce, pairwise tags, (group tag, sealed key) pairs."""

    nonce: bytes
    tags: tuple[bytes, ...]
    groups: tuple[tuple[bytes, bytes], ...] = ()


# --------------------------------------------------------------------------- TXT format


def _b64(data: bytes) -> bytes:
    return base64.urlsafe_b64encode(data).rstrip(b"=")


def _unb64(text: bytes, what: str) -> bytes:
    try:
        data = base64.urlsafe_b64decode(text + b"=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        raise BadAnnouncement(f"{what}: not base64url") from None
    if _b64(data) != text:  # rejects padding, stray characters and non-canonical forms
        raise BadAnnouncement(f"{what}: not canonical unpadded base64url")
    return data


def encode_txt(announcement: Announcement) -> bytes:
    """The TXT rdata: length-prefixed ``key=value`` strings, as mDNS carries them.

    Raises:
        ValueError: the announcement breaks the bounds (a bug in the caller).
    """
    if len(announcement.nonce) != NONCE_BYTES:
        raise ValueError("nonce must be 16 bytes")
    if len(announcement.tags) > MAX_PAIR_TAGS or len(announcement.groups) > MAX_GROUP_TAGS:
        raise ValueError("too many tags")
    strings = [b"v=" + FORMAT_VERSION, b"n=" + _b64(announcement.nonce)]
    tags = announcement.tags
    for i in range(0, len(tags), TAGS_PER_STRING):
        strings.append(
            b"t%d=" % (i // TAGS_PER_STRING) + _b64(b"".join(tags[i : i + TAGS_PER_STRING]))
        )
    for i, (group_tag, sealed) in enumerate(announcement.groups):
        strings.append(b"g%d=" % i + _b64(group_tag + sealed))
    return b"".join(bytes((len(s),)) + s for s in strings)


def _split_strings(raw: bytes) -> dict[bytes, bytes]:
    if len(raw) > MAX_TXT_BYTES:
        raise BadAnnouncement(f"TXT record of {len(raw)} bytes exceeds {MAX_TXT_BYTES}")
    fields: dict[bytes, bytes] = {}
    pos = 0
    while pos < len(raw):
        end = pos + 1 + raw[pos]
        if end > len(raw):
            raise BadAnnouncement("truncated TXT string")
        key, sep, value = raw[pos + 1 : end].partition(b"=")
        if not sep or not value:
            raise BadAnnouncement("TXT string without a value")
        if key in fields:
            raise BadAnnouncement(f"duplicate key {key!r}")
        fields[key] = value
        pos = end
    return fields


def _indexed(fields: dict[bytes, bytes], prefix: bytes) -> list[bytes]:
    """Values of ``prefix0``, ``prefix1``, ... which must be numbered without gaps."""
    values: list[bytes] = []
    while (value := fields.pop(prefix + b"%d" % len(values), None)) is not None:
        values.append(value)
    return values


def decode_txt(raw: bytes) -> Announcement:
    """Parse a TXT record strictly.

    Raises:
        UnsupportedVersion: another format version (skip quietly).
        BadAnnouncement: anything malformed, oversized or unexpected.
    """
    fields = _split_strings(raw)
    version = fields.pop(b"v", None)
    if version is None:
        raise BadAnnouncement("no version")
    if version != FORMAT_VERSION:
        raise UnsupportedVersion(f"announcement format {version[:8]!r}")
    nonce = _unb64(fields.pop(b"n", b""), "nonce")
    if len(nonce) != NONCE_BYTES:
        raise BadAnnouncement("nonce must be 16 bytes")
    tags = _decode_tags(_indexed(fields, b"t"))
    groups = tuple(_decode_group(v) for v in _indexed(fields, b"g"))
    if len(groups) > MAX_GROUP_TAGS:
        raise BadAnnouncement("too many group tags")
    if fields:
        raise BadAnnouncement(f"unexpected keys {sorted(fields)[:4]!r}")
    return Announcement(nonce, tags, groups)


def _decode_tags(values: list[bytes]) -> tuple[bytes, ...]:
    tags: list[bytes] = []
    for value in values:
        data = _unb64(value, "tags")
        if not data or len(data) % TAG_BYTES or len(data) > TAG_BYTES * TAGS_PER_STRING:
            raise BadAnnouncement("tag list of the wrong size")
        tags += [data[i : i + TAG_BYTES] for i in range(0, len(data), TAG_BYTES)]
    if len(tags) > MAX_PAIR_TAGS:
        raise BadAnnouncement("too many tags")
    return tuple(tags)


def _decode_group(value: bytes) -> tuple[bytes, bytes]:
    data = _unb64(value, "group tag")
    if len(data) != GROUP_ENTRY_BYTES:
        raise BadAnnouncement("group tag of the wrong size")
    return data[:TAG_BYTES], data[TAG_BYTES:]


# --------------------------------------------------------------------------- addresses


def order_addresses(remote: Iterable[str], local: Iterable[str]) -> list[str]:
    """IPv4 ``remote`` addresses worth dialling, those on one of our ``local`` networks first.

    ``local`` holds interfaces as ``"10.0.0.5/24"``. An announcement is controlled by
    whoever sent it (a replayed one too), so only addresses a LAN peer can have are
    kept: on one of our networks, or private / link-local (a routed venue network).
    Public, loopback, multicast, unspecified and malformed addresses are dropped, so
    a forged record cannot make us dial out to the internet.
    """
    networks = [ipaddress.IPv4Interface(n).network for n in local]
    usable: list[ipaddress.IPv4Address] = []
    for text in remote:
        try:
            addr = ipaddress.IPv4Address(text)
        except ValueError:
            continue
        ours = any(addr in net for net in networks)
        if _dialable(addr) and (ours or addr.is_private) and addr not in usable:
            usable.append(addr)
    usable.sort(key=lambda a: not any(a in net for net in networks))
    return [str(a) for a in usable]


def _dialable(addr: ipaddress.IPv4Address) -> bool:
    return not (addr.is_loopback or addr.is_multicast or addr.is_unspecified or addr.is_reserved)
