"""Joining a pub from inside the app, on the app's running node.

``p2pcrew join CODE`` runs its own short-lived node; the app cannot call it because
the app's node already holds the store. This does the same steps (parse the code,
reach one of its addresses, use the invite) and then keeps the link open, so the
pub keeps replicating with us while the app runs. The pub modules are imported
lazily: without them the person is told how to join from the command line.
"""

from __future__ import annotations

from p2pcrew.errors import P2PCrewError
from p2pcrew.replicate.node import Node
from p2pcrew.replicate.transport_errors import TransportError

REQUEST_TIMEOUT = 20.0
CLI_HINT = "quit the app and run `p2pcrew join CODE`"


async def join_pub(node: Node, code: str, now_ms: int) -> str:
    """Use the invite; returns the address that answered.

    Raises:
        P2PCrewError: a malformed or expired code, an unreachable pub, a refusal.
    """
    try:
        from p2pcrew.pub import invites as inv
        from p2pcrew.pub.relay import INVITE_USE
        from p2pcrew.replicate.peer import RemoteError
        from p2pcrew.replicate.ws_transport import dial
    except ImportError as exc:
        raise P2PCrewError(f"this build cannot join pubs from the app; {CLI_HINT}") from exc
    invite = inv.parse_code(code)
    invite.check_not_expired(now_ms)
    failures: list[str] = []
    for address in invite.addresses():
        try:
            link = await dial(node, address, source="pub")
        except (TransportError, OSError, TimeoutError) as exc:
            failures.append(f"{address.host}: {exc or type(exc).__name__}")
            continue
        try:
            await link.request(INVITE_USE, {"secret": invite.secret}, REQUEST_TIMEOUT)
        except RemoteError as exc:
            raise P2PCrewError(f"the pub refused the invite: {exc}") from None
        except TimeoutError:
            raise P2PCrewError(f"the pub at {address} did not answer the invite") from None
        return str(address)
    raise P2PCrewError("could not reach the pub: " + "; ".join(failures))
