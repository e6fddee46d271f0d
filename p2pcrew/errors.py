"""The root of every error p2pcrew raises on purpose.

Anything that escapes a public function and is *not* a ``P2PCrewError`` (or one of
the transport errors, which have their own root) is a bug. The CLI turns these into
one line on stderr and a non-zero exit; anything else is shown as an internal error.
"""

from __future__ import annotations


class P2PCrewError(Exception):
    """Something a person can act on: the message says what happened and what to do."""
