"""The machinery behind content types: field rules, the base class and the registry.

``p2pcrew.feed.content`` defines the built-in types with this machinery; crew types
(a later issue) use it the same way. A content type is a frozen, slotted, keyword-only
dataclass derived from ``BaseContent`` whose every field carries a ``Rule`` in its
metadata (``field(metadata=rule(Text(1, 120)))``), decorated with
``register_content_type``. Registration is the one place a type joins the wire format.
It checks the declaration and computes the largest payload the type can encode to,
refusing any type that could exceed ``MAX_CONTENT_SIZE``: so limits are proven to fit
when the module is imported, not found to overflow when someone writes a long post.

Rules check values on construction (so an instance is always valid) and again in
``encode_content``; ``Schema.from_wire`` does the map-level checks on read.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import MISSING, dataclass, field, fields, is_dataclass
from types import MappingProxyType
from typing import Any, ClassVar, Final, TypeVar

from p2pcrew.feed.entry import HASH_SIZE, MAX_PAYLOAD_SIZE
from p2pcrew.feed.errors import InvalidContent

CREW_ENVELOPE_RESERVE: Final = 1024
"""Bytes kept free for the crew envelope (nonce, MAC, epoch and framing) that may wrap
any content, so that encrypted content still fits in one payload."""
MAX_CONTENT_SIZE: Final = MAX_PAYLOAD_SIZE - CREW_ENVELOPE_RESERVE
"""Largest encoded content; every registered type is proven to stay within it."""
MAX_TIME_MS: Final = 2**53 - 1
"""Largest ``time``/``needed_by``: exact in JSON (``--json`` output, JavaScript peers),
in a float and in SQLite's INTEGER, and still about 285,000 years from now."""

_RULE_KEY: Final = "p2pcrew.content.rule"
_TYPE_NAME = re.compile(r"[a-z][a-z0-9_]{0,31}")
# C0 and C1 controls (Unicode category Cc) and lone surrogates (which cannot be UTF-8).
_FORBIDDEN_ONE_LINE = re.compile(r"[\x00-\x1f\x7f-\x9f\ud800-\udfff]")
_FORBIDDEN_MULTILINE = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff]")
_ECHO_CHARS: Final = 24


class UnknownContentType(InvalidContent):
    """The payload's ``type`` is not one this p2pcrew knows (perhaps a newer peer's)."""


# --- Rules -------------------------------------------------------------------------------


class Rule:
    """How one field is checked, mapped to and from the wire, and bounded in size."""

    __slots__ = ()

    def check(self, where: str, value: object) -> None:
        """Raise InvalidContent, naming ``where`` (``type.field``), unless ``value`` fits."""
        raise NotImplementedError

    def from_wire(self, value: object) -> object:
        """The Python value for a decoded CBOR value (not yet checked)."""
        return value

    def to_wire(self, value: Any) -> object:
        """The CBOR data-model value for a checked Python value."""
        return value

    def max_size(self) -> int:
        """Upper bound on the encoded size of any value this rule accepts."""
        raise NotImplementedError


