"""Crew state: the crew_state schema, the membership reducer, races and lost changes."""

from __future__ import annotations

import hashlib
import itertools
import random
from dataclasses import replace

import nacl.signing
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from p2pcrew import codec
from p2pcrew.crew.envelope import max_content_size, new_key, open_envelope, seal_for_crew
from p2pcrew.crew.errors import (
    CrewError,
    InvalidCrewState,
    MembershipRuleViolated,
    NotAMember,
)
from p2pcrew.crew.membership import (
    Change,
    CrewState,
    StateEntry,
    apply_states,
    create_crew,
    lost_changes,
    member_at,
    propose,
    reorg_depth,
    seal_state,
    state_entry,
)
from p2pcrew.crew.state import (
    MAX_CREW_DESCRIPTION_CHARS,
    MAX_CREW_NAME_CHARS,
    MAX_EPOCH,
    MAX_MEMBERS,
    MAX_STATE_SIZE,
    CrewOp,
    CrewStateContent,
    crew_id_for,
    decode_crew_state,
    encode_crew_state,
    unlock,
)
from p2pcrew.feed.content import MAX_TIME_MS
from p2pcrew.feed.identity import feed_key_to_curve25519

T = 1_700_000_000_000


class Member:
    def __init__(self, seed: int | None = None) -> None:
        key = (
            nacl.signing.SigningKey(bytes([seed]) * 32)
            if seed is not None
            else nacl.signing.SigningKey.generate()
        )
        self.id = bytes(key.verify_key)
        self.curve_secret = bytes(key.to_curve25519_private_key())
        self.curve_public = feed_key_to_curve25519(self.id)
        self.seq = 0

    def entry(self, content: CrewStateContent, entry_id: bytes | None = None) -> StateEntry:
        """My crew_state as every reader sees it once opened (no sealing: fast)."""
        self.seq += 1
        eid = entry_id or hashlib.blake2b(encode_crew_state(content) + self.id).digest()[:32]
        return StateEntry(eid, self.id, self.seq, content, content.key)


A, B, C, D, E = (Member(n) for n in range(1, 6))


def eid(first: int) -> bytes:
    """An entry id whose order we choose: the first byte decides."""
    return bytes([first]) + bytes(31)


def founded(*others: Member) -> tuple[StateEntry, CrewState]:
    genesis = A.entry(
        create_crew(A.id, "crew", time=T, members=[o.id for o in others]), entry_id=eid(0x80)
    )
    state = apply_states([genesis])
    assert state is not None
    return genesis, state


def step(
    state: CrewState, author: Member, change: Change, entry_id: bytes | None = None
) -> StateEntry:
    return author.entry(propose(state, author.id, change, time=T), entry_id)


def reduce(entries: list[StateEntry]) -> CrewState:
    state = apply_states(entries)
    assert state is not None
    return state


def add(*members: Member) -> Change:
    return Change("add", frozenset(m.id for m in members))


def remove(*members: Member) -> Change:
    return Change("remove", frozenset(m.id for m in members))


# --- the crew_state schema -------------------------------------------------------------------


def maximal_state() -> CrewStateContent:
    members = tuple(sorted(Member().id for _ in range(MAX_MEMBERS)))
    return CrewStateContent(
        time=MAX_TIME_MS,
        crew=new_key(),
        epoch=MAX_EPOCH,
        op="rename",
        name="\U0001f600" * MAX_CREW_NAME_CHARS,
        description="\U0001f600" * MAX_CREW_DESCRIPTION_CHARS,
        members=members,
        keys=((MAX_EPOCH - 1, new_key()), (MAX_EPOCH, new_key())),
        prev=new_key(),
    )


def test_the_largest_state_fits_an_envelope_with_64_slots() -> None:
    state = maximal_state()
    encoded = encode_crew_state(state)
    assert len(encoded) == 4_693 <= MAX_STATE_SIZE == max_content_size(64)  # docs/crews.md
    assert decode_crew_state(encoded) == state
    payload = seal_state(state)
    opened = open_envelope(payload, [state.key], None, None)
    assert opened is not None and decode_crew_state(opened.content) == state


