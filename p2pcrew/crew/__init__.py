"""Crews: private groups whose content is sealed in envelopes only members can open.

``envelope`` seals and opens payloads, ``state`` defines the decrypted ``crew_state``
map and the key walk-back, ``membership`` is the pure reducer and the builders of new
states. ``docs/crews.md`` is the normative description and the threat model.
"""

from __future__ import annotations

from p2pcrew.crew.envelope import (
    MAX_RECIPIENTS,
    OpenedEnvelope,
    is_envelope,
    max_content_size,
    new_key,
    open_envelope,
    seal_for_crew,
    seal_for_members,
)
from p2pcrew.crew.errors import (
    BadRecipientKey,
    CrewError,
    EnvelopeMalformed,
    EnvelopeTooLarge,
    InvalidCrewState,
    MembershipRuleViolated,
    NotAMember,
    TooManyRecipients,
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
    CREW_OPS,
    MAX_MEMBERS,
    CrewOp,
    CrewStateContent,
    Unlocked,
    crew_id_for,
    decode_crew_state,
    encode_crew_state,
    unlock,
)

__all__ = [
    "CREW_OPS",
    "MAX_MEMBERS",
    "MAX_RECIPIENTS",
    "BadRecipientKey",
    "Change",
    "CrewError",
    "CrewOp",
    "CrewState",
    "CrewStateContent",
    "EnvelopeMalformed",
    "EnvelopeTooLarge",
    "InvalidCrewState",
    "MembershipRuleViolated",
    "NotAMember",
    "OpenedEnvelope",
    "StateEntry",
    "TooManyRecipients",
    "Unlocked",
    "apply_states",
    "create_crew",
    "crew_id_for",
    "decode_crew_state",
    "encode_crew_state",
    "is_envelope",
    "lost_changes",
    "max_content_size",
    "member_at",
    "new_key",
    "open_envelope",
    "propose",
    "reorg_depth",
    "seal_for_crew",
    "seal_for_members",
    "seal_state",
    "state_entry",
    "unlock",
]

from p2pcrew.crew import delivery as _delivery  # noqa: F401 - registers crew_receipt
