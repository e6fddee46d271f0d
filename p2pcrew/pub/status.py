"""The pub's HTML status page: a few numbers for the operator, nothing about anyone.

The page is public (it sits next to the WebSocket endpoint), so it shows counts only:
no feed ids, no addresses, no invite details. It is a plain function of a
``Snapshot`` so it can be tested without a server; it refreshes itself every 30 s.
"""

from __future__ import annotations

import contextlib
import html
import os
from pathlib import Path
from typing import Final

from p2pcrew import __version__
from p2pcrew.pub.metrics import Snapshot

CONTENT_TYPE: Final = "text/html"
_STYLE: Final = (
    "body{font-family:system-ui,sans-serif;max-width:40em;margin:2em auto;padding:0 1em;"
    "color:#222}table{border-collapse:collapse}td{padding:.3em 1em .3em 0}"
    "td.n{text-align:right;font-variant-numeric:tabular-nums}small{color:#666}"
)


def human_bytes(n: int) -> str:
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")  # pragma: no cover


def human_duration(seconds: float) -> str:
    s = int(seconds)
    days, s = divmod(s, 86400)
    hours, s = divmod(s, 3600)
    minutes, s = divmod(s, 60)
    if days:
        return f"{days} d {hours} h"
    if hours:
        return f"{hours} h {minutes} min"
    return f"{minutes} min {s} s"


def render_status(snap: Snapshot) -> str:
    rows = [
        ("Up for", human_duration(snap.uptime)),
        ("Members", str(snap.members)),
        ("Peers connected", str(snap.peers)),
        ("Joining now (guests)", str(snap.guests)),
        ("Entries stored", f"{snap.entries:,}"),
        ("Entries received since start", f"{snap.accepted:,}"),
        ("Entries refused since start", f"{sum(snap.rejected.values()):,}"),
        ("Disk used by the data directory", human_bytes(snap.disk_bytes)),
        ("Live invites", str(snap.live_invites)),
        ("Members over their storage quota", str(snap.over_quota)),
    ]
    body = "\n".join(
        f"<tr><td>{html.escape(k)}</td><td class=n>{html.escape(v)}</td></tr>" for k, v in rows
    )
    return (
        "<!doctype html>\n<html lang=en><head><meta charset=utf-8>"
        '<meta name=viewport content="width=device-width,initial-scale=1">'
        '<meta http-equiv=refresh content="30">'
        f"<title>p2pcrew pub</title><style>{_STYLE}</style></head><body>"
        "<h1>p2pcrew pub</h1>"
        "<p>This pub stores and forwards its members' feeds. It cannot read crew content.</p>"
        f"<table>\n{body}\n</table>"
        f"<p><small>p2pcrew {html.escape(__version__)} · "
        '<a href="/metrics">metrics</a> · <a href="/healthz">health</a></small></p>'
        "</body></html>\n"
    )


def directory_size(root: Path) -> int:
    total = 0
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(dirpath, name)).st_size
    return total