def test_state_round_trip_and_wire_form() -> None:
    content = create_crew(A.id, "crew", time=T, description="we\norganise", members=[B.id])
    wire = codec.decode(encode_crew_state(content))
    assert wire == {
        "type": "crew_state",
        "time": T,
        "crew": content.crew,
        "epoch": 0,
        "op": "create",
        "name": "crew",
        "description": "we\norganise",
        "members": sorted([A.id, B.id]),
        "keys": [[0, content.key]],
    }
    assert decode_crew_state(encode_crew_state(content)) == content
    assert content.crew == crew_id_for(A.id, content.key)
    assert content.key.hex() not in repr(content)


def wire_of(content: CrewStateContent) -> dict[str, object]:
    value = codec.decode(encode_crew_state(content))
    assert type(value) is dict
    return value


BAD_WIRE = [
    ("extra", {"extra": 1}, "unknown field"),
    ("null description", {"description": None}, "null"),
    ("empty description", {"description": ""}, "description"),
    ("wrong type", {"type": "post"}, "type"),
    ("epoch text", {"epoch": "0"}, "epoch"),
    ("epoch negative", {"epoch": -1}, "epoch"),
    ("bad op", {"op": "merge"}, "op"),
    ("short crew", {"crew": b"x"}, "crew"),
    ("empty name", {"name": ""}, "name"),
    ("newline in name", {"name": "a\nb"}, "name"),
    ("no members", {"members": []}, "members"),
    ("duplicate member", {"members": [b"\x01" * 32, b"\x01" * 32]}, "duplicate"),
    ("unsorted", {"members": [b"\x02" * 32, b"\x01" * 32]}, "sorted"),
    ("keys not a list", {"keys": b"x"}, "keys"),
    ("key pair of three", {"keys": [[0, b"k" * 32, 1]]}, "pair"),
    ("wrong key epoch", {"keys": [[1, b"k" * 32]]}, "epoch must be 0"),
    ("short key", {"keys": [[0, b"k"]]}, "32 bytes"),
    ("prev at epoch 0", {"prev": b"p" * 32}, "epoch 0"),
    ("add at epoch 0", {"op": "add"}, "epoch 0"),
]


@pytest.mark.parametrize(("why", "patch", "message"), BAD_WIRE, ids=[b[0] for b in BAD_WIRE])
def test_strict_decoding(why: str, patch: dict[str, object], message: str) -> None:
    wire = wire_of(create_crew(A.id, "crew", time=T, description="d"))
    wire.update(patch)
    with pytest.raises(InvalidCrewState, match=message):
        decode_crew_state(codec.encode(wire))


def test_missing_fields_and_not_a_map_and_non_canonical() -> None:
    wire = wire_of(create_crew(A.id, "crew", time=T))
    for name in ("time", "crew", "epoch", "op", "name", "members", "keys"):
        partial = {k: v for k, v in wire.items() if k != name}
        with pytest.raises(InvalidCrewState, match=f"{name}: required"):
            decode_crew_state(codec.encode(partial))
    for data in (codec.encode([1]), b"\xff", b"\xa1\x61a\x18\x01", bytes(MAX_STATE_SIZE + 1)):
        with pytest.raises(InvalidCrewState):
            decode_crew_state(data)


def test_later_epochs_carry_the_previous_key_and_a_fresh_one() -> None:
    _, state = founded(B)
    content = propose(state, A.id, add(C), time=T)
    assert content.keys[0] == (0, state.key)
    assert content.prev_key == state.key and content.key != state.key
    wire = wire_of(content)
    wire["keys"] = [[0, state.key], [1, state.key]]
    with pytest.raises(InvalidCrewState, match="differ"):
        decode_crew_state(codec.encode(wire))
    wire["keys"] = [[1, new_key()]]
    with pytest.raises(InvalidCrewState, match=r"2 \[epoch, key\] pair"):
        decode_crew_state(codec.encode(wire))


# --- sequences of changes ------------------------------------------------------------------


