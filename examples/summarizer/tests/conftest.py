"""A summariser wired to fake upstreams, a SQLite file in the test's folder and a fresh metrics registry."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from buttress.clock import FakeClock
from buttress.db import Database
from buttress.observe.metrics import MetricsRegistry
from buttress.testing import Fault, Upstream
from examples.summarizer.config import SummarizerConfig
from examples.summarizer.run import Summarizer


@dataclass
class Rig:
    upstream: Upstream
    summarizer: Summarizer
    metrics: MetricsRegistry
    db: Database

    def urls(self, domains: tuple[str, ...], pages: int) -> list[str]:
        return [self.upstream.url(d, f"/articles/{n}") for n in range(pages) for d in domains]


@pytest.fixture
def rig(upstream: Upstream, tmp_path: Path, isolated_settings: None) -> Iterator[Rig]:
    upstream.add("news")
    upstream.add("blog")
    upstream.add("down", Fault(errors={503: 1.0}))  # answers, always 503
    upstream.add("dead")
    upstream.set_down("dead")  # refuses connections
    upstream.add("llm")
    config = SummarizerConfig.build(llm_url=upstream.url("llm", "/v1/summarize"), batch_size=4)
    db = Database(f"sqlite:///{tmp_path / 'summaries.db'}")
    metrics = MetricsRegistry()
    # the fake clock makes retry backoffs instant; the limiter's bucket (10,000 tokens) is never short here
    with Summarizer(config, db=db, metrics=metrics, clock=FakeClock()) as summarizer:
        yield Rig(upstream, summarizer, metrics, db)
    db.close()
