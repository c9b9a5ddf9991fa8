"""How long lists appear in messages: the first few, then how many more."""

from __future__ import annotations

from collections.abc import Iterable


def shortened(items: Iterable[str], limit: int = 5) -> str:
    """`a, b, c … and 41 more`: a message names some values, never hundreds."""
    items = list(items)
    shown = ", ".join(items[:limit])
    rest = len(items) - limit
    return f"{shown} … and {rest} more" if rest > 0 else shown
