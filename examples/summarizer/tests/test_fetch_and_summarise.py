"""Per-domain breakers, the metrics of a run, and keyset pages over what it wrote."""

from __future__ import annotations

from examples.summarizer.tests.conftest import Rig


def test_a_failing_domain_opens_its_breaker_while_the_others_are_summarised(rig: Rig) -> None:
    urls = rig.urls(("news", "down", "blog"), pages=8)
    report = rig.summarizer.run(urls)

    by_host = {rig.upstream.host(d): d for d in ("news", "down", "blog")}
    outcomes = {d: [i.outcome for i in report.items if by_host[i.host] == d] for d in by_host.values()}
    assert outcomes["news"] == ["summarised"] * 8
    assert outcomes["blog"] == ["summarised"] * 8
    # three failed requests in a row open the breaker; the rest are refused without touching the network
    assert outcomes["down"][:2] == ["failed", "failed"]
    assert outcomes["down"][-5:] == ["breaker_open"] * 5
    wire_calls = rig.upstream.calls("down")
    assert wire_calls == 3  # 2 attempts for the first page; the second's first failure opens the breaker
    stats = {s.host: s for s in rig.summarizer.http.stats()}
    assert stats[rig.upstream.host("down")].breaker_state == "open"
    assert stats[rig.upstream.host("news")].breaker_state == "closed"
    assert rig.summarizer.run([rig.upstream.url("down", "/again")]).items[0].outcome == "breaker_open"
    assert rig.upstream.calls("down") == wire_calls
    assert report.written == 16
    assert rig.summarizer.store.count() == 16
    assert rig.upstream.calls("llm") == 16


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
