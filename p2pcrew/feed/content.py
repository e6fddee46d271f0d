"""Content types: what an entry's payload says, checked on write and on read.

A payload is a canonical CBOR map (see ``p2pcrew.codec``) with a text ``"type"`` naming
its content type, an integer ``"time"`` (the author's claimed wall-clock time in
milliseconds since the Unix epoch; the signed header carries no time) and the fields of
that type. Peers run different versions and some are hostile, so decoding is strict:
every field is type-, length- and enum-checked, unknown keys are refused, and an
optional field is either absent or meaningful (never ``null``, never an empty list).
Each meaning therefore has exactly one encoding.

The schema lives next to each type: a frozen dataclass whose fields carry a ``Rule``
in their metadata. ``register_content_type`` is the one place a type joins the wire
format; the crew types (a later issue) are added the same way, and anything not
registered is refused with ``UnknownContentType``. The field rules, limits and the
registry live in ``p2pcrew.feed.content_schema``; this module defines the types and the
encode/decode API that the rest of p2pcrew uses.

Size: lengths are counted in Unicode code points (what a person perceives as the limit),
but two long multi-line fields also have a UTF-8 byte cap so that a payload with every
field at its maximum stays under ``MAX_CONTENT_SIZE`` (``MAX_PAYLOAD_SIZE`` minus room
for a crew envelope). ``tests/feed/test_content.py`` checks that bound for every type.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from time import time_ns
from typing import ClassVar, Final, Literal, TypeAlias, cast, get_args

from p2pcrew import codec
from p2pcrew.feed.content_schema import (
    MAX_CONTENT_SIZE,
    MAX_TIME_MS,
    BaseContent,
    Choice,
    Id,
    IdList,
    Millis,
    Text,
    UnknownContentType,
    content_types,
    echo,
    register_content_type,
    rule,
    schema_of,
)
from p2pcrew.feed.errors import InvalidContent

__all__ = [
    "CONTACT_ACTIONS",
    "MAX_ABOUT_DESCRIPTION_CHARS",
    "MAX_ABOUT_NAME_CHARS",
    "MAX_CONTENT_SIZE",
    "MAX_DELETE_REASON_CHARS",
    "MAX_POST_MENTIONS",
    "MAX_POST_TEXT_BYTES",
    "MAX_POST_TEXT_CHARS",
    "MAX_REACTION_EMOJI_CHARS",
    "MAX_REQUEST_BODY_BYTES",
    "MAX_REQUEST_BODY_CHARS",
    "MAX_REQUEST_PLACE_CHARS",
    "MAX_REQUEST_TITLE_CHARS",
    "MAX_REQUEST_UPDATE_NOTE_CHARS",
    "MAX_TIME_MS",
    "REQUEST_ACTIONS",
    "REQUEST_CATEGORIES",
    "REQUEST_KINDS",
    "About",
    "BaseContent",
    "Contact",
    "ContactAction",
    "Content",
    "Delete",
    "InvalidContent",
    "Post",
    "Reaction",
    "Request",
    "RequestAction",
    "RequestCategory",
    "RequestKind",
    "RequestUpdate",
    "UnknownContentType",
    "content_types",
    "decode_content",
    "encode_content",
    "now_ms",
    "register_content_type",
]

# --- Limits (code points unless named _BYTES) -------------------------------------------

MAX_ABOUT_NAME_CHARS: Final = 64
MAX_ABOUT_DESCRIPTION_CHARS: Final = 1000
MAX_POST_TEXT_CHARS: Final = 8000
MAX_POST_TEXT_BYTES: Final = 12_000
"""8000 ASCII characters fit, or about 4000 CJK or 3000 emoji: 8000 four-byte code
points (32 KB) would not fit in a payload."""
MAX_POST_MENTIONS: Final = 32
MAX_REQUEST_TITLE_CHARS: Final = 120
MAX_REQUEST_BODY_CHARS: Final = 4000
MAX_REQUEST_BODY_BYTES: Final = 12_000
"""As for post text: 4000 code points of up to 4 bytes each would not fit."""
MAX_REQUEST_PLACE_CHARS: Final = 120
MAX_REQUEST_UPDATE_NOTE_CHARS: Final = 500
MAX_REACTION_EMOJI_CHARS: Final = 16
MAX_DELETE_REASON_CHARS: Final = 200

# --- Enumerations: the Literal types are the single source of the allowed values ------

ContactAction: TypeAlias = Literal["follow", "unfollow", "block", "unblock"]
RequestKind: TypeAlias = Literal["ask", "offer"]
RequestCategory: TypeAlias = Literal[
    "tools", "food", "transport", "housing", "care", "skills", "money", "other"
]
RequestAction: TypeAlias = Literal["claim", "unclaim", "fulfil", "withdraw", "reopen"]

CONTACT_ACTIONS: Final[tuple[ContactAction, ...]] = get_args(ContactAction)
REQUEST_KINDS: Final[tuple[RequestKind, ...]] = get_args(RequestKind)
REQUEST_CATEGORIES: Final[tuple[RequestCategory, ...]] = get_args(RequestCategory)
"""In the order a requests board should list them ("other" last)."""
REQUEST_ACTIONS: Final[tuple[RequestAction, ...]] = get_args(RequestAction)


def now_ms() -> int:
    """The current wall-clock time in integer milliseconds, for a payload's ``time``.

    Payload times are integers because the codec has no floats (two peers must produce
    identical bytes). The time is only a claim by the author: ordering uses links.
    """
    return time_ns() // 1_000_000


# --- The content types -------------------------------------------------------------------
# Every class: frozen, slotted, keyword-only; constructing one validates it and raises
# InvalidContent, so an instance is always encodable.


@register_content_type
@dataclass(frozen=True, slots=True, kw_only=True)
class About(BaseContent):
    """A profile update: each field present replaces the author's previous value.

    ``description=""`` is allowed and means "clear my description"; ``name`` cannot be
    cleared (a person always has a non-empty name once they set one).
    """

    TYPE: ClassVar[str] = "about"
    name: str | None = field(default=None, metadata=rule(Text(1, MAX_ABOUT_NAME_CHARS)))
    description: str | None = field(
        default=None,
        metadata=rule(Text(0, MAX_ABOUT_DESCRIPTION_CHARS, multiline=True)),
    )

    def check_fields(self) -> None:
        """Raise InvalidContent for an about that changes nothing."""
        if self.name is None and self.description is None:
            raise InvalidContent("about: needs at least one of name, description")


@register_content_type
@dataclass(frozen=True, slots=True, kw_only=True)
class Contact(BaseContent):
    """Follow, unfollow, block or unblock another feed (``contact`` is its feed id)."""

    TYPE: ClassVar[str] = "contact"
    contact: bytes = field(metadata=rule(Id("feed id")))
    action: ContactAction = field(metadata=rule(Choice(CONTACT_ACTIONS)))


@register_content_type
@dataclass(frozen=True, slots=True, kw_only=True)
class Post(BaseContent):
    """A thread root (no ``root``) or a reply within the thread whose root is ``root``.

    ``reply_to`` names the post being answered when that is not the root itself.
    ``mentions`` are feed ids, without duplicates.
    """

    TYPE: ClassVar[str] = "post"
    text: str = field(
        metadata=rule(Text(1, MAX_POST_TEXT_CHARS, multiline=True, max_bytes=MAX_POST_TEXT_BYTES))
    )
    root: bytes | None = field(default=None, metadata=rule(Id("entry id")))
    reply_to: bytes | None = field(default=None, metadata=rule(Id("entry id")))
    mentions: tuple[bytes, ...] = field(
        default=(), metadata=rule(IdList("feed id", MAX_POST_MENTIONS))
    )
    crew: bytes | None = field(default=None, metadata=rule(Id("crew id")))
    """Set only inside a crew envelope: which crew this belongs to (never in the clear)."""

    def check_fields(self) -> None:
        """Raise InvalidContent for a reply that does not say which thread it is in."""
        if self.reply_to is not None and self.root is None:
            raise InvalidContent(
                "post.reply_to: requires root (a reply names its thread's root post)"
            )


@register_content_type
@dataclass(frozen=True, slots=True, kw_only=True)
class Request(BaseContent):
    """A mutual-aid ask or offer. ``place`` is a rough hint, never an exact address."""

    TYPE: ClassVar[str] = "request"
    kind: RequestKind = field(metadata=rule(Choice(REQUEST_KINDS)))
    title: str = field(metadata=rule(Text(1, MAX_REQUEST_TITLE_CHARS)))
    category: RequestCategory = field(metadata=rule(Choice(REQUEST_CATEGORIES)))
    body: str | None = field(
        default=None,
        metadata=rule(
            Text(1, MAX_REQUEST_BODY_CHARS, multiline=True, max_bytes=MAX_REQUEST_BODY_BYTES)
        ),
    )
    needed_by: int | None = field(default=None, metadata=rule(Millis()))
    place: str | None = field(default=None, metadata=rule(Text(1, MAX_REQUEST_PLACE_CHARS)))
    crew: bytes | None = field(default=None, metadata=rule(Id("crew id")))
    """Set only inside a crew envelope: which crew this belongs to (never in the clear)."""


@register_content_type
@dataclass(frozen=True, slots=True, kw_only=True)
class RequestUpdate(BaseContent):
    """A step in a request's lifecycle; who may take which step is checked elsewhere."""

    TYPE: ClassVar[str] = "request_update"
    request: bytes = field(metadata=rule(Id("entry id")))
    action: RequestAction = field(metadata=rule(Choice(REQUEST_ACTIONS)))
    note: str | None = field(default=None, metadata=rule(Text(1, MAX_REQUEST_UPDATE_NOTE_CHARS)))
    crew: bytes | None = field(default=None, metadata=rule(Id("crew id")))
    """Set only inside a crew envelope: which crew this belongs to (never in the clear)."""