def test_create_add_remove_rename_rotate_leave() -> None:
    genesis, s0 = founded(B)
    assert (s0.epoch, s0.members, s0.name, s0.head) == (
        0,
        frozenset({A.id, B.id}),
        "crew",
        genesis.entry_id,
    )
    e1 = step(s0, B, add(C, D))
    s1 = reduce([genesis, e1])
    assert (s1.epoch, s1.members) == (1, frozenset({A.id, B.id, C.id, D.id}))
    e2 = step(s1, C, remove(D))
    s2 = reduce([e2, e1, genesis])
    assert s2.members == {A.id, B.id, C.id}
    e3 = step(s2, A, Change("rename", name="night crew", description="after dark"))
    s3 = reduce([genesis, e1, e2, e3])
    assert (s3.name, s3.description, s3.members) == ("night crew", "after dark", s2.members)
    e4 = step(s3, B, Change("rotate"))
    e5 = step(reduce([genesis, e1, e2, e3, e4]), C, Change("leave"))
    s5 = reduce([genesis, e1, e2, e3, e4, e5])
    assert (s5.epoch, s5.members) == (5, frozenset({A.id, B.id}))
    assert len(set(s5.keys.values())) == 6 and sorted(s5.keys) == list(range(6))
    assert [h.content.op for h in s5.history] == [
        "create",
        "add",
        "remove",
        "rename",
        "rotate",
        "leave",
    ]
    assert member_at(s5, D.id, 1) and not member_at(s5, D.id, 2)
    assert not member_at(s5, A.id, 6) and not member_at(s5, A.id, -1)
    assert s5.crew.hex() not in repr(s5) and str(s5.crew) not in repr(s5)


def test_removed_member_cannot_open_the_new_epoch_and_newcomer_reads_history() -> None:
    founder = Member()
    genesis_content = create_crew(founder.id, "c", time=T, members=[B.id, C.id])
    payloads: dict[bytes, bytes] = {}

    def publish(content: CrewStateContent, author: Member) -> StateEntry:
        payload = seal_state(content)
        entry_id = hashlib.blake2b(payload, digest_size=32).digest()
        payloads[entry_id] = payload
        opened = open_envelope(payload, [content.key], None, None)
        assert opened is not None
        author.seq += 1
        return state_entry(entry_id, author.id, author.seq, opened)

    g = publish(genesis_content, founder)
    old_post = seal_for_crew(b"before", genesis_content.key)
    payloads[b"post-0".ljust(32, b"\0")] = old_post
    s0 = reduce([g])
    r1 = publish(propose(s0, founder.id, remove(C), time=T), founder)
    s1 = reduce([g, r1])
    assert C.id not in s1.members
    # C holds epoch 0 only; it can neither open the removal nor learn key 1.
    seen_by_c = unlock(payloads, [genesis_content.key], C.curve_secret, C.curve_public)
    assert r1.entry_id not in seen_by_c.opened
    assert s1.key not in seen_by_c.keys
    a2 = publish(propose(s1, B.id, add(D), time=T), B)
    s2 = reduce([g, r1, a2])
    new_post = seal_for_crew(b"after", s2.key)
    payloads[b"post-2".ljust(32, b"\0")] = new_post
    seen_by_c = unlock(payloads, [genesis_content.key], C.curve_secret, C.curve_public)
    assert b"post-2".ljust(32, b"\0") not in seen_by_c.opened
    # D, added at epoch 2, walks the chain back to the creation and reads the old post.
    seen_by_d = unlock(payloads, [], D.curve_secret, D.curve_public)
    assert set(seen_by_d.opened) == set(payloads)
    assert seen_by_d.opened[b"post-0".ljust(32, b"\0")].content == b"before"
    entries = [
        state_entry(i, author.id, n, seen_by_d.opened[i])
        for n, (i, author) in enumerate(
            [(g.entry_id, founder), (r1.entry_id, founder), (a2.entry_id, B)], start=1
        )
    ]
    assert reduce(entries) == s2
    assert a2.content.keys == ((1, s1.key), (2, s2.key))  # the add carries only two keys


def test_unlock_skips_plaintext_and_reports_malformed() -> None:
    key = new_key()
    good = seal_for_crew(b"x", key)
    broken = good[:10] + bytes([good[10] ^ 1]) + good[11:]
    malformed = good[:4] + b"\x03" + good[5:]
    result = unlock({b"a": good, b"b": b"\xa0", b"c": broken, b"d": malformed}, [key], None, None)
    assert set(result.opened) == {b"a"}
    assert result.malformed == {b"d"}
    assert "opened=1" in repr(result)


# --- invalid states are ignored -----------------------------------------------------------


def test_non_member_author_is_ignored() -> None:
    genesis, s0 = founded(B)
    forged = E.entry(propose(s0, A.id, add(E), time=T))  # E is not a member
    assert reduce([genesis, forged]) == s0


