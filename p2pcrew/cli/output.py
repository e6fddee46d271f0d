"""Printing for the CLI: text for people, ``--json`` for scripts.

Every command that prints data builds one plain value (dicts, lists, strings,
numbers) and hands it here with a text renderer, so the JSON and the text can never
disagree about what the data is.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import click

F = TypeVar("F", bound=Callable[..., Any])

json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")


def emit(data: Any, as_json: bool, text: Callable[[Any], str] | None = None) -> None:
    if as_json:
        json.dump(data, sys.stdout, indent=2, sort_keys=True, ensure_ascii=False)
        sys.stdout.write("\n")
    else:
        click.echo(text(data) if text else _plain(data))


def _plain(data: Any) -> str:
    if isinstance(data, dict):
        width = max((len(str(k)) for k in data), default=0)
        return "\n".join(f"{k:<{width}}  {v}" for k, v in data.items())
    if isinstance(data, list):
        return "\n".join(_plain(item) for item in data)
    return str(data)