@register_content_type
@dataclass(frozen=True, slots=True, kw_only=True)
class Reaction(BaseContent):
    """A short reaction (usually one emoji, possibly a ZWJ sequence) to an entry."""

    TYPE: ClassVar[str] = "reaction"
    target: bytes = field(metadata=rule(Id("entry id")))
    emoji: str = field(metadata=rule(Text(1, MAX_REACTION_EMOJI_CHARS)))
    crew: bytes | None = field(default=None, metadata=rule(Id("crew id")))
    """Set only inside a crew envelope: which crew this belongs to (never in the clear)."""


@register_content_type
@dataclass(frozen=True, slots=True, kw_only=True)
class Delete(BaseContent):
    """Asks every peer to drop ``target``'s payload (only its author may; checked elsewhere)."""

    TYPE: ClassVar[str] = "delete"
    target: bytes = field(metadata=rule(Id("entry id")))
    reason: str | None = field(default=None, metadata=rule(Text(1, MAX_DELETE_REASON_CHARS)))


Content: TypeAlias = About | Contact | Post | Request | RequestUpdate | Reaction | Delete
"""Every content type this version understands. A new registered type joins here too."""


# --- Encoding and decoding ---------------------------------------------------------------


def encode_content(content: Content) -> bytes:
    """Validate ``content`` and return its canonical CBOR payload bytes.

    Optional fields that are ``None`` (or an empty ``mentions``) are left out, never
    written as null. The result is at most ``MAX_CONTENT_SIZE`` bytes.

    Raises:
        InvalidContent: ``content`` is not a registered content type or breaks its
            schema (it was altered after construction).
    """
    schema = schema_of(type(content))
    if schema is None:
        raise InvalidContent(
            f"cannot encode {type(content).__name__}: not a registered content type"
        )
    schema.validate(content)
    payload = codec.encode(schema.to_wire(content))
    if len(payload) > MAX_CONTENT_SIZE:  # unreachable with the built-in limits
        raise InvalidContent(
            f"{schema.type_name}: encodes to {len(payload)} bytes, "
            f"more than the maximum of {MAX_CONTENT_SIZE}"
        )
    return payload


