"""Token estimates and prices: the arithmetic behind the limiter's weights, the metrics and the dry run.

Four characters per token is the usual rule of thumb for English text; a real app would call its
provider's tokenizer here, and nothing else would change.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from examples.summarizer.config import SummarizerConfig

__all__ = ["CHARS_PER_TOKEN", "Usage", "estimate_tokens", "truncate"]

CHARS_PER_TOKEN = 4


def estimate_tokens(text: str) -> int:
    """Tokens ``text`` costs, at least 1 (an empty prompt still costs a call)."""
    return max(1, math.ceil(len(text) / CHARS_PER_TOKEN))


def truncate(text: str, max_tokens: int) -> str:
    """``text`` cut to at most ``max_tokens`` tokens."""
    return text[: max_tokens * CHARS_PER_TOKEN]


@dataclass(frozen=True, slots=True)
class Usage:
    """Tokens one call spent, and what they cost."""

    prompt: int
    completion: int
    cost: float

    @classmethod
    def of(cls, prompt: int, completion: int, config: SummarizerConfig) -> Usage:
        cost = (prompt * config.prompt_price + completion * config.completion_price) / 1000
        return cls(prompt, completion, round(cost, 8))
