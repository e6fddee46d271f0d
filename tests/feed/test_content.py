"""Content types: schema validation on write (construction, encode) and on read (decode)."""

from __future__ import annotations

import dataclasses
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from p2pcrew import codec
from p2pcrew.crew.delivery import CrewReceipt
from p2pcrew.feed import content_schema
from p2pcrew.feed.content import (
    CONTACT_ACTIONS,
    MAX_ABOUT_DESCRIPTION_CHARS,
    MAX_ABOUT_NAME_CHARS,
    MAX_CONTENT_SIZE,
    MAX_DELETE_REASON_CHARS,
    MAX_POST_MENTIONS,
    MAX_POST_TEXT_BYTES,
    MAX_POST_TEXT_CHARS,
    MAX_REACTION_EMOJI_CHARS,
    MAX_REQUEST_BODY_BYTES,
    MAX_REQUEST_BODY_CHARS,
    MAX_REQUEST_PLACE_CHARS,
    MAX_REQUEST_TITLE_CHARS,
    MAX_REQUEST_UPDATE_NOTE_CHARS,
    MAX_TIME_MS,
    REQUEST_ACTIONS,
    REQUEST_CATEGORIES,
    REQUEST_KINDS,
    About,
    BaseContent,
    Contact,
    Content,
    Delete,
    Post,
    Reaction,
    Request,
    RequestUpdate,
    UnknownContentType,
    content_types,
    decode_content,
    encode_content,
    now_ms,
    register_content_type,
)
from p2pcrew.feed.content_schema import Id, Text, rule, schema_of
from p2pcrew.feed.entry import MAX_PAYLOAD_SIZE
from p2pcrew.feed.errors import InvalidContent

T = 1_700_000_000_000
E1, E2, E3 = (bytes([n]) * 32 for n in (1, 2, 3))  # entry ids
F1, F2, F3 = (bytes([n]) * 32 for n in (0xF1, 0xF2, 0xF3))  # feed ids
WIDE = "\U0001f600"  # 4 bytes in UTF-8: the worst case per code point
ALL_TYPES: tuple[type[BaseContent], ...] = (
    About,
    Contact,
    Post,
    Request,
    RequestUpdate,
    Reaction,
    Delete,
)


# --- hand-made CBOR, so tests can write bytes our encoder never would ---------------------


def _head(major: int, n: int) -> bytes:
    if n < 24:
        return bytes([major << 5 | n])
    for extra, size in ((24, 1), (25, 2), (26, 4), (27, 8)):
        if n < 256**size:
            return bytes([major << 5 | extra]) + n.to_bytes(size, "big")
    raise ValueError(n)


def _uint(n: int) -> bytes:
    return _head(0, n)


def _bstr(data: bytes) -> bytes:
    return _head(2, len(data)) + data


def _tstr(text: str) -> bytes:
    raw = text.encode()
    return _head(3, len(raw)) + raw


def _map(*pairs: tuple[bytes, bytes]) -> bytes:
    return _head(5, len(pairs)) + b"".join(k + v for k, v in pairs)


def _reaction(*order: str) -> bytes:
    items = {
        "time": _uint(T),
        "type": _tstr("reaction"),
        "emoji": _tstr("ok"),
        "target": _bstr(E1),
    }
    return _map(*((_tstr(k), items[k]) for k in order))


CANONICAL_REACTION = _reaction("time", "type", "emoji", "target")


# --- examples -------------------------------------------------------------------------------

MINIMAL: list[Content] = [
    About(time=0, name="Ana"),
    About(time=T, description="Bikes, tools, Saturday mornings."),
    About(time=T, description=""),
    Contact(time=T, contact=F1, action="follow"),
    Post(time=T, text="Anyone got a drill?"),
    Request(time=T, kind="ask", title="Drill for Saturday", category="tools"),
    RequestUpdate(time=T, request=E1, action="claim"),
    Reaction(time=T, target=E1, emoji="\U0001f44d"),
    Delete(time=T, target=E1),
]
FULL: list[Content] = [
    About(time=T, name="Ana", description="Line one\n\tindented"),
    *(Contact(time=T, contact=F2, action=a) for a in CONTACT_ACTIONS),
    Post(time=T, text="Reply\nwith\ttabs", root=E1, reply_to=E2, mentions=(F1, F2, F3)),
    Post(time=T, text="Reply to the root", root=E1),
    Request(
        time=T,
        kind="offer",
        title="Spare room",
        category="housing",
        body="Two nights,\nno pets.",
        needed_by=T + 86_400_000,
        place="near the station",
    ),
    *(
        Request(time=T, kind=k, title="x", category=c)
        for k in REQUEST_KINDS
        for c in REQUEST_CATEGORIES
    ),
    *(RequestUpdate(time=T, request=E1, action=a, note="on my way") for a in REQUEST_ACTIONS),
    Reaction(time=MAX_TIME_MS, target=E2, emoji="\U0001f469\u200d\U0001f527"),  # ZWJ sequence
    Delete(time=T, target=E3, reason="posted in the wrong crew"),
]


