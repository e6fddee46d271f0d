"""The app's own preferences (the theme), kept in the data directory as JSON."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

FILE_NAME = "app-settings.json"


def load_theme(root: Path) -> str | None:
    """The saved theme name, or None if there is none or the file is unreadable."""
    try:
        data = json.loads((root / FILE_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    theme = data.get("theme") if isinstance(data, dict) else None
    return theme if isinstance(theme, str) else None


def save_theme(root: Path, theme: str) -> None:
    """Best effort: failing to remember a colour choice is not worth an error."""
    with contextlib.suppress(OSError):
        (root / FILE_NAME).write_text(json.dumps({"theme": theme}), encoding="utf-8")