def test_a_removed_member_cannot_build_on_the_removal() -> None:
    genesis, s0 = founded(B, C)
    r1 = step(s0, A, remove(C))
    s1 = reduce([genesis, r1])
    late = C.entry(propose(replace_members(s1, C), C.id, add(D), time=T))
    assert reduce([genesis, r1, late]) == s1


def replace_members(state: CrewState, member: Member) -> CrewState:
    return replace(state, members=state.members | {member.id})


def test_missing_prev_is_ignored_until_it_arrives() -> None:
    genesis, s0 = founded(B)
    e1 = step(s0, A, add(C))
    s1 = reduce([genesis, e1])
    e2 = step(s1, C, add(D))
    assert reduce([genesis, e2]) == s0
    assert reduce([genesis, e2, e1]).head == e2.entry_id
    assert apply_states([e1, e2]) is None  # no create yet


def test_states_that_break_a_rule_are_ignored() -> None:
    genesis, s0 = founded(B, C)
    good = propose(s0, A.id, add(D), time=T)
    variants = [
        replace(good, op="remove"),  # says remove, adds
        replace(good, op="rename"),
        replace(good, op="rotate"),
        replace(good, op="leave"),
        replace(good, name="other"),  # an add may not rename
        replace(good, epoch=2, keys=((1, s0.key), (2, good.key))),
        replace(good, keys=((0, new_key()), (1, good.key))),  # wrong previous key
        replace(good, members=tuple(sorted([A.id, C.id, D.id]))),  # drops B while "adding"
        replace(good, members=tuple(sorted([A.id, B.id, C.id, b"\x00" * 32]))),  # not a key
    ]
    for content in variants:
        assert reduce([genesis, A.entry(content)]) == s0, content
    # Sealed under a key that is not its own epoch key.
    wrong_key = StateEntry(eid(1), A.id, 9, good, s0.key)
    assert reduce([genesis, wrong_key]) == s0
    # Re-using an old epoch key as the new one.
    first = A.entry(good)
    s1 = reduce([genesis, first])
    rotate = propose(s1, A.id, Change("rotate"), time=T)
    again = replace(rotate, keys=((1, good.key), (2, s0.key)))
    assert reduce([genesis, first, A.entry(again)]) == s1


def test_remove_and_leave_rules() -> None:
    genesis, s0 = founded(B, C)
    good = propose(s0, A.id, remove(C), time=T)
    self_removal = replace(good, members=tuple(sorted([B.id, C.id])))
    assert reduce([genesis, A.entry(self_removal)]) == s0
    leave = propose(s0, B.id, Change("leave"), time=T)
    assert reduce([genesis, B.entry(leave)]).members == {A.id, C.id}
    not_just_me = replace(leave, members=(A.id,))
    assert reduce([genesis, B.entry(not_just_me)]) == s0
    rename_same = replace(propose(s0, A.id, Change("rotate"), time=T), op="rename")
    assert reduce([genesis, A.entry(rename_same)]) == s0


def test_genesis_rules() -> None:
    content = create_crew(A.id, "crew", time=T, members=[B.id])
    first = A.entry(content, eid(0x90))
    second = A.entry(create_crew(A.id, "crew", time=T, key=content.key), eid(0x10))
    assert reduce([second, first]).head == first.entry_id  # the founder's first create
    forged = B.entry(replace(content, members=(B.id,)), eid(0x01))
    assert reduce([forged, first]).head == first.entry_id  # crew id binds the founder
    assert apply_states([forged]) is None
    outsider = A.entry(replace(content, members=(B.id,)))  # founder not a member
    assert apply_states([outsider]) is None
    other_crew = A.entry(create_crew(A.id, "other", time=T))
    with pytest.raises(ValueError, match="more than one crew"):
        apply_states([first, other_crew])
    assert apply_states([]) is None


# --- races ---------------------------------------------------------------------------------


def test_concurrent_adds_resolve_to_the_smallest_entry_id_in_any_order() -> None:
    genesis, s0 = founded(B, C)
    x = step(s0, A, add(D), eid(0x20))
    y = step(s0, B, add(E), eid(0x10))
    for order in itertools.permutations([genesis, x, y]):
        state = reduce(list(order))
        assert state.head == y.entry_id and state.members == {A.id, B.id, C.id, E.id}


