"""Per-domain breakers, the metrics of a run, and keyset pages over what it wrote."""

from __future__ import annotations

import uuid
from pathlib import Path

import httpx
import pytest

from buttress.clock import FakeClock
from buttress.db import Database
from buttress.testing import Fault
from examples.summarizer.pages import page_text
from examples.summarizer.run import Summarizer
from examples.summarizer.tests.conftest import Rig


def test_failing_and_dead_domains_open_their_breakers_while_the_others_are_summarised(rig: Rig) -> None:
    domains = ("news", "down", "blog", "dead")
    report = rig.summarizer.run(rig.urls(domains, pages=8))

    by_host = {rig.upstream.host(d): d for d in domains}
    outcomes = {d: [i.outcome for i in report.items if by_host[i.host] == d] for d in domains}
    assert outcomes["news"] == ["summarised"] * 8
    assert outcomes["blog"] == ["summarised"] * 8
    # 2 attempts for the first page; the second page's first failure is the third in a row and opens the
    # breaker: its 503 is returned, but a refused connection has no answer to return, so the refusal is;
    # the other 6 pages are refused without a request
    assert outcomes["down"] == ["failed"] * 2 + ["breaker_open"] * 6
    assert outcomes["dead"] == ["failed"] + ["breaker_open"] * 7
    assert rig.upstream.calls("down") == 3
    assert [i.reason for i in report.items if by_host[i.host] == "down"][:2] == [
        "503 after 2 attempt(s)",
        "503 after 1 attempt(s)",
    ]
    dead = next(i for i in report.items if by_host[i.host] == "dead")
    assert dead.reason == "ConnectError after 2 attempt(s)"
    stats = {s.host: s for s in rig.summarizer.http.stats()}
    assert {d: stats[rig.upstream.host(d)].breaker_state for d in domains} == {
        "news": "closed",
        "down": "open",
        "blog": "closed",
        "dead": "open",
    }
    assert stats[rig.upstream.host("dead")].requests == 3
    assert stats[rig.upstream.host("dead")].rejected["breaker"] == 7
    assert rig.summarizer.run([rig.upstream.url("down", "/again")]).items[0].outcome == "breaker_open"
    assert rig.upstream.calls("down") == 3
    assert report.written == 16
    assert rig.summarizer.store.count() == 16
    assert rig.upstream.calls("llm") == 16


def test_an_llm_that_keeps_failing_writes_nothing_and_is_counted(rig: Rig) -> None:
    rig.upstream.set_fault("llm", Fault(errors={503: 1.0}))
    report = rig.summarizer.run(rig.urls(("news",), pages=2))
    assert [i.outcome for i in report.items] == ["llm_failed", "llm_failed"]
    assert report.items[0].reason == "LLM: upstream_status"
    assert report.written == 0
    assert rig.summarizer.store.count() == 0
    calls = rig.metrics.snapshot()["summarizer_llm_calls_total"]["series"]
    assert calls == [{"labels": {"outcome": "failed"}, "value": 2.0}]


def test_html_pages_are_read_as_their_text() -> None:
    html = "<head><style>p {}</style><script>x()</script></head><p>Hello,\n  <b>world</b>.</p><p>Bye.</p>"
    response = httpx.Response(200, headers={"content-type": "text/html; charset=utf-8"}, text=html)
    assert page_text(response) == "Hello, world. Bye."
    assert page_text(httpx.Response(200, text="plain   text\n")) == "plain text"


def test_the_metrics_count_pages_calls_tokens_and_cost(rig: Rig) -> None:
    report = rig.summarizer.run(rig.urls(("news", "down"), pages=5))
    snapshot = rig.metrics.snapshot()

    def series(name: str) -> dict[str, float]:
        return {",".join(s["labels"].values()): s["value"] for s in snapshot[name]["series"]}

    summarised = [i for i in report.items if i.outcome == "summarised"]
    assert len(summarised) == 5
    assert series("summarizer_pages_total") == {"ok": 5, "failed": 2, "breaker_open": 3}
    assert series("summarizer_llm_calls_total") == {"ok": 5}
    tokens = series("summarizer_llm_tokens_total")
    assert tokens["prompt"] == sum(i.prompt_tokens for i in summarised) > 0
    assert tokens["completion"] == sum(i.completion_tokens for i in summarised) > 0
    assert abs(series("summarizer_llm_cost_dollars_total")[""] - report.cost) < 1e-9
    assert report.cost > 0
    assert series("summarizer_llm_wait_seconds_total") == {"": 0.0}


def test_pages_walk_every_summary_once_newest_first(rig: Rig) -> None:
    urls = rig.urls(("news", "blog"), pages=23)  # 46 rows, 12 batches of 4, three pages of 20
    rig.summarizer.run(urls)  # on the fake clock every row has the same created_at

    store = rig.summarizer.store
    page = store.page(limit=20)
    seen = [row["url"] for row in page.items]
    pages = 1
    while page.next:
        page = store.page(after=page.next, limit=20)
        seen += [row["url"] for row in page.items]
        pages += 1
    assert pages == 3
    assert len(seen) == 46
    assert sorted(seen, reverse=True) == seen  # ties on created_at fall back to the key, descending
    assert set(seen) == set(urls)


def test_a_page_summarised_again_replaces_its_row(rig: Rig) -> None:
    url = rig.upstream.url("news", "/same")
    rig.summarizer.run([url, url])
    assert rig.summarizer.store.count() == 1


def test_calls_past_the_token_limit_wait_and_the_wait_is_counted(rig: Rig, tmp_path: Path) -> None:
    config = rig.summarizer.config.model_copy(update={"tokens_per_minute": 1_000})
    clock = FakeClock()  # auto-advancing: each wait for tokens moves it by exactly that wait
    db = Database(f"sqlite:///{tmp_path / 'limited.db'}")
    with Summarizer(config, db=db, metrics=rig.metrics, clock=clock) as summarizer:
        report = summarizer.run(rig.urls(("news",), pages=10))
    db.close()
    per_call = report.items[0].prompt_tokens + config.summary_tokens
    assert report.count("summarised") == 10
    assert per_call * 10 > 1_000  # more than a minute's tokens: some calls had to wait
    waited = rig.metrics.snapshot()["summarizer_llm_wait_seconds_total"]["series"][0]["value"]
    assert waited == pytest.approx(sum(clock.sleeps))
    assert waited > 0
    # GCRA: a call's tokens come back at 1,000 a minute, so the wait is what the overdraft takes to refill
    assert waited == pytest.approx((per_call * 10 - 1_000) * 60 / 1_000, abs=0.06 * 10)


@pytest.mark.postgres
def test_a_run_on_postgresql_writes_and_pages_the_same(rig: Rig, database_url: str) -> None:
    table = f"summaries_{uuid.uuid4().hex[:8]}"  # a table of this test's own, dropped after
    config = rig.summarizer.config.model_copy(update={"database_url": database_url, "table": table})
    with Summarizer(config, clock=FakeClock(), metrics=rig.metrics) as summarizer:
        try:
            urls = rig.urls(("news", "down", "blog"), pages=9)
            report = summarizer.run(urls)  # 18 summaries in batches of 4: 5 COPY transactions
            assert report.written == 18
            first = summarizer.store.page(limit=10)
            second = summarizer.store.page(after=first.next, limit=10)
            seen = [row["url"] for row in (*first.items, *second.items)]
            assert len(seen) == 18
            assert set(seen) == {i.url for i in report.items if i.outcome == "summarised"}
            assert second.next is None
        finally:
            summarizer.store.drop()
