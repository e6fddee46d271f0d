"""Framing for the multiplexed RPC layer: length-prefixed canonical CBOR arrays.

Theory of operation
-------------------
The RPC byte stream (box-stream plaintext) is a sequence of frames: a 4-byte unsigned
big-endian length ``L`` with ``1 <= L <= max_frame``, then ``L`` bytes holding exactly one
canonical CBOR array whose first item is the frame type (see ``FrameType`` and
``_LAYOUTS``). Frames need not line up with encryption boxes or TCP segments.

``FrameReader`` cuts frames out of input of any chunking. It takes from each chunk only
what the current frame still needs, so it never holds more than one frame body (or a
partial 4-byte length): at most ``max_frame`` bytes, whatever the caller feeds it. A
length outside ``1..max_frame`` is rejected as soon as the 4 length bytes are in, before
any body byte is buffered. This plays the part of wsproto's transactional buffer with a
stronger bound: nothing beyond the current frame is ever copied.

``parse_frame`` turns one body into a ``Frame``, checking the CBOR (via ``codec``, the only
module allowed to touch cbor2), the type, the arity and the item types. What a frame
*means* in the current state is ``rpc.RpcConnection``'s business.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

from p2pcrew import codec
from p2pcrew.replicate.rpc_errors import FrameTooLarge, MalformedFrame

__all__ = [
    "DEFAULT_MAX_FRAME",
    "LENGTH_PREFIX_SIZE",
    "Frame",
    "FrameReader",
    "FrameType",
    "encode_frame",
    "parse_frame",
]

LENGTH_PREFIX_SIZE: Final = 4
DEFAULT_MAX_FRAME: Final = 65_536
"""Largest frame body (the CBOR array, without the length prefix) accepted or sent."""


class FrameType(enum.Enum):
    """The first item of every frame array."""

    REQUEST = 0
    RESPONSE = 1
    OPEN = 2
    DATA = 3
    END = 4
    ERROR = 5
    CREDIT = 6
    GOODBYE = 7


@dataclass(frozen=True, slots=True)
class Frame:
    """One decoded frame; fields a frame type does not carry keep their defaults."""

    type: FrameType
    stream_id: int = 0
    method: str = ""
    body: Any = None
    reason: str = ""
    message: str = ""
    credit: int = 0


# Items after the type, in wire order, named after the Frame fields that hold them.
_LAYOUTS: Final[dict[FrameType, tuple[str, ...]]] = {
    FrameType.REQUEST: ("stream_id", "method", "body"),
    FrameType.RESPONSE: ("stream_id", "body"),
    FrameType.OPEN: ("stream_id", "method", "body"),
    FrameType.DATA: ("stream_id", "body"),
    FrameType.END: ("stream_id",),
    FrameType.ERROR: ("stream_id", "reason", "message"),
    FrameType.CREDIT: ("stream_id", "credit"),
    FrameType.GOODBYE: (),
}


def _is_uint(item: object) -> bool:
    return type(item) is int and item >= 0


def _is_positive(item: object) -> bool:
    return type(item) is int and item > 0


def _is_text(item: object) -> bool:
    return type(item) is str


def _is_anything(_item: object) -> bool:
    return True  # codec.decode already confined it to the data model


_FIELD_CHECKS: Final[dict[str, tuple[Callable[[object], bool], str]]] = {
    "stream_id": (_is_uint, "an unsigned integer"),
    "method": (_is_text, "a text string"),
    "body": (_is_anything, "any value"),
    "reason": (_is_text, "a text string"),
    "message": (_is_text, "a text string"),
    "credit": (_is_positive, "a positive integer"),
}


def encode_frame(frame: Frame) -> bytes:
    """Return the wire bytes of ``frame``: length prefix, then the canonical CBOR array.

    Raises codec.MalformedCBOR if a body holds something outside the data model. The
    caller checks the size against its ``max_frame``.
    """
    items = [frame.type.value, *(getattr(frame, name) for name in _LAYOUTS[frame.type])]
    payload = codec.encode(items)
    return len(payload).to_bytes(LENGTH_PREFIX_SIZE, "big") + payload


def parse_frame(payload: bytes) -> Frame:
    """Decode one frame body (without its length prefix).

    Raises MalformedFrame for CBOR that is malformed or not canonical, and for anything
    but an array of a known type with that type's arity and item types.
    """
    try:
        value = codec.decode(payload)
    except codec.CodecError as exc:
        raise MalformedFrame(f"a frame is not acceptable CBOR: {exc}") from exc
    if type(value) is not list or not value:
        raise MalformedFrame("a frame must be a non-empty CBOR array")
    frame_type = _frame_type(value[0])
    layout = _LAYOUTS[frame_type]
    if len(value) != 1 + len(layout):
        raise MalformedFrame(
            f"a {frame_type.name} frame has {1 + len(layout)} items, this one has {len(value)}"
        )
    fields: dict[str, Any] = {}
    for name, item in zip(layout, value[1:], strict=True):
        check, expected = _FIELD_CHECKS[name]
        if not check(item):
            raise MalformedFrame(f"{name} of a {frame_type.name} frame must be {expected}")
        fields[name] = item
    return Frame(frame_type, **fields)


def _frame_type(head: object) -> FrameType:
    if type(head) is int:
        for frame_type in FrameType:
            if frame_type.value == head:
                return frame_type
    raise MalformedFrame(f"unknown frame type {head!r}")


class FrameReader:
    """Reassembles frame bodies from byte chunks of any size.

    Holds at most one partial length prefix or one partial frame body, never more
    than ``max_frame`` bytes.
    """

    def __init__(self, max_frame: int) -> None:
        self._max_frame = max_frame
        self._buffer = bytearray()
        self._need = LENGTH_PREFIX_SIZE
        self._in_body = False

    @property
    def buffered(self) -> int:
        """Bytes held for the frame being reassembled (prefix or body so far)."""
        return len(self._buffer)

    @property
    def mid_frame(self) -> bool:
        """True if part of a frame (prefix or body) has arrived but not all of it."""
        return self._in_body or bool(self._buffer)

    def feed(self, data: memoryview) -> tuple[int, bytes | None]:
        """Take what the current frame needs from ``data``.

        Returns how many bytes were taken and the frame body if it is now complete.
        Feed the rest of ``data`` in further calls. Raises FrameTooLarge or
        MalformedFrame (zero length) as soon as a bad length prefix is complete.
        """
        take = data[: self._need - len(self._buffer)]
        self._buffer += take
        if len(self._buffer) < self._need:
            return len(take), None
        if not self._in_body:
            self._start_body(int.from_bytes(self._buffer, "big"))
            return len(take), None
        payload = bytes(self._buffer)
        self._buffer.clear()
        self._need = LENGTH_PREFIX_SIZE
        self._in_body = False
        return len(take), payload

    def _start_body(self, length: int) -> None:
        if length > self._max_frame:
            raise FrameTooLarge(
                f"the peer announced a {length}-byte frame; the limit is {self._max_frame}"
            )
        if length == 0:
            raise MalformedFrame("the peer announced an empty frame")
        self._buffer.clear()
        self._need = length
        self._in_body = True