def test_a_removal_beats_a_concurrent_change_by_the_removed_member() -> None:
    genesis, s0 = founded(B, C)
    removal = step(s0, A, remove(C), eid(0x90))
    counter = step(s0, C, add(D), eid(0x01))  # smaller id, but C is being removed
    assert reduce([counter, genesis, removal]).head == removal.entry_id
    mutual = step(s0, C, remove(A), eid(0x02))  # both remove each other: smallest id
    assert reduce([genesis, removal, mutual]).head == mutual.entry_id


def test_lost_changes_are_reported_and_reapplied() -> None:
    genesis, s0 = founded(B, C, D)
    mine = step(s0, A, add(E), eid(0x70))
    theirs = step(s0, B, remove(D), eid(0x05))
    state = reduce([genesis, mine, theirs])
    assert state.head == theirs.entry_id
    changes = lost_changes(state, [genesis, mine])
    assert changes == [add(E)]
    again = step(state, A, changes[0])
    after = reduce([genesis, mine, theirs, again])
    assert after.members == {A.id, B.id, C.id, E.id}
    assert lost_changes(after, [genesis, mine, again]) == []
    assert lost_changes(after, [genesis]) == []


def test_lost_removal_rename_and_leave() -> None:
    genesis, s0 = founded(B, C, D)
    my_removal = step(s0, A, remove(D), eid(0x70))
    their_add = step(s0, B, add(E), eid(0x05))
    state = reduce([genesis, my_removal, their_add])
    assert lost_changes(state, [my_removal]) == [remove(D)]
    # If someone decided about D since, my old removal is not replayed.
    s1 = state
    readd = step(s1, B, remove(D), eid(0x06))
    s2 = reduce([genesis, my_removal, their_add, readd])
    assert lost_changes(s2, [my_removal]) == []
    rename = step(s0, C, Change("rename", name="new"), eid(0x71))
    leave = step(s0, D, Change("leave"), eid(0x72))
    state = reduce([genesis, rename, leave, their_add])
    assert lost_changes(state, [rename]) == [Change("rename", name="new")]
    assert lost_changes(state, [leave]) == [Change("leave")]


@given(st.permutations(list(range(9))))
@settings(max_examples=80, deadline=None)
def test_a_tree_of_races_converges_in_any_order(order: list[int]) -> None:
    entries = race_tree()
    expected = reduce(entries)
    genesis, _, y1, _, _, y2, _, _, on_winner = entries
    assert [e.entry_id for e in expected.history] == [
        genesis.entry_id,
        y1.entry_id,  # x1 has a larger id; z1's author is removed by y1
        y2.entry_id,  # smaller id than x2
        on_winner.entry_id,
    ]
    assert expected.members == {A.id, B.id, C.id, D.id}
    shuffled = [entries[i] for i in order]
    assert reduce(shuffled) == expected
    assert reduce(shuffled + shuffled[:3]) == expected  # repeats change nothing


def race_tree() -> list[StateEntry]:
    genesis, s0 = founded(B, C, D)
    x1 = step(s0, A, add(E), eid(0x30))
    y1 = step(s0, B, remove(C), eid(0x20))
    z1 = step(s0, C, Change("rename", name="z"), eid(0x10))  # removed by y1: loses
    sy = reduce([genesis, y1])
    x2 = step(sy, D, add(E), eid(0x50))
    y2 = step(sy, A, Change("rotate"), eid(0x40))
    bad = C.entry(propose(replace_members(sy, C), C.id, remove(D), time=T))
    sx = reduce([genesis, x1])
    on_loser = step(sx, E, remove(B), eid(0x01))
    on_winner = step(reduce([genesis, y1, y2]), B, add(C), eid(0x60))
    return [genesis, x1, y1, z1, x2, y2, bad, on_loser, on_winner]


# --- a random crew history ---------------------------------------------------------------

POOL = [Member(n) for n in range(10, 18)]
OPS: list[CrewOp] = ["add", "remove", "leave", "rename", "rotate"]


