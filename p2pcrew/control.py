"""The local control socket: lets CLI write commands run through a running node.

Only one process may write to a data directory. While a node (``serve``, the app)
holds it, ``p2pcrew post`` and friends send their already-validated payload over a
Unix socket in the data directory, and the node publishes it, so scripts and a
second terminal keep working. Only the owner can use it: the socket is created
0600 inside the 0700 data directory, and the node checks the connecting process's
uid (SO_PEERCRED) as well.

Protocol: one JSON object per line each way. Request ``{"op": "publish",
"payload": HEX, "force": BOOL}``; reply ``{"ok": true, "ids": [HEX...]}`` or
``{"ok": false, "error": TEXT}``. Requests are bounded to 64 KiB.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import struct
from collections.abc import Callable
from pathlib import Path
from typing import Any

from p2pcrew.errors import P2PCrewError
from p2pcrew.feed.entry import Entry

MAX_REQUEST = 64 * 1024
TIMEOUT = 30.0


class ControlError(P2PCrewError):
    """The running node refused or failed the request."""


Publisher = Callable[[bytes, bool], list[Entry]]
"""(payload, force): a plaintext content payload, or a ready crew envelope."""


def _remove_stale(path: Path) -> None:
    """A socket file left by a node that was killed; we hold the store lock, so it is stale."""
    with contextlib.suppress(FileNotFoundError):
        path.unlink()


async def serve_control(path: Path, publish: Publisher) -> asyncio.AbstractServer:
    _remove_stale(path)
    old = os.umask(0o177)
    try:
        server = await asyncio.start_unix_server(
            lambda r, w: _handle(r, w, publish), path=str(path), limit=MAX_REQUEST
        )
    finally:
        os.umask(old)
    return server


async def _handle(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, publish: Publisher
) -> None:
    try:
        if not _same_user(writer):
            return
        line = await asyncio.wait_for(reader.readline(), TIMEOUT)
        reply = _execute(line, publish)
        writer.write(json.dumps(reply).encode() + b"\n")
        await writer.drain()
    except (TimeoutError, ValueError, OSError):
        pass
    finally:
        writer.close()


def _execute(line: bytes, publish: Publisher) -> dict[str, Any]:
    try:
        request = json.loads(line)
        if request.get("op") != "publish":
            return {"ok": False, "error": f"unknown operation {request.get('op')!r}"}
        entries = publish(bytes.fromhex(request["payload"]), bool(request.get("force", False)))
        return {"ok": True, "ids": [e.id.hex() for e in entries]}
    except P2PCrewError as exc:
        return {"ok": False, "error": str(exc)}
    except (KeyError, TypeError, ValueError) as exc:
        return {"ok": False, "error": f"bad control request: {exc}"}


def _same_user(writer: asyncio.StreamWriter) -> bool:
    sock = writer.get_extra_info("socket")
    if sock is None or not hasattr(socket, "SO_PEERCRED"):
        return True  # platforms without SO_PEERCRED rely on the file mode alone
    creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    _pid, uid, _gid = struct.unpack("3i", creds)
    return bool(uid == os.getuid())


def publish_via_control(path: Path, payload: bytes, *, force: bool) -> list[bytes]:
    """Ask the running node to publish. Raises ControlError, or OSError if none listens."""
    request = json.dumps({"op": "publish", "payload": payload.hex(), "force": force}).encode()
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(TIMEOUT)
        sock.connect(str(path))
        sock.sendall(request + b"\n")
        data = b""
        while not data.endswith(b"\n") and len(data) < MAX_REQUEST:
            chunk = sock.recv(4096)
            if not chunk:
                break
            data += chunk
    reply = json.loads(data or b"{}")
    if not reply.get("ok"):
        raise ControlError(f"the running node refused: {reply.get('error', 'no reply')}")
    return [bytes.fromhex(h) for h in reply["ids"]]
