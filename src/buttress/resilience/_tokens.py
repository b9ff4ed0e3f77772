"""How a limiter shows the tokens left in a bucket, shared by its memory and Redis stores."""

from __future__ import annotations

__all__ = ["round_tokens"]


def round_tokens(value: float) -> float:
    """Tokens in a bucket, for display: never negative (waiters hold reservations), float noise removed."""
    return max(round(value, 6), 0.0)
