"""The actions a screen offers right now, from its key bindings: one list feeds the
help screen and the command palette, so neither can forget an action the keys have."""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Any

from textual.app import App
from textual.command import DiscoveryHit, Hit, Hits, Provider
from textual.dom import DOMNode
from textual.screen import Screen

from p2pcrew.tui.themes import THEME_LABELS


@dataclass(frozen=True, slots=True)
class ActionEntry:
    key: str
    description: str
    action: str
    node: DOMNode


def available_actions(screen: Screen[Any]) -> list[ActionEntry]:
    """Enabled screen and app bindings with a description: this screen's first."""
    app = screen.app
    found: dict[tuple[int, str], ActionEntry] = {}
    for active in screen.active_bindings.values():
        binding, node = active.binding, active.node
        if not binding.description or not active.enabled:
            continue
        if not isinstance(node, (Screen, App)) or binding.system:
            continue
        entry = ActionEntry(app.get_key_display(binding), binding.description, binding.action, node)
        slot = (id(node), binding.action)
        if slot in found:  # several keys for one action: list the keys together
            old = found[slot]
            entry = ActionEntry(f"{old.key}, {entry.key}", old.description, old.action, node)
        found[slot] = entry
    return sorted(found.values(), key=lambda e: isinstance(e.node, App))


class ActionsProvider(Provider):
    """Every action of the screen below the palette, plus the themes."""

    def _commands(self) -> list[tuple[str, str, Any]]:
        app = self.app
        commands: list[tuple[str, str, Any]] = [
            (e.description, f"Key: {e.key}", partial(app.run_action, e.action, e.node))
            for e in available_actions(self.screen)
        ]
        for name, label in THEME_LABELS.items():
            commands.append(
                (
                    f"Theme: {label}",
                    "Switch the colours",
                    partial(app.run_action, f"app.use_theme('{name}')"),
                )
            )
        return commands

    async def discover(self) -> Hits:
        for text, help_text, command in self._commands():
            yield DiscoveryHit(text, command, help=help_text)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for text, help_text, command in self._commands():
            score = matcher.match(text)
            if score > 0:
                yield Hit(score, matcher.highlight(text), command, text=text, help=help_text)
