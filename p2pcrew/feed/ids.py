"""Textual ids for feeds and entries.

People copy ids between chat apps, e-mail, terminals and QR codes, so the text
form is chosen to survive that:

* a type prefix (``feed_`` / ``entry_``) so a feed id pasted where an entry id
  is expected is caught with a clear message instead of failing later;
* lowercase RFC 4648 base32 without padding: only ``a-z`` and ``2-7``, no
  ``+``/``/``/``=``/``-`` or ``.``, so a double click selects the whole id in
  browsers and terminals (``_`` counts as a word character) and case-mangling
  by phones or spreadsheets does no harm;
* exactly one accepted spelling per id (non-canonical trailing bits are
  rejected), so ids can be compared as strings after parsing.

A 32-byte value encodes to 52 base32 characters, so a feed id is 57 characters
and an entry id 58.
"""

from __future__ import annotations

import base64
import binascii
from typing import Final

from p2pcrew.errors import P2PCrewError

__all__ = [
    "ENTRY_PREFIX",
    "FEED_PREFIX",
    "ID_BYTES",
    "ID_TEXT_CHARS",
    "InvalidId",
    "entry_id_to_text",
    "feed_id_to_text",
    "short",
    "text_to_entry_id",
    "text_to_feed_id",
]

FEED_PREFIX: Final = "feed_"
ENTRY_PREFIX: Final = "entry_"
#: Length in bytes of an Ed25519 public key and of a BLAKE2b-256 entry id.
ID_BYTES: Final = 32
#: Length of the base32 body (without prefix) of a 32-byte id.
ID_TEXT_CHARS: Final = 52
#: Number of body characters kept by :func:`short`.
SHORT_CHARS: Final = 8

_ALPHABET: Final = frozenset("abcdefghijklmnopqrstuvwxyz234567")
# Characters people (or OCR, or fonts) commonly confuse with base32 ones.
_LOOKALIKES: Final = {"0": "o", "1": "l", "8": "b", "9": "g"}
_KINDS: Final = {FEED_PREFIX: "feed", ENTRY_PREFIX: "entry"}
# How much of a bad input to echo back in error messages.
_ECHO_CHARS: Final = 24


class InvalidId(P2PCrewError, ValueError):
    """Raised when text cannot be parsed as an id of the expected kind."""


def _encode(prefix: str, raw: bytes, what: str) -> str:
    if not isinstance(raw, bytes) or len(raw) != ID_BYTES:
        got = f"{len(raw)} bytes" if isinstance(raw, bytes) else type(raw).__name__
        raise ValueError(f"{what} must be {ID_BYTES} bytes, got {got}")
    return prefix + base64.b32encode(raw).decode("ascii").rstrip("=").lower()


def _echo(text: str) -> str:
    """Return a shortened ``repr`` of user input for error messages."""
    if len(text) > _ECHO_CHARS:
        return repr(text[:_ECHO_CHARS] + "…")
    return repr(text)


def _a(kind: str) -> str:
    """Return ``kind`` with its indefinite article ("a feed", "an entry")."""
    return f"an {kind}" if kind[0] in "aeiou" else f"a {kind}"


def _describe_prefix(text: str) -> str:
    """Describe what kind of id ``text`` (already normalised) looks like."""
    for prefix, kind in _KINDS.items():
        if text.startswith(prefix):
            return f"{_a(kind)} id"
    if text.startswith("@") or text.startswith("%"):
        return f"{_echo(text)}, which looks like a Scuttlebutt id, not a p2pcrew one"
    if not text:
        return "an empty string"
    return _echo(text)