@dataclass(frozen=True, slots=True)
class Text(Rule):
    """Text of ``min_chars..max_chars`` code points without control characters.

    Multi-line text may hold newline and tab; carriage returns are refused, so that one
    text has one encoding (clients convert CRLF before writing). ``max_bytes`` caps the
    UTF-8 size where ``max_chars`` four-byte code points would not fit in a payload.
    Nothing is stripped or normalised: validation only.
    """

    min_chars: int
    max_chars: int
    multiline: bool = False
    max_bytes: int | None = None

    def check(self, where: str, value: object) -> None:
        if type(value) is not str:
            raise InvalidContent(f"{where}: must be text, got {_kind(value)}")
        count = len(value)
        if not self.min_chars <= count <= self.max_chars:
            limit = (
                f"at most {self.max_chars}"
                if self.min_chars == 0
                else f"{self.min_chars} to {self.max_chars}"
            )
            raise InvalidContent(f"{where}: must be {limit} characters long, got {count}")
        bad = (_FORBIDDEN_MULTILINE if self.multiline else _FORBIDDEN_ONE_LINE).search(value)
        if bad is not None:
            char = bad.group()
            what = "lone surrogate" if "\ud800" <= char <= "\udfff" else "control character"
            allowed = "only newline and tab are allowed" if self.multiline else "one line only"
            raise InvalidContent(
                f"{where}: {what} U+{ord(char):04X} at position {bad.start()} "
                f"is not allowed ({allowed})"
            )
        if self.max_bytes is not None:
            size = len(value.encode("utf-8"))
            if size > self.max_bytes:
                raise InvalidContent(
                    f"{where}: must be at most {self.max_bytes} bytes in UTF-8, got {size}"
                )

    def max_size(self) -> int:
        size = 4 * self.max_chars
        if self.max_bytes is not None:
            size = min(size, self.max_bytes)
        return _head_size(size) + size


@dataclass(frozen=True, slots=True)
class Id(Rule):
    """A raw id: an entry id (BLAKE2b-256 of a header) or a feed id (Ed25519 key)."""

    what: str
    """"entry id" or "feed id": only for messages, both are 32 bytes."""
    size: int = HASH_SIZE

    def check(self, where: str, value: object) -> None:
        if type(value) is not bytes:
            raise InvalidContent(
                f"{where}: must be a {self.size}-byte {self.what} (bytes), got {_kind(value)}"
            )
        if len(value) != self.size:
            raise InvalidContent(
                f"{where}: must be a {self.size}-byte {self.what}, got {len(value)} bytes"
            )

    def max_size(self) -> int:
        return _head_size(self.size) + self.size


@dataclass(frozen=True, slots=True)
class Millis(Rule):
    """Integer milliseconds since the Unix epoch, ``0..MAX_TIME_MS``."""

    def check(self, where: str, value: object) -> None:
        if type(value) is not int or not 0 <= value <= MAX_TIME_MS:
            got = str(value) if type(value) is int else _kind(value)
            raise InvalidContent(
                f"{where}: must be whole milliseconds since the Unix epoch, "
                f"0 to {MAX_TIME_MS}, got {got}"
            )

    def max_size(self) -> int:
        return 9


@dataclass(frozen=True, slots=True)
class Choice(Rule):
    """One of a fixed set of text values."""

    values: tuple[str, ...]

    def check(self, where: str, value: object) -> None:
        if type(value) is not str or value not in self.values:
            got = echo(value) if type(value) is str else _kind(value)
            allowed = ", ".join(repr(v) for v in self.values)
            raise InvalidContent(f"{where}: must be one of {allowed}, got {got}")

    def max_size(self) -> int:
        return max(_head_size(len(v.encode())) + len(v.encode()) for v in self.values)


@dataclass(frozen=True, slots=True)
class IdList(Rule):
    """1..``max_items`` distinct ids: a tuple in Python, an array on the wire."""

    what: str
    max_items: int
    size: int = HASH_SIZE

    def check(self, where: str, value: object) -> None:
        if type(value) is not tuple:
            raise InvalidContent(
                f"{where}: must be a tuple of {self.what}s (an array on the wire), "
                f"got {_kind(value)}"
            )
        if not 1 <= len(value) <= self.max_items:
            raise InvalidContent(
                f"{where}: must hold 1 to {self.max_items} {self.what}s, got {len(value)}"
            )
        item = Id(self.what, self.size)
        seen: dict[bytes, int] = {}
        for index, member in enumerate(value):
            item.check(f"{where}[{index}]", member)
            if member in seen:
                raise InvalidContent(
                    f"{where}[{index}]: duplicate {self.what} (also at index {seen[member]})"
                )
            seen[member] = index

    def from_wire(self, value: object) -> object:
        return tuple(value) if type(value) is list else value

    def to_wire(self, value: Any) -> object:
        return list(value)

    def max_size(self) -> int:
        return _head_size(self.max_items) + self.max_items * Id(self.what, self.size).max_size()


