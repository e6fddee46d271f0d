"""The app's themes: Textual's dark and light ones, and a high-contrast one.

The high-contrast theme uses pure black and white with yellow for focus, and the
cursor row is shown in reverse video, so what is selected never depends on telling
two colours apart.
"""

from __future__ import annotations

from typing import Final

from textual.theme import Theme

HIGH_CONTRAST: Final = Theme(
    name="p2pcrew-high-contrast",
    primary="#ffff00",
    secondary="#00ffff",
    accent="#ffff00",
    warning="#ffff00",
    error="#ff6060",
    success="#00ff00",
    foreground="#ffffff",
    background="#000000",
    surface="#000000",
    panel="#000000",
    boost="#000000",
    dark=True,
    variables={
        "block-cursor-foreground": "#000000",
        "block-cursor-background": "#ffffff",
        "block-cursor-text-style": "bold",
        "block-cursor-blurred-foreground": "#000000",
        "block-cursor-blurred-background": "#c0c0c0",
        "block-cursor-blurred-text-style": "bold",
        "border": "#ffff00",
        "border-blurred": "#ffffff",
        "footer-key-foreground": "#ffff00",
        "input-selection-background": "#ffff00 50%",
    },
)

THEMES: Final = ("textual-dark", "textual-light", HIGH_CONTRAST.name)
"""The themes F2 cycles through, in order."""

THEME_LABELS: Final = {
    "textual-dark": "Dark",
    "textual-light": "Light",
    HIGH_CONTRAST.name: "High contrast",
}


def next_theme(current: str) -> str:
    """The theme after ``current`` in ``THEMES`` (the first if it is not one of ours)."""
    if current not in THEMES:
        return THEMES[0]
    return THEMES[(THEMES.index(current) + 1) % len(THEMES)]
