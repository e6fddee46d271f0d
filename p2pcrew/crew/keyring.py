"""The crew keyring: opens crew envelopes for the store and learns keys from them.

It is the store's ``Opener``. Epoch keys live in the store (``crew_keys``) and are
cached here as one flat list, because trying a key costs one Poly1305 check: with
20 crews of a few epochs each, an entry that is not ours costs well under a
millisecond to reject. Key-distribution envelopes are opened through our slot.

Learning is chained: a crew_state carries its own key and the previous epoch's, so
the newest state a newcomer receives unlocks the one before it, and so on back to
the crew's creation: the store retries its sealed backlog until nothing new opens.
"""

from __future__ import annotations

from p2pcrew.crew.envelope import is_envelope, open_envelope
from p2pcrew.crew.errors import CrewError
from p2pcrew.crew.membership import StateEntry
from p2pcrew.crew.state import decode_crew_state
from p2pcrew.feed.identity import Identity
from p2pcrew.feed.store import Store


class Keyring:
    def __init__(self, store: Store, identity: Identity) -> None:
        self.store = store
        self._secret = identity.curve25519_secret()
        self._public = identity.curve25519_public()
        self._keys: dict[bytes, bytes] = {}
        """key -> crew id"""
        self._last_key: bytes | None = None
        for crew, keys in store.crew_keys().items():
            for key in keys.values():
                self._keys[key] = crew

    @classmethod
    def attach(cls, store: Store, identity: Identity) -> Keyring:
        """Create a keyring and let the store open crew envelopes with it."""
        keyring = cls(store, identity)
        store.attach_opener(keyring)
        return keyring

    def is_envelope(self, payload: bytes) -> bool:
        return is_envelope(payload)

    def open(self, payload: bytes) -> bytes | None:
        try:
            opened = open_envelope(payload, list(self._keys), self._secret, self._public)
        except CrewError:
            return None  # malformed: stays sealed, like any envelope that is not ours
        if opened is None:
            return None
        self._last_key = opened.key_used
        return opened.content

    def opened_crew(self) -> bytes | None:
        return self._keys.get(self._last_key) if self._last_key is not None else None

    def learn(self, author: bytes, entry_id: bytes, seq: int, plaintext: bytes) -> bool:
        try:
            content = decode_crew_state(plaintext)
        except CrewError:
            return False
        if self._last_key != content.key:
            return False  # a state must be sealed under its own epoch key
        new = {epoch: key for epoch, key in content.keys if key not in self._keys}
        if not new:
            return False
        self.store.put_crew_keys(content.crew, new)
        for key in new.values():
            self._keys[key] = content.crew
        return True

    def key_count(self) -> int:
        return len(self._keys)


def state_entries(store: Store, crew: bytes) -> list[StateEntry]:
    """Every opened crew_state of ``crew`` in the store, for ``apply_states``."""
    entries = []
    for stored in store.crew_content(crew, "crew_state"):
        if stored.plaintext is None:
            continue
        try:
            content = decode_crew_state(stored.plaintext)
        except CrewError:
            continue
        e = stored.entry
        entries.append(StateEntry(e.id, e.author, e.seq, content, content.key))
    return entries
