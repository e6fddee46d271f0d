"""The one module that talks to cbor2.

Everything p2pcrew signs, hashes or sends is CBOR. Two peers must agree on the exact
bytes, so we only accept a *canonical* subset (RFC 8949 section 4.2.3 as cbor2
implements it, i.e. map keys sorted length-first) and check it the simple, robust way:
decode strictly, walk the result to make sure only our data model appears, and
re-encode; the input is accepted only if it is byte-for-byte what we would produce.

The data model: ``None``, ``bool``, integers in the 64-bit CBOR range, ``bytes``,
``str``, lists, and maps with ``str`` or ``int`` keys. No floats (times are integer
milliseconds), no tags, no undefined or simple values. cbor2 decodes some tags (such as
bignums) before any hook runs, which is why the walk and the re-encode are the
authority rather than decoder flags alone.
"""

from __future__ import annotations

from typing import Any

import cbor2

from p2pcrew.errors import P2PCrewError

MAX_DEPTH = 16
"""Deepest nesting accepted; our formats need 4 at most, so 16 leaves room to grow."""

_INT_MIN = -(2**64)
_INT_MAX = 2**64 - 1


class CodecError(P2PCrewError, ValueError):
    """Bytes that are not acceptable CBOR for p2pcrew."""


class MalformedCBOR(CodecError):
    """Not well-formed CBOR, trailing bytes, or a type outside our data model."""


class NonCanonicalCBOR(CodecError):
    """Valid CBOR that is not in the canonical form we sign and hash."""


def encode(value: Any) -> bytes:
    """Encode ``value`` canonically.

    Raises:
        MalformedCBOR: if ``value`` holds something outside the data model (a local bug).
    """
    check_data_model(value)
    return cbor2.dumps(value, canonical=True)


def encode_checked_shape(value: Any) -> bytes:
    """Encode a value whose shape the caller already guarantees (the entry header).

    Skips the data-model walk, which costs as much as the encoding itself on the
    publishing hot path; everything from outside still goes through ``encode``.
    """
    return cbor2.dumps(value, canonical=True)


def decode(data: bytes) -> Any:
    """Decode ``data``, accepting only canonical CBOR within our data model.

    Raises:
        MalformedCBOR: not well-formed, truncated, trailing bytes, too deep, tags,
            indefinite lengths, duplicate keys or a type outside the data model.
        NonCanonicalCBOR: well-formed but not the canonical encoding.
    """
    value = decode_unchecked(data)
    check_data_model(value)
    canonical = cbor2.dumps(value, canonical=True)
    if canonical != data:
        if len(canonical) < len(data) and data.startswith(canonical):
            raise MalformedCBOR(f"{len(data) - len(canonical)} trailing bytes after the CBOR item")
        raise NonCanonicalCBOR(
            "CBOR is not in canonical form (shortest integers and lengths, "
            "map keys sorted length-first)"
        )
    return value


def decode_unchecked(data: bytes) -> Any:
    """Strict structural decode without the canonical re-encode check.

    Only for callers that perform an equivalent check themselves (the entry header
    decoder rebuilds the bytes it signs). Raises MalformedCBOR.
    """
    if not isinstance(data, bytes | bytearray | memoryview):
        raise MalformedCBOR(f"expected bytes, got {type(data).__name__}")
    _prescan(bytes(data))
    try:
        return cbor2.loads(
            bytes(data),
            max_depth=MAX_DEPTH,
            allow_indefinite=False,
            allow_duplicate_keys=False,
            tag_hook=_reject_tag,
        )
    except CodecError:
        raise
    except Exception as exc:  # cbor2 raises several types; all mean "malformed"
        raise MalformedCBOR(f"malformed CBOR: {_cause(exc)}") from exc


def check_data_model(value: Any, depth: int = 0) -> None:
    """Raise MalformedCBOR unless ``value`` only holds types from our data model."""
    if depth > MAX_DEPTH:
        raise MalformedCBOR(f"nested deeper than {MAX_DEPTH}")
    kind = type(value)
    if kind is int:
        if not _INT_MIN <= value <= _INT_MAX:
            raise MalformedCBOR("integer outside the 64-bit CBOR range")
    elif kind in (bytes, str, bool) or value is None:
        return
    elif kind is list:
        for item in value:
            check_data_model(item, depth + 1)
    elif kind is dict:
        for key, item in value.items():
            if type(key) not in (str, int):
                raise MalformedCBOR(f"map key of type {type(key).__name__} not allowed")
            check_data_model(key, depth + 1)
            check_data_model(item, depth + 1)
    else:
        raise MalformedCBOR(f"CBOR type {kind.__name__} is not part of the p2pcrew format")


_WIDTH = {24: 1, 25: 2, 26: 4, 27: 8}


def _prescan(data: bytes) -> None:
    """Walk the item heads once, in linear time, before cbor2 sees the bytes.

    cbor2 resolves some tags itself (value sharing 28/29, string references 25/256)
    before any hook can refuse them, and expanding them lets a 200-byte input demand
    minutes of CPU and hundreds of MB. So tags are refused here, as are indefinite
    lengths, reserved heads, truncation, and item counts that the remaining bytes
    could not possibly hold (each item takes at least one byte).
    """
    pos, end, remaining = 0, len(data), 1
    while remaining:
        if pos >= end:
            raise MalformedCBOR("truncated CBOR item")
        head = data[pos]
        major, info = head >> 5, head & 0x1F
        pos += 1
        remaining -= 1
        if info < 24:
            arg = info
        elif info in _WIDTH:
            width = _WIDTH[info]
            if pos + width > end:
                raise MalformedCBOR("truncated CBOR item head")
            arg = int.from_bytes(data[pos : pos + width], "big")
            pos += width
        elif info == 31:
            raise MalformedCBOR("indefinite-length CBOR items are not allowed")
        else:
            raise MalformedCBOR(f"reserved CBOR head 0x{head:02x}")
        if major == 6:
            raise MalformedCBOR(f"CBOR tag {arg} is not allowed")
        if major in (2, 3):
            if arg > end - pos:
                raise MalformedCBOR("CBOR string longer than the data")
            pos += arg
        elif major in (4, 5):
            remaining += arg * (2 if major == 5 else 1)
            if remaining > end - pos:
                raise MalformedCBOR("CBOR container claims more items than bytes")


def _reject_tag(tag: cbor2.CBORTag, _immutable: bool) -> object:
    raise MalformedCBOR(f"CBOR tag {tag.tag} is not allowed")


def _cause(exc: BaseException) -> str:
    """The innermost message, which is the one that says what was wrong."""
    while exc.__cause__ is not None:
        exc = exc.__cause__
    return str(exc) or type(exc).__name__
