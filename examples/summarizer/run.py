"""One run: fetch each URL, summarise what came back, store the summaries in batches; or, dry, estimate.

A dry run fetches the pages (GETs are safe to repeat) to estimate each call's tokens and cost, but builds
no LLM client at all and opens no database: nothing can be sent to the LLM or written.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from buttress.clock import SYSTEM_CLOCK, Clock
from buttress.db import Database
from buttress.errors import BulkheadFull, CircuitOpen, DeadlineExceeded, RateLimited, UpstreamError
from buttress.http import HttpClient
from buttress.observe.metrics import MetricsRegistry
from buttress.resilience import RedisState
from examples.summarizer.config import SummarizerConfig
from examples.summarizer.llm import LlmClient, token_limiter
from examples.summarizer.metrics import SummarizerMetrics
from examples.summarizer.pages import Fetched, fetch_page, http_settings
from examples.summarizer.store import SummaryStore
from examples.summarizer.tokens import Usage, estimate_tokens, truncate

__all__ = ["Item", "Report", "Summarizer"]

ItemOutcome = Literal["summarised", "estimated", "failed", "breaker_open", "llm_failed"]
_LLM_ERRORS = (UpstreamError, CircuitOpen, RateLimited, BulkheadFull, DeadlineExceeded)


@dataclass(frozen=True, slots=True)
class Item:
    """One URL's line in the report."""

    url: str
    host: str
    outcome: ItemOutcome
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost: float = 0.0
    reason: str = ""


@dataclass(slots=True)
class Report:
    """What a run did (or, dry, would do)."""

    dry_run: bool
    items: list[Item] = field(default_factory=list)
    written: int = 0

    @property
    def tokens(self) -> int:
        return sum(item.prompt_tokens + item.completion_tokens for item in self.items)

    @property
    def cost(self) -> float:
        return round(sum(item.cost for item in self.items), 6)

    def count(self, outcome: ItemOutcome) -> int:
        return sum(item.outcome == outcome for item in self.items)

    def to_dict(self) -> dict[str, Any]:
        return {
            "dry_run": self.dry_run,
            "tokens": self.tokens,
            "cost": self.cost,
            "written": self.written,
            "items": [asdict(item) for item in self.items],
        }


class Summarizer:
    """Owns the HTTP client, token limiter and store of a run; pass your own to share or test them."""

    def __init__(
        self,
        config: SummarizerConfig,
        *,
        http: HttpClient | None = None,
        db: Database | None = None,
        metrics: MetricsRegistry | None = None,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self.config = config
        self.clock = clock
        self._own_http = http is None
        self.http = http or HttpClient(settings=http_settings(config.llm_url), clock=clock)
        self._db = db
        self._own_db = db is None
        self._store: SummaryStore | None = None
        self.metrics = SummarizerMetrics(metrics)
        self._state = (
            RedisState(config.redis_url, prefix="summarizer", clock=clock) if config.redis_url else None
        )
        self.limiter = token_limiter(config, clock, self._state)

    @property
    def store(self) -> SummaryStore:
        """The summaries table; the database is opened on first use (a dry run never opens it)."""
        if self._store is None:
            if self._db is None:
                self._db = Database(self.config.database_url)
            self._store = SummaryStore(self._db, self.config.table)
            self._store.create()
        return self._store

    def plan(self, urls: Iterable[str], progress: Callable[[Item], object] = lambda item: None) -> Report:
        """Dry run: fetch each page and estimate its call; nothing is sent to the LLM or written."""
        report = Report(dry_run=True)
        for url in urls:
            page = self._fetch(url)
            if page.outcome == "ok":
                prompt = estimate_tokens(truncate(page.text, self.config.max_prompt_tokens))
                usage = Usage.of(prompt, self.config.summary_tokens, self.config)
                item = Item(url, page.host, "estimated", usage.prompt, usage.completion, usage.cost)
            else:
                item = Item(url, page.host, page.outcome, reason=page.reason)
            report.items.append(item)
            progress(item)
        return report

    def run(self, urls: Iterable[str], progress: Callable[[Item], object] = lambda item: None) -> Report:
        """Fetch, summarise and store; summaries are written ``batch_size`` at a time as they come."""
        llm = LlmClient(self.http, self.config, self.limiter)
        store = self.store
        report = Report(dry_run=False)
        pending: list[dict[str, Any]] = []
        for url in urls:
            item, row = self._summarise(llm, url)
            report.items.append(item)
            if row is not None:
                pending.append(row)
            if len(pending) >= self.config.batch_size:
                report.written += store.write(pending, self.config.batch_size)
                pending.clear()
            progress(item)
        if pending:
            report.written += store.write(pending, self.config.batch_size)
        return report

    def _fetch(self, url: str) -> Fetched:
        page = fetch_page(self.http, url)
        self.metrics.page(page.outcome)
        return page

    def _summarise(self, llm: LlmClient, url: str) -> tuple[Item, dict[str, Any] | None]:
        page = self._fetch(url)
        if page.outcome != "ok":
            return Item(url, page.host, page.outcome, reason=page.reason), None
        try:
            summary = llm.summarize(url, page.text)
        except _LLM_ERRORS as exc:
            self.metrics.llm_failed()
            return Item(url, page.host, "llm_failed", reason=f"LLM: {exc.error_code}"), None
        usage = summary.usage
        self.metrics.spent(usage, summary.waited)
        row = {
            "url": url,
            "host": page.host,
            "summary": summary.text,
            "prompt_tokens": usage.prompt,
            "completion_tokens": usage.completion,
            "cost": usage.cost,
            "created_at": self.clock.time(),
        }
        return Item(url, page.host, "summarised", usage.prompt, usage.completion, usage.cost), row

    def close(self) -> None:
        """Close what this summariser opened itself."""
        if self._own_http:
            self.http.close()
        if self._own_db and self._db is not None:
            self._db.close()
        if self._state is not None:
            self._state.close()

    def __enter__(self) -> Summarizer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
