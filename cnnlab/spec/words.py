"""Counts in words, as a person writes them: ``1 epoch``, ``2 epochs``, ``1,000 trials``.

Plain Python (no framework), so that every layer's printed lines can share it.
"""

from __future__ import annotations


def count(n: int, noun: str, plural: str | None = None) -> str:
    """``n`` and ``noun``, singular for exactly 1 and plural otherwise (0 too): ``count(1,
    "epoch")`` is ``1 epoch``, ``count(7, "setting")`` is ``7 settings``, ``count(2, "study",
    "studies")`` is ``2 studies``; ``plural`` where adding ``s`` is wrong. ``n`` is written
    with thousands separators (``1,000``)."""
    return f"{n:,} {noun if n == 1 else plural or noun + 's'}"
