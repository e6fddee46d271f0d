"""The ``crew_state`` map: the decrypted content of a key-distribution envelope.

Each crew_state is one link of a crew's chain of epochs (``docs/crews.md`` gives the
rules). It carries the whole state, not a delta, so that a reader needs only the chain,
never a replay of side messages. Decoding is as strict as the content module's: canonical
CBOR, no unknown keys, no null or empty optional fields, every field type-, length- and
enum-checked, so each state has exactly one encoding.

The crew_state type is deliberately *not* in the global content registry: it is only
meaningful inside an envelope, sealed under its own epoch key, and a plaintext one in a
public feed must never be mistaken for crew state.

``keys`` holds this state's epoch key and (from epoch 1) the previous one. The previous
key is what lets a newcomer walk the chain back to the crew's creation: holding epoch
key ``e - 1`` opens the crew_state of epoch ``e - 1`` (it is sealed under that key),
which in turn holds key ``e - 2``, and so on.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, fields
from types import MappingProxyType
from typing import Any, ClassVar, Final, Literal, TypeAlias, get_args

from p2pcrew import codec
from p2pcrew.crew.envelope import (
    KEY_SIZE,
    MAX_RECIPIENTS,
    OpenedEnvelope,
    is_envelope,
    max_content_size,
    open_envelope,
)
from p2pcrew.crew.errors import EnvelopeMalformed, InvalidCrewState
from p2pcrew.feed.content_schema import MAX_TIME_MS, Choice, Id, IdList, Millis, Text
from p2pcrew.feed.errors import InvalidContent

__all__ = [
    "CREW_OPS",
    "MAX_CREW_DESCRIPTION_CHARS",
    "MAX_CREW_NAME_CHARS",
    "MAX_MEMBERS",
    "MAX_STATE_SIZE",
    "CrewOp",
    "CrewStateContent",
    "Unlocked",
    "crew_id_for",
    "decode_crew_state",
    "encode_crew_state",
    "unlock",
]

CrewOp: TypeAlias = Literal["create", "add", "remove", "leave", "rename", "rotate"]
CREW_OPS: Final[tuple[CrewOp, ...]] = get_args(CrewOp)
MAX_MEMBERS: Final = MAX_RECIPIENTS
"""A crew state is sealed to every member, and an envelope has at most 64 slots."""
MAX_CREW_NAME_CHARS: Final = 64
MAX_CREW_DESCRIPTION_CHARS: Final = 500
MAX_EPOCH: Final = MAX_TIME_MS
"""Epochs are counters; 2^53 - 1 keeps them exact in JSON and SQLite."""
MAX_STATE_SIZE: Final = max_content_size(MAX_RECIPIENTS)
"""A crew_state must fit an envelope with 64 slots; tests prove the maximum does."""
TYPE_NAME: Final = "crew_state"
_CREW_ID_PERSON: Final = b"p2pcrew crew id"

_REQUIRED: Final = ("time", "crew", "epoch", "op", "name", "members", "keys")
_OPTIONAL: Final = ("prev", "description")
_RULES: Final = {
    "time": Millis(),
    "crew": Id("crew id"),
    "op": Choice(CREW_OPS),
    "name": Text(1, MAX_CREW_NAME_CHARS),
    "members": IdList("feed id", MAX_MEMBERS),
    "prev": Id("entry id"),
    "description": Text(1, MAX_CREW_DESCRIPTION_CHARS, multiline=True),
}


def crew_id_for(founder: bytes, genesis_key: bytes) -> bytes:
    """The crew id: keyed BLAKE2b-256 of the founder's feed id under the epoch-0 key.

    Random-looking to anyone without the key (it is never in the clear anyway), and it
    binds the crew to its founder: a former member who knows the epoch-0 key still
    cannot publish a competing ``create`` for the same crew under their own feed.
    """
    return hashlib.blake2b(
        founder, key=genesis_key, digest_size=32, person=_CREW_ID_PERSON
    ).digest()


@dataclass(frozen=True, slots=True, kw_only=True)
class CrewStateContent:
    """One validated crew_state. Constructing one checks it (raises InvalidCrewState)."""

    TYPE: ClassVar[str] = TYPE_NAME
    time: int
    crew: bytes
    epoch: int
    op: CrewOp
    name: str
    members: tuple[bytes, ...]
    """Sorted, distinct feed ids: 1..64."""
    keys: tuple[tuple[int, bytes], ...]
    """``((0, k0),)`` at epoch 0, else ``((epoch - 1, previous key), (epoch, key))``."""
    prev: bytes | None = None
    """Entry id of the crew_state this one follows; absent exactly at epoch 0."""
    description: str | None = None

    def __post_init__(self) -> None:
        _validate(self)

    @property
    def key(self) -> bytes:
        """This state's own epoch key (the key its envelope is sealed under)."""
        return self.keys[-1][1]

    @property
    def prev_key(self) -> bytes | None:
        """The previous epoch's key, or None at epoch 0."""
        return self.keys[0][1] if self.epoch > 0 else None

    def __repr__(self) -> str:  # never print key material
        return (
            f"CrewStateContent(op={self.op!r}, epoch={self.epoch}, name={self.name!r}, "
            f"members={len(self.members)}, keys=<redacted>)"
        )