def decode_content(payload: bytes) -> Content:
    """Decode and validate a payload received from anyone.

    Checks, in order: size, strict canonical CBOR, a map with a known text ``type``,
    no unknown keys, all required fields, no null or empty optional fields, then each
    field's type, length and allowed values, then rules across fields.

    Raises:
        UnknownContentType: the ``type`` is not registered (a subclass of
            InvalidContent, so that ingest can tell "newer peer" from "broken peer").
        InvalidContent: anything else that is wrong; the message names the field.
    """
    if len(payload) > MAX_CONTENT_SIZE:
        raise InvalidContent(
            f"payload: {len(payload)} bytes is more than the maximum of {MAX_CONTENT_SIZE}"
        )
    try:
        wire = codec.decode(payload)
    except codec.CodecError as exc:
        raise InvalidContent(f"payload: {exc}") from exc
    if type(wire) is not dict:
        raise InvalidContent(f"payload: must be a CBOR map, got {type(wire).__name__}")
    if "type" not in wire:
        raise InvalidContent("payload.type: missing (every payload names its content type)")
    type_name = wire["type"]
    if type(type_name) is not str:
        raise InvalidContent(f"payload.type: must be text, got {type(type_name).__name__}")
    schema = schema_of(type_name)
    if schema is None:
        known = ", ".join(sorted(content_types()))
        raise UnknownContentType(
            f"payload.type: unknown content type {echo(type_name)} "
            f"(this p2pcrew knows: {known}; the author may use a newer p2pcrew)"
        )
    return cast(Content, schema.from_wire(wire))