@st.composite
def histories(draw: st.DrawFn) -> list[StateEntry]:
    genesis = POOL[0].entry(create_crew(POOL[0].id, "c", time=T, members=[POOL[1].id]))
    chains: list[list[StateEntry]] = [[genesis]]
    for number in range(draw(st.integers(1, 12))):
        chain = draw(st.sampled_from(chains))
        state = reduce(chain)
        author = draw(st.sampled_from(POOL))
        op = draw(st.sampled_from(OPS))
        others = [m.id for m in POOL if m.id != author.id]
        subjects = frozenset(draw(st.lists(st.sampled_from(others), min_size=1, max_size=2)))
        change = Change(op, subjects, name=draw(st.sampled_from(["c", "d", "e"])))
        # Non-members propose too (as if they were members): the reducer must ignore them.
        pretend = replace(state, members=state.members | {author.id})
        try:
            content = propose(pretend, author.id, change, time=T)
        except CrewError:
            continue
        # Unique ids whose order Hypothesis chooses.
        entry_id = draw(st.integers(0, 255)).to_bytes(1, "big") + number.to_bytes(31, "big")
        entry = author.entry(content, entry_id)
        chains.append([*chain, entry])
    return list({e.entry_id: e for chain in chains for e in chain}.values())


@given(histories(), st.randoms(use_true_random=False))
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_random_histories_converge_and_the_chain_is_valid(
    entries: list[StateEntry], rng: random.Random
) -> None:
    expected = reduce(entries)
    shuffled = list(entries)
    rng.shuffle(shuffled)
    assert reduce(shuffled) == expected
    for older, newer in itertools.pairwise(expected.history):
        assert newer.content.prev == older.entry_id
        assert newer.author in older.content.members
    # The tip has no valid successor left among the candidates.
    assert reduce([*expected.history, *entries]) == expected
    prefix = reduce(list(expected.history))
    assert prefix == expected


# --- builders ----------------------------------------------------------------------------


def test_propose_refuses_what_the_rules_forbid() -> None:
    _, s0 = founded(B)
    with pytest.raises(NotAMember):
        propose(s0, C.id, add(D), time=T)
    cases = [
        (add(B), "not yet a member"),
        (Change("add"), "not yet a member"),
        (remove(C), "current member"),
        (remove(A), "leave the crew"),
        (Change("rename"), "new name"),
        (Change("rename", name="crew"), "change the name"),
        (Change("create"), "cannot follow"),
        (Change("add", frozenset({b"\x00" * 32})), "not a valid feed id"),
    ]
    for change, message in cases:
        with pytest.raises(MembershipRuleViolated, match=message):
            propose(s0, A.id, change, time=T)
    with pytest.raises(MembershipRuleViolated, match="never used"):
        propose(s0, A.id, Change("rotate"), time=T, key=s0.key)
    _, alone = founded()
    with pytest.raises(MembershipRuleViolated, match="last member"):
        propose(alone, A.id, Change("leave"), time=T)
    with pytest.raises(InvalidCrewState):
        propose(s0, A.id, Change("rename", name=""), time=T)


def test_64_members_work_and_65_do_not() -> None:
    crowd = [Member() for _ in range(MAX_MEMBERS)]
    content = create_crew(crowd[0].id, "big", time=T, members=[m.id for m in crowd])
    payload = seal_state(content)
    for member in (crowd[0], crowd[31], crowd[63]):
        opened = open_envelope(payload, [], member.curve_secret, member.curve_public)
        assert opened is not None and decode_crew_state(opened.content) == content
    state = reduce([crowd[0].entry(content)])
    with pytest.raises(MembershipRuleViolated, match="at most 64"):
        propose(state, crowd[0].id, add(Member()), time=T)
    with pytest.raises(MembershipRuleViolated, match="at most 64"):
        create_crew(A.id, "big", time=T, members=[m.id for m in crowd])


def test_leave_is_not_sealed_to_the_leaver() -> None:
    _, s0 = founded(B)
    leave = propose(s0, B.id, Change("leave"), time=T)
    payload = seal_state(leave)
    assert open_envelope(payload, [], B.curve_secret, B.curve_public) is None
    assert open_envelope(payload, [], A.curve_secret, A.curve_public) is not None


def test_reorg_depth() -> None:
    genesis, s0 = founded(B, C)
    x1 = step(s0, A, add(D), eid(0x50))
    x2 = step(reduce([genesis, x1]), A, Change("rotate"), eid(0x51))
    old = reduce([genesis, x1, x2])
    y1 = step(s0, B, add(E), eid(0x01))
    new = reduce([genesis, x1, x2, y1])
    assert new.head == y1.entry_id
    assert reorg_depth(old, new) == 2 and reorg_depth(old, old) == 0