def encode_crew_state(state: CrewStateContent) -> bytes:
    """The canonical CBOR bytes of a (validated) crew_state; seal them in an envelope."""
    _validate(state)
    wire: dict[str, object] = {"type": TYPE_NAME}
    for item in fields(state):
        value = getattr(state, item.name)
        if value is None:
            continue
        if item.name == "members":
            value = list(value)
        elif item.name == "keys":
            value = [[epoch, key] for epoch, key in value]
        wire[item.name] = value
    return codec.encode(wire)


def decode_crew_state(data: bytes) -> CrewStateContent:
    """Decode and validate a crew_state from opened envelope content.

    Raises:
        InvalidCrewState: too large, not canonical CBOR, not a map of type
            ``crew_state``, unknown or missing keys, null optional fields, or any field
            or cross-field rule broken; the message names the field.
    """
    if len(data) > MAX_STATE_SIZE:
        raise InvalidCrewState(f"crew_state: {len(data)} bytes is more than {MAX_STATE_SIZE}")
    try:
        wire = codec.decode(bytes(data))
    except codec.CodecError as exc:
        raise InvalidCrewState(f"crew_state: {exc}") from exc
    if type(wire) is not dict:
        raise InvalidCrewState("crew_state: must be a CBOR map")
    if wire.get("type") != TYPE_NAME:
        raise InvalidCrewState("crew_state: the map's type is not 'crew_state'")
    for name in wire:
        if name != "type" and name not in _REQUIRED and name not in _OPTIONAL:
            raise InvalidCrewState(f"crew_state.{name!r}: unknown field")
    values: dict[str, Any] = {}
    for name in (*_REQUIRED, *_OPTIONAL):
        if name not in wire:
            if name in _REQUIRED:
                raise InvalidCrewState(f"crew_state.{name}: required field is missing")
            continue
        value = wire[name]
        if value is None:
            raise InvalidCrewState(f"crew_state.{name}: leave the field out instead of null")
        values[name] = _FROM_WIRE.get(name, _same)(value)
    return CrewStateContent(**values)


# --- validation --------------------------------------------------------------------------


def _same(value: object) -> object:
    return value


def _members_from_wire(value: object) -> object:
    return tuple(value) if type(value) is list else value


def _keys_from_wire(value: object) -> object:
    if type(value) is not list:
        return value
    return tuple(tuple(pair) if type(pair) is list else pair for pair in value)


_FROM_WIRE: Final[dict[str, Callable[[object], object]]] = {
    "members": _members_from_wire,
    "keys": _keys_from_wire,
}


def _check(rule_name: str, value: object) -> None:
    try:
        _RULES[rule_name].check(f"crew_state.{rule_name}", value)
    except InvalidContent as exc:
        raise InvalidCrewState(str(exc)) from None