def rule(checker: Rule) -> dict[str, Rule]:
    """Field metadata attaching ``checker`` to a content field."""
    return {_RULE_KEY: checker}


# --- Base class and schema ---------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class BaseContent:
    """Base of every content type: the claimed ``time`` and validation on construction.

    Raises InvalidContent from ``__init__`` when a field breaks its rule, and TypeError
    when the class was never registered (a programming error).
    """

    TYPE: ClassVar[str]
    """The wire ``type`` name."""
    time: int = field(metadata=rule(Millis()))

    def __post_init__(self) -> None:
        schema = _BY_CLASS.get(type(self))
        if schema is None:
            raise TypeError(f"{type(self).__name__} is not a registered content type")
        schema.validate(self)

    def check_fields(self) -> None:
        """Rules across fields; override in a type that has some. Raise InvalidContent."""


@dataclass(frozen=True, slots=True)
class FieldSchema:
    name: str
    rule: Rule
    optional: bool
    absent: object
    """What "left out" is in Python: None, or () for a list field."""

    def is_absent(self, value: object) -> bool:
        if self.absent is None:
            return value is None
        return type(value) is tuple and not value


@dataclass(frozen=True, slots=True)
class Schema:
    """A registered type's fields, in declaration order, and its size bound."""

    type_name: str
    cls: type[BaseContent]
    fields: tuple[FieldSchema, ...]
    by_name: Mapping[str, FieldSchema]
    max_size: int
    """The largest payload any valid instance encodes to."""

    def validate(self, content: BaseContent) -> None:
        """Raise InvalidContent unless every present field fits its rule."""
        for spec in self.fields:
            value = getattr(content, spec.name)
            if spec.optional and spec.is_absent(value):
                continue
            spec.rule.check(f"{self.type_name}.{spec.name}", value)
        content.check_fields()

    def to_wire(self, content: BaseContent) -> dict[str, object]:
        """The payload map for validated ``content``; absent fields are left out."""
        wire: dict[str, object] = {"type": self.type_name}
        for spec in self.fields:
            value = getattr(content, spec.name)
            if not (spec.optional and spec.is_absent(value)):
                wire[spec.name] = spec.rule.to_wire(value)
        return wire

    def from_wire(self, wire: dict[Any, Any]) -> BaseContent:
        """Build content from a decoded payload map whose ``type`` is this one.

        Raises:
            InvalidContent: unknown key, missing required field, null or empty optional
                field, or any rule failure (from the constructor).
        """
        for key in wire:
            if key != "type" and key not in self.by_name:
                names = ", ".join(spec.name for spec in self.fields)
                raise InvalidContent(
                    f"{self.type_name}.{_key(key)}: unknown field (a {self.type_name} "
                    f"has only: {names})"
                )
        values: dict[str, Any] = {}
        for spec in self.fields:
            where = f"{self.type_name}.{spec.name}"
            if spec.name not in wire:
                if not spec.optional:
                    raise InvalidContent(f"{where}: required field is missing")
                continue
            value = spec.rule.from_wire(wire[spec.name])
            if spec.optional and (value is None or spec.is_absent(value)):
                sent = "null" if value is None else "an empty array"
                raise InvalidContent(f"{where}: leave the field out instead of sending {sent}")
            values[spec.name] = value
        return self.cls(**values)


# --- Registry ----------------------------------------------------------------------------

_BY_CLASS: dict[type[BaseContent], Schema] = {}
_BY_NAME: dict[str, Schema] = {}
_C = TypeVar("_C", bound=BaseContent)


