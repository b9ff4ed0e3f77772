"""The tokens-per-minute limit on an injected clock: a call costs its tokens, and the third one waits."""

from __future__ import annotations

import threading
import uuid

import pytest

from buttress.clock import FakeClock
from buttress.errors import RateLimited, ValidationError
from buttress.http import HttpClient
from buttress.testing import Fault, Upstream
from examples.summarizer.config import SummarizerConfig
from examples.summarizer.llm import LlmClient, token_limiter
from examples.summarizer.pages import http_settings
from examples.summarizer.run import Summarizer

CONFIG = SummarizerConfig.build(
    llm_url="http://unused.test/", tokens_per_minute=1_000, max_prompt_tokens=600, summary_tokens=100
)


def test_1000_tokens_a_minute_lets_400_and_400_through_and_holds_the_third() -> None:
    clock = FakeClock(auto_advance=False)
    limiter = token_limiter(CONFIG, clock)
    assert limiter.try_acquire("fake-small", cost=400)
    assert limiter.try_acquire("fake-small", cost=400)
    assert not limiter.try_acquire("fake-small", cost=400)  # 200 left: short by 200 tokens, 12 s at 1000/min
    clock.advance(11.9)
    assert not limiter.try_acquire("fake-small", cost=400)
    clock.advance(0.1)
    assert limiter.try_acquire("fake-small", cost=400)
    assert not limiter.try_acquire("fake-small", cost=1)


def test_a_call_never_waits_past_a_minute() -> None:
    limiter = token_limiter(CONFIG, FakeClock(auto_advance=False))
    assert limiter.try_acquire("fake-small", cost=1_000)
    with pytest.raises(RateLimited) as caught:
        limiter.acquire("fake-small", cost=1_000, timeout=30.0)  # needs 60 s
    assert caught.value.retry_after == pytest.approx(60.0)
    with pytest.raises(ValidationError) as too_big:
        limiter.acquire("fake-small", cost=1_001)  # more than the bucket ever holds
    assert too_big.value.field == "cost"


def test_the_third_llm_call_waits_for_the_clock_and_only_then_reaches_the_api(upstream: Upstream) -> None:
    upstream.add("llm")
    config = CONFIG.model_copy(update={"llm_url": upstream.url("llm", "/v1/summarize")})
    clock = FakeClock(auto_advance=False)
    text = ("Twenty-eight characters, ok. " * 50)[:1_200]  # 1,200 characters: 300 prompt tokens
    with HttpClient(settings=http_settings(config.llm_url)) as http:
        llm = LlmClient(http, config, token_limiter(config, clock))
        assert llm.weight(llm.prompt(text)) == 400  # 300 prompt + 100 reserved for the completion
        first, second = llm.summarize("u1", text), llm.summarize("u2", text)
        assert (first.waited, second.waited, upstream.calls("llm")) == (0.0, 0.0, 2)

        done: list[float] = []
        third = threading.Thread(target=lambda: done.append(llm.summarize("u3", text).waited))
        third.start()
        clock.wait_for_sleepers(1, timeout=5.0)
        assert upstream.calls("llm") == 2  # parked on the limiter: nothing sent yet
        clock.advance(12.0)
        third.join(timeout=5.0)
    assert done == [pytest.approx(12.0)]
    assert upstream.calls("llm") == 3
    assert first.usage.prompt == 300
    assert first.usage.completion <= 100


@pytest.mark.redis
def test_two_processes_share_one_limit_through_redis(redis_url: str) -> None:
    """Two summarisers (as two processes would) on Redis db 12 draw from one bucket, on one injected clock."""
    import redis

    url = redis_url.rsplit("/", 1)[0] + "/12"  # the summariser's own database number
    model = f"test-{uuid.uuid4().hex[:8]}"  # a bucket of this test's own
    config = CONFIG.model_copy(update={"redis_url": url, "model": model})
    clock = FakeClock(auto_advance=False)
    first, second = Summarizer(config, clock=clock), Summarizer(config, clock=clock)
    try:
        assert first.limiter.try_acquire(model, cost=400)
        assert second.limiter.try_acquire(model, cost=400)
        assert not first.limiter.try_acquire(model, cost=400)  # the other's 400 counted here too
        assert not second.limiter.try_acquire(model, cost=400)
        clock.advance(12.0)
        assert second.limiter.try_acquire(model, cost=400)
        assert not first.limiter.try_acquire(model, cost=400)
    finally:
        first.close()
        second.close()
        client = redis.Redis.from_url(url)
        keys = [key for key in client.scan_iter("summarizer:*") if model.encode() in key]
        assert keys  # the bucket really was in Redis
        client.delete(*keys)
        client.close()


def test_a_503_from_the_llm_is_retried_under_the_idempotency_key(upstream: Upstream) -> None:
    upstream.add("llm", Fault(errors={503: 0.3}))
    config = CONFIG.model_copy(update={"llm_url": upstream.url("llm", "/v1/summarize")})
    with HttpClient(settings=http_settings(config.llm_url), clock=FakeClock()) as http:
        llm = LlmClient(http, config, token_limiter(config, FakeClock()))
        summaries = [llm.summarize(f"u{n}", f"Page {n} says hello. It goes on.") for n in range(6)]
    assert [s.text for s in summaries] == [f"Page {n} says hello. It goes on." for n in range(6)]
    assert upstream.calls("llm") > 6  # some POSTs were answered 503 and sent again