def _maximal(cls: type[BaseContent]) -> BaseContent:
    """Every field present at its limit, in 4-byte characters wherever text allows."""

    def wide(chars: int, max_bytes: int | None = None) -> str:
        return WIDE * min(chars, (max_bytes or 4 * chars) // 4)

    mentions = tuple(i.to_bytes(32, "big") for i in range(MAX_POST_MENTIONS))
    examples: dict[type[BaseContent], BaseContent] = {
        About: About(
            time=MAX_TIME_MS,
            name=wide(MAX_ABOUT_NAME_CHARS),
            description=wide(MAX_ABOUT_DESCRIPTION_CHARS),
        ),
        Contact: Contact(time=MAX_TIME_MS, contact=F1, action="unfollow"),
        Post: Post(
            time=MAX_TIME_MS,
            text=wide(MAX_POST_TEXT_CHARS, MAX_POST_TEXT_BYTES),
            root=E1,
            reply_to=E2,
            mentions=mentions,
            crew=E2,
        ),
        Request: Request(
            time=MAX_TIME_MS,
            kind="offer",
            title=wide(MAX_REQUEST_TITLE_CHARS),
            category="transport",
            body=wide(MAX_REQUEST_BODY_CHARS, MAX_REQUEST_BODY_BYTES),
            needed_by=MAX_TIME_MS,
            place=wide(MAX_REQUEST_PLACE_CHARS),
            crew=E2,
        ),
        RequestUpdate: RequestUpdate(
            time=MAX_TIME_MS,
            request=E1,
            action="withdraw",
            note=wide(MAX_REQUEST_UPDATE_NOTE_CHARS),
            crew=E2,
        ),
        Reaction: Reaction(
            time=MAX_TIME_MS, target=E1, emoji=wide(MAX_REACTION_EMOJI_CHARS), crew=E2
        ),
        Delete: Delete(time=MAX_TIME_MS, target=E1, reason=wide(MAX_DELETE_REASON_CHARS)),
    }
    return examples[cls]


def _wire(content: BaseContent) -> dict[str, Any]:
    result = codec.decode(encode_content(content))  # type: ignore[arg-type]
    assert isinstance(result, dict)
    return result


def _payload(**fields: Any) -> bytes:
    return codec.encode(fields)


def _rejects(payload: bytes, *fragments: str) -> InvalidContent:
    with pytest.raises(InvalidContent) as info:
        decode_content(payload)
    for fragment in fragments:
        assert fragment in str(info.value), (fragment, str(info.value))
    return info.value


# --- round trips ----------------------------------------------------------------------------


@pytest.mark.parametrize("content", MINIMAL + FULL, ids=repr)
def test_round_trip(content: Content) -> None:
    payload = encode_content(content)
    decoded = decode_content(payload)
    assert decoded == content
    assert type(decoded) is type(content)
    assert encode_content(decoded) == payload
    assert codec.encode(codec.decode(payload)) == payload  # canonical


@pytest.mark.parametrize("content", MINIMAL, ids=repr)
def test_absent_optional_fields_are_left_out_not_null(content: Content) -> None:
    wire = _wire(content)
    assert wire["type"] == content.TYPE
    assert wire["time"] == content.time
    assert None not in wire.values()
    assert [] not in wire.values()
    present = {
        f.name for f in dataclasses.fields(content) if getattr(content, f.name) not in (None, ())
    }
    assert set(wire) == present | {"type"}


def test_wire_form_of_a_full_post() -> None:
    post = Post(time=T, text="hi", root=E1, reply_to=E2, mentions=(F1, F2))
    assert _wire(post) == {
        "type": "post",
        "time": T,
        "text": "hi",
        "root": E1,
        "reply_to": E2,
        "mentions": [F1, F2],
    }


def test_empty_description_clears_and_is_encoded() -> None:
    assert _wire(About(time=T, description="")) == {"type": "about", "time": T, "description": ""}


def test_type_names_and_registry() -> None:
    names: dict[type[BaseContent], str] = {
        About: "about",
        Contact: "contact",
        Post: "post",
        Request: "request",
        RequestUpdate: "request_update",
        Reaction: "reaction",
        Delete: "delete",
        CrewReceipt: "crew_receipt",
    }
    for cls, name in names.items():
        assert name == cls.TYPE
    assert dict(content_types()) == {name: cls for cls, name in names.items()}


def test_enumerations() -> None:
    assert CONTACT_ACTIONS == ("follow", "unfollow", "block", "unblock")
    assert REQUEST_KINDS == ("ask", "offer")
    assert REQUEST_CATEGORIES == (
        "tools",
        "food",
        "transport",
        "housing",
        "care",
        "skills",
        "money",
        "other",
    )
    assert REQUEST_ACTIONS == ("claim", "unclaim", "fulfil", "withdraw", "reopen")


def test_instances_are_frozen_slotted_and_keyword_only() -> None:
    post = Post(time=T, text="x")
    with pytest.raises(dataclasses.FrozenInstanceError):
        post.text = "y"  # type: ignore[misc]
    assert not hasattr(post, "__dict__")
    with pytest.raises(TypeError):
        Post(T, "x")  # type: ignore[call-arg]
    assert post.root is None and post.reply_to is None and post.mentions == ()
    assert Request(time=T, kind="ask", title="t", category="food").body is None


def test_now_ms() -> None:
    before = time.time_ns() // 1_000_000
    value = now_ms()
    after = time.time_ns() // 1_000_000
    assert type(value) is int
    assert before <= value <= after


# --- every rule, on write (construction) and on read (decode) -------------------------------

BASE: dict[type[BaseContent], dict[str, Any]] = {
    About: {"time": T, "name": "Ana"},
    Contact: {"time": T, "contact": F1, "action": "follow"},
    Post: {"time": T, "text": "hi"},
    Request: {"time": T, "kind": "ask", "title": "t", "category": "tools"},
    RequestUpdate: {"time": T, "request": E1, "action": "claim"},
    Reaction: {"time": T, "target": E1, "emoji": "+1"},
    Delete: {"time": T, "target": E1},
}

# (type, field, bad value in wire form, fragment of the message after "type.field: ")
BAD: list[tuple[type[BaseContent], str, Any, str]] = [
    *(
        (cls, "time", value, "milliseconds")
        for cls in ALL_TYPES
        for value in (-1, MAX_TIME_MS + 1, 2**64 - 1, "1", True, b"\x01")
    ),
    (About, "name", "", "1 to 64 characters long, got 0"),
    (About, "name", "n" * 65, "got 65"),
    (About, "name", "a\nb", "control character U+000A at position 1"),
    (About, "name", "a\tb", "U+0009"),
    (About, "name", 7, "must be text"),
    (About, "name", b"Ana", "must be text"),
    (About, "description", "d" * (MAX_ABOUT_DESCRIPTION_CHARS + 1), "at most 1000"),
    (About, "description", "crlf\r\n", "U+000D"),
    (About, "description", "nul\x00", "U+0000"),
    (About, "description", "del\x7f", "U+007F"),
    (About, "description", "c1\x85", "U+0085"),
    (About, "description", "esc\x1b[31m", "U+001B"),
    (Contact, "contact", F1[:31], "32-byte feed id, got 31 bytes"),
    (Contact, "contact", F1 + b"\x00", "got 33 bytes"),
    (Contact, "contact", b"", "got 0 bytes"),
    (Contact, "contact", F1.hex(), "must be a 32-byte feed id (bytes), got text"),
    (Contact, "action", "like", "must be one of 'follow'"),
    (Contact, "action", "Follow", "got 'Follow'"),
    (Contact, "action", 1, "got an integer"),
    (Post, "text", "", "1 to 8000 characters long, got 0"),
    (Post, "text", "x" * (MAX_POST_TEXT_CHARS + 1), "got 8001"),
    (Post, "text", WIDE * (MAX_POST_TEXT_BYTES // 4 + 1), "at most 12000 bytes in UTF-8"),
    (Post, "text", "a\r\nb", "U+000D at position 1"),
    (Post, "text", "bell\x07", "only newline and tab"),
    (Post, "text", ["hi"], "must be text, got a list"),
    (Post, "root", E1[:16], "32-byte entry id, got 16 bytes"),
    (Post, "root", "entry_x", "got text"),
    (Post, "mentions", [F1, F1], "mentions[1]: duplicate feed id"),
    (Post, "mentions", [F1, F2[:31]], "mentions[1]: must be a 32-byte feed id"),
    (
        Post,
        "mentions",
        [i.to_bytes(32, "big") for i in range(MAX_POST_MENTIONS + 1)],
        "1 to 32 feed ids, got 33",
    ),
    (Post, "mentions", F1, "must be a tuple of feed ids"),
    (Post, "mentions", {"a": F1}, "got a map"),
    (Request, "kind", "need", "must be one of 'ask', 'offer'"),
    (Request, "title", "", "got 0"),
    (Request, "title", "t" * (MAX_REQUEST_TITLE_CHARS + 1), "1 to 120 characters"),
    (Request, "title", "two\nlines", "one line only"),
    (Request, "category", "weapons", "'tools'"),
    (Request, "category", "", "got ''"),
    (Request, "body", "", "1 to 4000 characters long, got 0"),
    (Request, "body", "b" * (MAX_REQUEST_BODY_CHARS + 1), "got 4001"),
    (Request, "body", WIDE * (MAX_REQUEST_BODY_BYTES // 4 + 1), "at most 12000 bytes"),
    (Request, "body", "ctl\x01", "U+0001"),
    (Request, "needed_by", -1, "milliseconds"),
    (Request, "needed_by", "saturday", "got text"),
    (Request, "place", "", "got 0"),
    (Request, "place", "p" * (MAX_REQUEST_PLACE_CHARS + 1), "got 121"),
    (Request, "place", "corner\nof x", "U+000A"),
    (RequestUpdate, "request", b"", "32-byte entry id, got 0 bytes"),
    (RequestUpdate, "action", "done", "'claim', 'unclaim', 'fulfil', 'withdraw', 'reopen'"),
    (RequestUpdate, "action", "fulfill", "got 'fulfill'"),
    (RequestUpdate, "note", "", "got 0"),
    (RequestUpdate, "note", "n" * (MAX_REQUEST_UPDATE_NOTE_CHARS + 1), "1 to 500"),
    (RequestUpdate, "note", "a\nb", "one line only"),
    (Reaction, "target", E1 * 2, "got 64 bytes"),
    (Reaction, "emoji", "", "1 to 16 characters long, got 0"),
    (Reaction, "emoji", "x" * (MAX_REACTION_EMOJI_CHARS + 1), "got 17"),
    (Reaction, "emoji", "\n", "U+000A"),
    (Reaction, "emoji", None, "must be text, got null"),
    (Delete, "target", None, "got null"),
    (Delete, "reason", "", "got 0"),
    (Delete, "reason", "r" * (MAX_DELETE_REASON_CHARS + 1), "1 to 200"),
    (Delete, "reason", "x\ty", "U+0009"),
]


def _case_id(case: tuple[type[BaseContent], str, Any, str]) -> str:
    cls, name, value, _ = case
    shown = repr(value)
    return f"{cls.TYPE}.{name}={shown[:20]}"


@pytest.mark.parametrize("case", BAD, ids=_case_id)
def test_rule_rejected_on_write(case: tuple[type[BaseContent], str, Any, str]) -> None:
    cls, name, value, fragment = case
    if name == "mentions" and type(value) is list:
        value = tuple(value)  # the Python form of an array of ids
    with pytest.raises(InvalidContent) as info:
        cls(**{**BASE[cls], name: value})
    assert str(info.value).startswith(f"{cls.TYPE}.{name}"), str(info.value)
    assert fragment in str(info.value), str(info.value)


@pytest.mark.parametrize("case", BAD, ids=_case_id)
def test_rule_rejected_on_read(case: tuple[type[BaseContent], str, Any, str]) -> None:
    cls, name, value, fragment = case
    if value is None:  # null on the wire has its own message
        fragment = "must be text, got null" if name == "emoji" else "got null"
    error = _rejects(_payload(**{**BASE[cls], "type": cls.TYPE, name: value}), fragment)
    assert str(error).startswith(f"{cls.TYPE}.{name}"), str(error)
    assert error.rule == "invalid-content"


@pytest.mark.parametrize("cls", ALL_TYPES, ids=lambda c: c.TYPE)
def test_base_examples_are_valid(cls: type[BaseContent]) -> None:
    payload = _payload(**BASE[cls], type=cls.TYPE)
    assert encode_content(decode_content(payload)) == payload


def test_lone_surrogate_rejected_on_write() -> None:
    with pytest.raises(InvalidContent, match=r"^post\.text: lone surrogate U\+D800 at position 2"):
        Post(time=T, text="ab\ud800")


def test_invalid_utf8_rejected_on_read() -> None:
    payload = _map(
        (_tstr("text"), _head(3, 2) + b"\xc3\x28"),
        (_tstr("time"), _uint(T)),
        (_tstr("type"), _tstr("post")),
    )
    _rejects(payload, "payload:")


def test_about_needs_name_or_description() -> None:
    with pytest.raises(InvalidContent, match=r"^about: needs at least one of name, description"):
        About(time=T)
    _rejects(_payload(type="about", time=T), "about: needs at least one of name, description")


def test_reply_to_requires_root() -> None:
    with pytest.raises(InvalidContent, match=r"^post\.reply_to: requires root"):
        Post(time=T, text="x", reply_to=E1)
    _rejects(_payload(type="post", time=T, text="x", reply_to=E1), "post.reply_to: requires root")


def test_limits_are_inclusive() -> None:
    assert decode_content(encode_content(Post(time=T, text="x" * MAX_POST_TEXT_CHARS)))
    assert Post(time=T, text=WIDE * (MAX_POST_TEXT_BYTES // 4))
    assert Post(time=T, text="x", mentions=tuple(bytes([i]) * 32 for i in range(32)))
    assert Reaction(time=T, target=E1, emoji="x" * MAX_REACTION_EMOJI_CHARS)
    assert About(time=MAX_TIME_MS, name="n" * MAX_ABOUT_NAME_CHARS)
    assert Request(time=T, kind="ask", title="t", category="care", needed_by=0)


def test_nothing_is_stripped_or_normalised() -> None:
    text = "  spaced\t \n\n e\u0301 \u00e9 \u200b "
    assert decode_content(encode_content(Post(time=T, text=text))) == Post(time=T, text=text)


@pytest.mark.parametrize(
    ("cls", "name"),
    [
        (cls, spec.name)
        for cls in ALL_TYPES
        for spec in schema_of(cls).fields  # type: ignore[union-attr]
        if not spec.optional
    ],
    ids=lambda x: getattr(x, "TYPE", x),
)
def test_missing_required_field(cls: type[BaseContent], name: str) -> None:
    fields = {**BASE[cls], "type": cls.TYPE}
    del fields[name]
    error = _rejects(_payload(**fields), f"{cls.TYPE}.{name}: required field is missing")
    assert str(error).startswith(cls.TYPE)
    with pytest.raises(TypeError):  # on write, Python itself refuses
        cls(**{k: v for k, v in BASE[cls].items() if k != name})


@pytest.mark.parametrize(
    ("cls", "name"),
    [(cls, spec.name) for cls in ALL_TYPES for spec in schema_of(cls).fields if spec.optional],  # type: ignore[union-attr]
    ids=lambda x: getattr(x, "TYPE", x),
)
def test_optional_field_sent_as_null_or_empty(cls: type[BaseContent], name: str) -> None:
    fields = {**BASE[cls], "type": cls.TYPE, name: None}
    _rejects(_payload(**fields), f"{cls.TYPE}.{name}: leave the field out instead of sending null")
    if name == "mentions":
        fields[name] = []
        _rejects(_payload(**fields), "post.mentions: leave the field out", "empty array")


# --- unknown keys and types ---------------------------------------------------------------


@pytest.mark.parametrize("cls", ALL_TYPES, ids=lambda c: c.TYPE)
def test_unknown_key(cls: type[BaseContent]) -> None:
    error = _rejects(
        _payload(**BASE[cls], type=cls.TYPE, colour="red"),
        f"{cls.TYPE}.colour: unknown field",
        "has only: time,",
    )
    assert not isinstance(error, UnknownContentType)


def test_unknown_keys_that_are_not_plain_names() -> None:
    _rejects(codec.encode({"type": "post", "time": T, "text": "x", 7: 1}), "post.7: unknown field")
    _rejects(_payload(type="post", time=T, text="x", TEXT="x"), "post.TEXT: unknown field")
    error = _rejects(
        codec.encode({"type": "post", "time": T, "text": "x", "\x1b]0;pwned\x07" + "k" * 99: 1})
    )
    message = str(error)
    assert "\x1b" not in message and "\x07" not in message
    assert "\\x1b" in message and "…" in message and "k" * 30 not in message


def test_wire_key_type_is_not_a_field() -> None:
    with pytest.raises(TypeError):
        Post(time=T, text="x", type="post")  # type: ignore[call-arg]


@pytest.mark.parametrize("name", ["poll", "Post", "post ", "", "crew_invite"])
def test_unknown_type(name: str) -> None:
    error = _rejects(_payload(type=name, time=T), "payload.type: unknown content type", repr(name))
    assert isinstance(error, UnknownContentType)
    assert isinstance(error, InvalidContent)
    known = "about, contact, crew_receipt, delete, post, reaction, request, request_update"
    assert known in str(error)


def test_unknown_type_name_is_escaped_and_shortened() -> None:
    message = str(_rejects(_payload(type="\x1b[2J" + "z" * 500, time=T)))
    assert "\x1b" not in message and "z" * 30 not in message


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        ({"time": T, "text": "x"}, "payload.type: missing"),
        ({"type": 1, "time": T}, "payload.type: must be text, got int"),
        ({"type": b"post", "time": T}, "payload.type: must be text, got bytes"),
        ({"type": None, "time": T}, "payload.type: must be text"),
        (["post", T, "x"], "payload: must be a CBOR map, got list"),
        ("post", "payload: must be a CBOR map, got str"),
        (None, "payload: must be a CBOR map"),
        ({}, "payload.type: missing"),
    ],
)
def test_not_a_content_map(value: Any, fragment: str) -> None:
    error = _rejects(codec.encode(value), fragment)
    assert not isinstance(error, UnknownContentType)


# --- strict CBOR ----------------------------------------------------------------------------


def test_hand_encoded_reaction_matches_our_encoder() -> None:
    assert encode_content(Reaction(time=T, target=E1, emoji="ok")) == CANONICAL_REACTION
    assert decode_content(CANONICAL_REACTION) == Reaction(time=T, target=E1, emoji="ok")


@pytest.mark.parametrize(
    "order",
    [
        ("type", "time", "emoji", "target"),  # bytewise order broken
        ("time", "type", "target", "emoji"),  # length-first order broken
        ("emoji", "target", "time", "type"),  # sorted by length, longest first
    ],
)
def test_unsorted_map_keys_rejected(order: tuple[str, ...]) -> None:
    _rejects(_reaction(*order), "payload:", "canonical")


@pytest.mark.parametrize(
    ("payload", "fragment"),
    [
        (  # time as an 8-byte integer where 1 byte suffices
            _map(
                (_tstr("time"), b"\x1b" + (5).to_bytes(8, "big")),
                (_tstr("type"), _tstr("reaction")),
                (_tstr("emoji"), _tstr("ok")),
                (_tstr("target"), _bstr(E1)),
            ),
            "canonical",
        ),
        (CANONICAL_REACTION + b"\x00", "trailing"),
        (CANONICAL_REACTION[:-1], "payload:"),
        (b"\xbf" + CANONICAL_REACTION[1:] + b"\xff", "payload:"),  # indefinite-length map
        (b"\xd8\x20" + CANONICAL_REACTION, "tag"),  # tagged
        (
            _map(
                (_tstr("time"), b"\xfb" + b"\x42\x78\xbc\xfe\x56\x80\x00\x00"),  # float time
                (_tstr("type"), _tstr("reaction")),
                (_tstr("emoji"), _tstr("ok")),
                (_tstr("target"), _bstr(E1)),
            ),
            "payload:",
        ),
        (  # duplicate key
            _map(
                (_tstr("time"), _uint(T)),
                (_tstr("time"), _uint(T)),
                (_tstr("type"), _tstr("reaction")),
                (_tstr("emoji"), _tstr("ok")),
                (_tstr("target"), _bstr(E1)),
            ),
            "payload:",
        ),
        (b"", "payload:"),
        (b"\xff\xff", "payload:"),
        (b"{}", "payload:"),
    ],
    ids=[
        "long-int",
        "trailing",
        "truncated",
        "indefinite",
        "tag",
        "float",
        "duplicate-key",
        "empty",
        "garbage",
        "json",
    ],
)
def test_non_canonical_or_malformed_payload(payload: bytes, fragment: str) -> None:
    error = _rejects(payload, fragment)
    assert isinstance(error.__cause__, codec.CodecError)


def test_oversized_payload_rejected_before_decoding() -> None:
    payload = _payload(type="post", time=T, text="x" * MAX_CONTENT_SIZE)
    _rejects(payload, "payload:", f"maximum of {MAX_CONTENT_SIZE}")
    _rejects(b"\x00" * (MAX_PAYLOAD_SIZE + 1), "payload:", "maximum")


# --- size budget ----------------------------------------------------------------------------


@pytest.mark.parametrize("cls", ALL_TYPES, ids=lambda c: c.TYPE)
def test_maximal_content_fits_in_a_payload(cls: type[BaseContent]) -> None:
    content = _maximal(cls)
    payload = encode_content(content)  # type: ignore[arg-type]
    assert len(payload) <= MAX_CONTENT_SIZE < MAX_PAYLOAD_SIZE
    schema = schema_of(cls)
    assert schema is not None
    assert len(payload) == schema.max_size  # the registry's bound is exact, not a guess
    assert decode_content(payload) == content


def test_budget_leaves_room_for_a_crew_envelope() -> None:
    assert MAX_CONTENT_SIZE <= MAX_PAYLOAD_SIZE - 1024


# --- write-side guards -------------------------------------------------------------------


def test_encode_revalidates_a_tampered_instance() -> None:
    post = Post(time=T, text="x")
    object.__setattr__(post, "text", "")
    with pytest.raises(InvalidContent, match=r"^post\.text"):
        encode_content(post)
    about = About(time=T, name="a")
    object.__setattr__(about, "name", None)
    with pytest.raises(InvalidContent, match=r"^about: needs at least one"):
        encode_content(about)


def test_encode_rejects_non_content() -> None:
    with pytest.raises(InvalidContent, match="not a registered content type"):
        encode_content("post")  # type: ignore[arg-type]


def test_mentions_must_be_a_tuple_in_python() -> None:
    with pytest.raises(InvalidContent, match=r"^post\.mentions: must be a tuple"):
        Post(time=T, text="x", mentions=[F1])  # type: ignore[arg-type]
    with pytest.raises(InvalidContent, match=r"^post\.mentions: .*got null"):
        Post(time=T, text="x", mentions=None)  # type: ignore[arg-type]


def test_ids_must_be_bytes_not_bytearray() -> None:
    with pytest.raises(InvalidContent, match=r"^delete\.target: .*\(bytes\), got bytearray"):
        Delete(time=T, target=bytearray(E1))  # type: ignore[arg-type]


# --- the registry: where crew types will be added --------------------------------------------


@pytest.fixture
def scratch_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    """Register test-only types without leaking them into other tests."""
    monkeypatch.setattr(content_schema, "_BY_CLASS", dict(content_schema._BY_CLASS))
    monkeypatch.setattr(content_schema, "_BY_NAME", dict(content_schema._BY_NAME))


@pytest.mark.usefixtures("scratch_registry")
def test_registering_a_new_type() -> None:
    @register_content_type
    @dataclass(frozen=True, slots=True, kw_only=True)
    class CrewNote(BaseContent):
        TYPE: ClassVar[str] = "crew_note"
        crew: bytes = field(metadata=rule(Id("crew id")))
        note: str | None = field(default=None, metadata=rule(Text(1, 50)))

    note = CrewNote(time=T, crew=E1, note="hello")
    payload = encode_content(note)  # type: ignore[arg-type]
    decoded: object = decode_content(payload)
    assert decoded == note
    assert content_types()["crew_note"] is CrewNote
    bad_crew = _payload(type="crew_note", time=T, crew=E1[:3])
    _rejects(bad_crew, "crew_note.crew: must be a 32-byte crew id")


@pytest.mark.usefixtures("scratch_registry")
def test_registration_refuses_bad_declarations() -> None:
    def declare(type_name: str, limit: int = 10, with_rule: bool = True) -> Callable[[], Any]:
        def make() -> Any:
            @dataclass(frozen=True, slots=True, kw_only=True)
            class Thing(BaseContent):
                TYPE: ClassVar[str] = type_name
                words: str = field(metadata=rule(Text(1, limit)) if with_rule else {})

            return register_content_type(Thing)

        return make

    with pytest.raises(ValueError, match="already registered"):
        declare("post")()
    with pytest.raises(ValueError, match="TYPE must match"):
        declare("Bad Name")()
    with pytest.raises(ValueError, match="tighten its limits"):
        declare("huge", limit=MAX_CONTENT_SIZE)()
    with pytest.raises(TypeError, match="has no rule"):
        declare("norule", with_rule=False)()

    @dataclass(frozen=True, slots=True, kw_only=True)
    class Unregistered(BaseContent):
        TYPE: ClassVar[str] = "unregistered"

    with pytest.raises(TypeError, match="not a registered content type"):
        Unregistered(time=T)


# --- property-based ---------------------------------------------------------------------------

ids = st.binary(min_size=32, max_size=32)
times = st.integers(0, MAX_TIME_MS)


def texts(min_size: int, max_size: int, *, multiline: bool) -> st.SearchStrategy[str]:
    alphabet = st.characters(exclude_categories=("Cc", "Cs"))
    if multiline:
        alphabet = alphabet | st.sampled_from("\n\t")
    return st.text(alphabet, min_size=min_size, max_size=max_size)


@st.composite
def posts(draw: st.DrawFn) -> Post:
    root = draw(st.none() | ids)
    return Post(
        time=draw(times),
        text=draw(texts(1, 300, multiline=True) | st.just("x" * MAX_POST_TEXT_CHARS)),
        root=root,
        reply_to=None if root is None else draw(st.none() | ids),
        mentions=tuple(draw(st.lists(ids, max_size=MAX_POST_MENTIONS, unique=True))),
    )


@st.composite
def requests(draw: st.DrawFn) -> Request:
    return Request(
        time=draw(times),
        kind=draw(st.sampled_from(REQUEST_KINDS)),
        title=draw(texts(1, MAX_REQUEST_TITLE_CHARS, multiline=False)),
        category=draw(st.sampled_from(REQUEST_CATEGORIES)),
        body=draw(st.none() | texts(1, 300, multiline=True)),
        needed_by=draw(st.none() | times),
        place=draw(st.none() | texts(1, MAX_REQUEST_PLACE_CHARS, multiline=False)),
    )


@given(posts() | requests())
@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
def test_property_round_trip(content: Post | Request) -> None:
    payload = encode_content(content)
    assert len(payload) <= MAX_CONTENT_SIZE
    assert decode_content(payload) == content
    assert encode_content(decode_content(payload)) == payload


@given(st.binary(max_size=200))
def test_property_arbitrary_bytes_only_raise_invalid_content(data: bytes) -> None:
    try:
        content = decode_content(data)
    except InvalidContent:
        return
    assert encode_content(content) == data


_scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(2**64), 2**64 - 1)
    | st.sampled_from([0, -1, MAX_TIME_MS, MAX_TIME_MS + 1, T])
    | st.binary(max_size=40)
    | ids
    | st.text(max_size=20)
    | st.sampled_from([*REQUEST_CATEGORIES, *CONTACT_ACTIONS, *REQUEST_ACTIONS, "ask", "x"])
)
_values = st.recursive(
    _scalars,
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(st.text(max_size=8) | st.integers(0, 9), inner, max_size=2)
    ),
    max_leaves=6,
)
_field_names = sorted(
    {spec.name for cls in ALL_TYPES for spec in schema_of(cls).fields}  # type: ignore[union-attr]
)


@given(
    st.sampled_from(ALL_TYPES),
    st.dictionaries(st.sampled_from([*_field_names, "extra"]), _values, max_size=3),
    st.sets(st.sampled_from(_field_names), max_size=2),
)
@settings(max_examples=500, suppress_health_check=[HealthCheck.too_slow])
def test_property_arbitrary_maps_are_rejected_cleanly_or_round_trip(
    cls: type[BaseContent], changes: dict[str, Any], removed: set[str]
) -> None:
    """Start from a valid map, overwrite and drop fields: never a crash, never laxity."""
    fields = {k: v for k, v in {**BASE[cls], **changes}.items() if k not in removed}
    payload = codec.encode({**fields, "type": cls.TYPE})
    try:
        content = decode_content(payload)
    except InvalidContent as exc:
        assert re.match(rf"^({cls.TYPE}|payload)\b", str(exc)), str(exc)
        return
    assert type(content) is cls
    assert encode_content(content) == payload


@given(st.sampled_from(MINIMAL + FULL), st.data())
def test_property_mutated_payloads_are_rejected_cleanly_or_round_trip(
    content: Content, data: st.DataObject
) -> None:
    payload = bytearray(encode_content(content))
    index = data.draw(st.integers(0, len(payload) - 1))
    payload[index] = data.draw(st.integers(0, 255))
    try:
        decoded = decode_content(bytes(payload))
    except InvalidContent:
        return
    assert encode_content(decoded) == bytes(payload)