def register_content_type(cls: type[_C]) -> type[_C]:
    """Class decorator: make ``cls`` a content type that encodes and decodes.

    Apply above ``@dataclass(frozen=True, slots=True, kw_only=True)``. Optional fields
    default to ``None`` (or ``()`` for an ``IdList``); required ones have no default.

    Raises:
        TypeError: the class is not declared as described above.
        ValueError: the ``TYPE`` name is taken or malformed, or the type could encode
            to more than ``MAX_CONTENT_SIZE`` (tighten its limits).
    """
    type_name = cls.__dict__.get("TYPE")
    if not isinstance(type_name, str) or not _TYPE_NAME.fullmatch(type_name):
        raise ValueError(f"{cls.__name__}.TYPE must match {_TYPE_NAME.pattern}")
    if type_name in _BY_NAME:
        raise ValueError(
            f"content type {type_name!r} is already registered by {_BY_NAME[type_name].cls}"
        )
    if not is_dataclass(cls) or "__slots__" not in cls.__dict__:
        raise TypeError(f"{cls.__name__} must be a slotted dataclass")
    if not cls.__dataclass_params__.frozen:  # type: ignore[attr-defined]
        raise TypeError(f"{cls.__name__} must be a frozen dataclass")
    specs: list[FieldSchema] = []
    size = _head_size(len(fields(cls)) + 1) + _text_size("type") + _text_size(type_name)
    for item in fields(cls):
        checker = item.metadata.get(_RULE_KEY)
        if not isinstance(checker, Rule):
            raise TypeError(f"{cls.__name__}.{item.name} has no rule in its metadata")
        if item.name == "type" or not item.kw_only or item.default_factory is not MISSING:
            raise TypeError(f"{cls.__name__}.{item.name}: keyword-only, no 'type', no factory")
        if item.default is MISSING:
            specs.append(FieldSchema(item.name, checker, optional=False, absent=None))
        elif item.default is None or item.default == ():
            specs.append(FieldSchema(item.name, checker, optional=True, absent=item.default))
        else:
            raise TypeError(f"{cls.__name__}.{item.name}: optional fields default to None or ()")
        size += _text_size(item.name) + checker.max_size()
    if size > MAX_CONTENT_SIZE:
        raise ValueError(
            f"content type {type_name!r} could encode to {size} bytes, more than "
            f"MAX_CONTENT_SIZE ({MAX_CONTENT_SIZE}); tighten its limits"
        )
    schema = Schema(type_name, cls, tuple(specs), {s.name: s for s in specs}, size)
    _BY_CLASS[cls] = schema
    _BY_NAME[type_name] = schema
    return cls


def schema_of(key: type | str) -> Schema | None:
    """The schema for a content class or a wire type name, or None if not registered."""
    if isinstance(key, str):
        return _BY_NAME.get(key)
    return _BY_CLASS.get(key)


def content_types() -> Mapping[str, type[BaseContent]]:
    """A read-only snapshot of the registered wire type names and their classes."""
    return MappingProxyType({name: schema.cls for name, schema in _BY_NAME.items()})


# --- Helpers -----------------------------------------------------------------------------


def _head_size(length: int) -> int:
    """Bytes in a CBOR head for a length or unsigned integer (shortest form)."""
    if length < 24:
        return 1
    if length < 2**8:
        return 2
    if length < 2**16:
        return 3
    return 5 if length < 2**32 else 9


def _text_size(text: str) -> int:
    size = len(text.encode("utf-8"))
    return _head_size(size) + size


def _kind(value: object) -> str:
    """A short description of a value's type for messages (never the value itself)."""
    names = {
        type(None): "null",
        bool: "a boolean",
        int: "an integer",
        str: "text",
        bytes: "bytes",
        list: "a list",
        tuple: "a tuple",
        dict: "a map",
    }
    return names.get(type(value), type(value).__name__)


def echo(text: str) -> str:
    """A short, escaped rendering of untrusted text: messages end up in terminals."""
    return repr(text if len(text) <= _ECHO_CHARS else text[:_ECHO_CHARS] + "…")


def _key(key: object) -> str:
    """A map key as it appears in a message."""
    if isinstance(key, str) and key.isascii() and key.isidentifier() and len(key) <= _ECHO_CHARS:
        return key
    return echo(key) if isinstance(key, str) else repr(key)