def _decode(text: str, prefix: str) -> bytes:
    kind = _KINDS[prefix]
    if not isinstance(text, str):
        raise InvalidId(f"expected {_a(kind)} id as text, got {type(text).__name__}")
    norm = text.strip().lower()
    if not norm.startswith(prefix):
        raise InvalidId(
            f"expected {_a(kind)} id starting with {prefix!r}, got {_describe_prefix(norm)}"
        )
    body = norm[len(prefix) :]
    for pos, ch in enumerate(body):
        if ch not in _ALPHABET:
            hint = ""
            if ch in _LOOKALIKES:
                hint = f" (did you mean {_LOOKALIKES[ch]!r}?)"
            elif ch.isspace():
                hint = " (the id seems to have been split across lines)"
            raise InvalidId(
                f"invalid character {ch!r} at position {len(prefix) + pos} of {kind} id"
                f"{hint}; ids only use the letters a-z and digits 2-7"
            )
    if len(body) != ID_TEXT_CHARS:
        problem = "truncated" if len(body) < ID_TEXT_CHARS else "too long"
        raise InvalidId(
            f"{kind} id is {problem}: expected {ID_TEXT_CHARS} characters after "
            f"{prefix!r}, got {len(body)}; copy the whole id"
        )
    try:
        raw = base64.b32decode(body.upper() + "====")
    except binascii.Error as exc:  # pragma: no cover - alphabet and length checked above
        raise InvalidId(f"{kind} id is not valid base32: {exc}") from None
    # 52 base32 chars carry 260 bits; the last 4 must be zero. Rejecting other
    # spellings keeps exactly one textual form per id.
    if _encode(prefix, raw, kind)[len(prefix) :] != body:
        raise InvalidId(
            f"{kind} id is not in canonical form (its last character is wrong); "
            "it was probably mistyped"
        )
    return raw


def feed_id_to_text(pk: bytes) -> str:
    """Return the textual id (``feed_…``) of a 32-byte Ed25519 public key.

    Raises:
        ValueError: if ``pk`` is not exactly 32 bytes.
    """
    return _encode(FEED_PREFIX, pk, "feed public key")


def text_to_feed_id(s: str) -> bytes:
    """Parse a ``feed_…`` id back into the 32-byte Ed25519 public key.

    Surrounding whitespace is ignored and case does not matter, because ids
    travel through chat apps and phones that mangle both.

    Raises:
        InvalidId: wrong or missing prefix (including an entry id), wrong
            length, characters outside base32, or a non-canonical spelling.
    """
    return _decode(s, FEED_PREFIX)


def entry_id_to_text(h: bytes) -> str:
    """Return the textual id (``entry_…``) of a 32-byte entry hash.

    Raises:
        ValueError: if ``h`` is not exactly 32 bytes.
    """
    return _encode(ENTRY_PREFIX, h, "entry id")


def text_to_entry_id(s: str) -> bytes:
    """Parse an ``entry_…`` id back into the 32-byte entry hash.

    Same leniency as :func:`text_to_feed_id` (whitespace, case).

    Raises:
        InvalidId: wrong or missing prefix (including a feed id), wrong
            length, characters outside base32, or a non-canonical spelling.
    """
    return _decode(s, ENTRY_PREFIX)


def short(s: str) -> str:
    """Return a short display form of a textual id: prefix + first 8 characters.

    Meant for narrow UI columns and log lines where the full id is noise. The
    result is *not* unique and cannot be parsed back; never use it as a key.
    The id is validated first so garbage is not silently displayed as if it
    were an id.

    Raises:
        InvalidId: if ``s`` is not a valid feed or entry id.
    """
    if not isinstance(s, str):
        raise InvalidId(f"expected a feed or entry id as text, got {type(s).__name__}")
    norm = s.strip().lower()
    prefix = ENTRY_PREFIX if norm.startswith(ENTRY_PREFIX) else FEED_PREFIX
    if not norm.startswith(prefix):
        raise InvalidId(
            f"expected a feed or entry id starting with {FEED_PREFIX!r} or "
            f"{ENTRY_PREFIX!r}, got {_describe_prefix(norm)}"
        )
    _decode(norm, prefix)
    return norm[: len(prefix) + SHORT_CHARS]
