"""The LLM call under a tokens-per-minute limit: each call takes its weight in tokens from the limiter.

``RateLimiter(Rate(tokens_per_minute, 60), burst=tokens_per_minute)`` is a bucket of a minute's tokens that
refills continuously; ``acquire(model, cost=tokens)`` takes a call's prompt plus its reserved completion, and
waits (on the injected clock) when the bucket is short. The fake API in the tests and the demo
(``buttress.testing.Upstream``) cannot write a summary: it answers a JSON echo that reports how many bytes it
received. So the call checks that the API acknowledged every byte it was sent, and the summary is computed
here, deterministically, from that text: its leading sentences, cut to the completion budget.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass

from buttress.clock import SYSTEM_CLOCK, Clock
from buttress.errors import UpstreamError, ValidationError
from buttress.http import HttpClient
from buttress.rate import Rate
from buttress.resilience import RateLimiter, RedisState
from examples.summarizer.config import SummarizerConfig
from examples.summarizer.tokens import CHARS_PER_TOKEN, Usage, estimate_tokens, truncate

__all__ = ["LlmClient", "Summary", "token_limiter"]


def token_limiter(
    config: SummarizerConfig, clock: Clock = SYSTEM_CLOCK, store: RedisState | None = None
) -> RateLimiter:
    """A minute's worth of tokens, refilled continuously; a call may wait up to a minute for its share.

    With ``store`` (a ``RedisState``) the bucket is shared by every process that uses the same model.
    """
    return RateLimiter(
        Rate(config.tokens_per_minute, 60.0),
        burst=config.tokens_per_minute,
        max_wait=60.0,
        name="summarizer_llm_tokens",
        store=store or "memory",
        clock=clock,
    )


@dataclass(frozen=True, slots=True)
class Summary:
    """What the LLM made of one page, and what it cost."""

    url: str
    text: str
    usage: Usage
    waited: float
    """Seconds the call waited for tokens."""


class LlmClient:
    """Sends a page's text to the LLM API through the HTTP client, paying its tokens to the limiter first."""

    def __init__(self, http: HttpClient, config: SummarizerConfig, limiter: RateLimiter) -> None:
        if config.llm_url is None:
            raise ValidationError(
                "llm_url is required to call the LLM; e.g. llm_url='https://llm.example.com/v1/summarize', "
                "or run with --dry-run",
                field="llm_url",
            )
        self.http = http
        self.config = config
        self.limiter = limiter
        self.url = config.llm_url

    def prompt(self, text: str) -> str:
        """The text actually sent: the page cut to ``max_prompt_tokens``."""
        return truncate(text, self.config.max_prompt_tokens)

    def weight(self, prompt: str) -> int:
        """Tokens a call takes from the limiter: its prompt and the completion reserved for it."""
        return estimate_tokens(prompt) + self.config.summary_tokens

    def summarize(self, url: str, text: str) -> Summary:
        """Summarise ``text`` (from ``url``); waits for tokens, raises ``RateLimited`` past a minute."""
        prompt = self.prompt(text)
        waited = self.limiter.acquire(self.config.model, cost=self.weight(prompt))
        headers = {}
        if self.config.api_key is not None:
            headers["Authorization"] = f"Bearer {self.config.api_key.get_secret_value()}"
        key = hashlib.sha256(f"{self.config.model}\n{prompt}".encode()).hexdigest()
        document = {"model": self.config.model, "max_tokens": self.config.summary_tokens, "input": prompt}
        body = json.dumps(document).encode()
        response = self.http.post(
            self.url,
            content=body,
            headers={"Content-Type": "application/json", **headers},
            idempotency_key=key,  # a POST with a key is retried safely
        )
        received = response.json().get("body_bytes")
        if received != len(body):
            raise UpstreamError(
                f"the LLM API acknowledged {received} of the {len(body)} bytes sent for {url}",
                context={"url": url},
            )
        summary = _lead(prompt, self.config.summary_tokens * CHARS_PER_TOKEN)
        usage = Usage.of(estimate_tokens(prompt), estimate_tokens(summary), self.config)
        return Summary(url, summary, usage, waited)


def _lead(text: str, max_chars: int) -> str:
    """The first sentences of ``text`` that fit in ``max_chars`` (at least a cut of the first one)."""
    sentences = re.split(r"(?<=[.!?])\s+", text)
    kept = ""
    for sentence in sentences:
        if len(kept) + len(sentence) + 1 > max_chars:
            break
        kept = f"{kept} {sentence}".strip()
    return kept or text[:max_chars]
