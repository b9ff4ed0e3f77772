"""The summariser's counters, in the process's metrics registry under the ``summarizer_`` prefix.

They sit beside buttress's own series on the ops server's ``/metrics``. Labels are bounded: ``outcome``
has at most three values and ``kind`` two, whatever the URLs.
"""

from __future__ import annotations

from buttress.observe.metrics import MetricsRegistry, get_metrics
from examples.summarizer.pages import Outcome
from examples.summarizer.tokens import Usage

__all__ = ["SummarizerMetrics"]


class SummarizerMetrics:
    """Pages by outcome, LLM calls by outcome, tokens by kind, dollars spent, seconds waited for tokens."""

    def __init__(self, registry: MetricsRegistry | None = None) -> None:
        own = (registry or get_metrics()).prefixed("summarizer")
        self.pages = own.counter("summarizer_pages_total", "Pages fetched, by outcome.", labels=("outcome",))
        self.tokens = own.counter(
            "summarizer_llm_tokens_total", "LLM tokens spent, by kind (prompt, completion).", labels=("kind",)
        )
        self.calls = own.counter(
            "summarizer_llm_calls_total", "LLM calls, by outcome (ok, failed).", labels=("outcome",)
        )
        self.cost = own.counter("summarizer_llm_cost_dollars_total", "Dollars spent on LLM calls.")
        self.waited = own.counter(
            "summarizer_llm_wait_seconds_total", "Seconds LLM calls waited for the tokens-per-minute limit."
        )

    def page(self, outcome: Outcome) -> None:
        self.pages.labels(outcome=outcome).inc()

    def llm_failed(self) -> None:
        self.calls.labels(outcome="failed").inc()

    def spent(self, usage: Usage, waited: float) -> None:
        self.calls.labels(outcome="ok").inc()
        self.tokens.labels(kind="prompt").inc(usage.prompt)
        self.tokens.labels(kind="completion").inc(usage.completion)
        self.cost.inc(usage.cost)
        self.waited.inc(waited)