def _validate(state: CrewStateContent) -> None:
    for name in ("time", "crew", "op", "name", "members"):
        _check(name, getattr(state, name))
    for name in _OPTIONAL:
        if getattr(state, name) is not None:
            _check(name, getattr(state, name))
    epoch = state.epoch
    if type(epoch) is not int or not 0 <= epoch <= MAX_EPOCH:
        raise InvalidCrewState(f"crew_state.epoch: must be an integer 0 to {MAX_EPOCH}")
    if list(state.members) != sorted(state.members):
        raise InvalidCrewState("crew_state.members: must be sorted (bytewise ascending)")
    genesis = epoch == 0
    if genesis != (state.op == "create") or genesis != (state.prev is None):
        raise InvalidCrewState(
            "crew_state: epoch 0, op 'create' and an absent prev go together, and only together"
        )
    _check_keys(state.keys, epoch)


def _check_keys(keys: object, epoch: int) -> None:
    where = "crew_state.keys"
    expected = [epoch] if epoch == 0 else [epoch - 1, epoch]
    if type(keys) is not tuple or len(keys) != len(expected):
        raise InvalidCrewState(
            f"{where}: must hold {len(expected)} [epoch, key] pair(s) for epoch {epoch}"
        )
    for index, (pair, want) in enumerate(zip(keys, expected, strict=True)):
        if type(pair) is not tuple or len(pair) != 2:
            raise InvalidCrewState(f"{where}[{index}]: must be an [epoch, key] pair")
        got_epoch, key = pair
        if type(got_epoch) is not int or got_epoch != want:
            raise InvalidCrewState(f"{where}[{index}]: epoch must be {want}")
        if type(key) is not bytes or len(key) != KEY_SIZE:
            raise InvalidCrewState(f"{where}[{index}]: key must be {KEY_SIZE} bytes")
    if len(keys) == 2 and keys[0][1] == keys[1][1]:
        raise InvalidCrewState(f"{where}: the new epoch key must differ from the previous one")


# --- walking the chain back --------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Unlocked:
    """What ``unlock`` could open, and every key it knows afterwards."""

    opened: Mapping[bytes, OpenedEnvelope]
    keys: tuple[bytes, ...]
    malformed: frozenset[bytes]

    def __repr__(self) -> str:
        return f"Unlocked(opened={len(self.opened)}, keys={len(self.keys)}, ...)"


def unlock(
    payloads: Mapping[bytes, bytes],
    epoch_keys: Iterable[bytes],
    my_curve_secret: bytes | None,
    my_curve_public: bytes | None,
) -> Unlocked:
    """Open every envelope in ``payloads`` (entry id -> payload) that any key opens.

    Keys found in opened crew_states are tried too, until nothing new opens: this is
    how a newcomer, whose ``add`` holds the two latest epoch keys, walks the chain back
    to the crew's creation. Each key is tried on each envelope at most once, and the
    slots only in the first round. Payloads that are not envelopes are skipped;
    malformed envelopes are reported by id, never raised.
    """
    known = list(dict.fromkeys(epoch_keys))
    seen = set(known)
    pending = {entry_id: p for entry_id, p in payloads.items() if is_envelope(p)}
    opened: dict[bytes, OpenedEnvelope] = {}
    malformed: set[bytes] = set()
    trying, secret, public = known, my_curve_secret, my_curve_public
    while pending and (trying or secret is not None):
        learned: list[bytes] = []
        for entry_id, payload in list(pending.items()):
            try:
                result = open_envelope(payload, trying, secret, public)
            except EnvelopeMalformed:
                malformed.add(entry_id)
                del pending[entry_id]
                continue
            if result is None:
                continue
            del pending[entry_id]
            opened[entry_id] = result
            for key in (result.key_used, *_keys_in(result.content)):
                if key not in seen:
                    seen.add(key)
                    learned.append(key)
        known.extend(learned)
        trying, secret, public = learned, None, None
    return Unlocked(MappingProxyType(opened), tuple(known), frozenset(malformed))


def _keys_in(content: bytes) -> tuple[bytes, ...]:
    if TYPE_NAME.encode() not in content:  # cheap: most opened content is not state
        return ()
    try:
        return tuple(key for _, key in decode_crew_state(content).keys)
    except InvalidCrewState:
        return ()
