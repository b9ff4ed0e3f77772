"""get_cache(): the backend the settings ask for, the reason logged, and the health check."""

from __future__ import annotations

import logging
import uuid

import pytest

from buttress.cache import BackendChoice, Cache, MemoryBackend, get_cache, reset_cache, set_cache
from buttress.cache._defaults import cache_health, choose_backend
from buttress.config import load_settings
from buttress.errors import ValidationError
from tests._ports import free_port

pytestmark = pytest.mark.usefixtures("isolated_settings")


def test_without_redis_the_cache_is_memory_and_says_why(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="buttress.cache"):
        cache = get_cache()
    assert get_cache() is cache
    assert isinstance(cache.backend, MemoryBackend)
    assert cache.backend_choice == BackendChoice("auto", "memory", "BUTTRESS_REDIS_URL is not set")
    assert "cache backend: memory (BUTTRESS_REDIS_URL is not set)" in caplog.text
    result = cache_health()
    assert result is not None
    assert result.status == "pass"
    assert "memory backend" in result.output


def test_settings_shape_the_memory_cache(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BUTTRESS_CACHE__DEFAULT_TTL", "30")
    monkeypatch.setenv("BUTTRESS_CACHE__MAX_ENTRIES", "5")
    cache = get_cache()
    assert cache.ttl == 30
    assert isinstance(cache.backend, MemoryBackend)
    assert cache.backend.max_entries == 5


def test_the_memory_cache_applies_the_json_rule_by_default() -> None:
    cache = get_cache()  # what Redis would return as {'1': 'a'} is refused here too
    with pytest.raises(ValidationError, match="JSON object keys are strings"):
        cache.set("k", {1: "a"})


def test_the_memory_cache_applies_the_configured_serializers_rule(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BUTTRESS_CACHE__SERIALIZER", "msgpack")
    cache = get_cache()
    cache.set("k", {1: "a"})
    assert cache.get("k") == {1: "a"}
    with pytest.raises(ValidationError, match="tuple comes back as a list"):
        cache.set("k", (1, 2))


def test_auto_with_a_reachable_redis_is_tiered(monkeypatch: pytest.MonkeyPatch, redis_url: str) -> None:
    monkeypatch.setenv("BUTTRESS_REDIS_URL", redis_url)
    monkeypatch.setenv("BUTTRESS_CACHE__PREFIX", f"t{uuid.uuid4().hex[:8]}")
    cache = get_cache()
    try:
        assert cache.backend.name == "tiered"
        assert "answered at startup" in cache.backend_choice.reason
        cache.set("k", {"v": 1})
        assert cache.get("k") == {"v": 1}
        result = cache_health()
        assert result is not None
        assert result.status == "pass"
    finally:
        cache.clear()
        reset_cache()


def test_auto_with_redis_down_falls_back_to_memory_and_warns(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BUTTRESS_REDIS_URL", f"redis://127.0.0.1:{free_port()}/0")
    cache = get_cache()
    assert cache.backend.name == "memory"
    result = cache_health()
    assert result is not None
    assert result.status == "warn"
    assert "did not answer at startup" in result.output


def test_explicit_redis_backend_starts_degraded_when_redis_is_down(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BUTTRESS_REDIS_URL", f"redis://127.0.0.1:{free_port()}/0")
    monkeypatch.setenv("BUTTRESS_CACHE__BACKEND", "redis")
    cache = get_cache()
    assert cache.backend.name == "redis"
    assert cache.get_or_set("k", lambda: 5) == 5  # served from the local fallback, no error
    assert cache.get("k") == 5
    result = cache_health()
    assert result is not None
    assert result.status == "warn"


def test_choose_backend_reasons(redis_url: str) -> None:
    explicit = choose_backend(load_settings(env_file=None, environ={"BUTTRESS_CACHE__BACKEND": "memory"}))
    assert explicit == BackendChoice("memory", "memory", "BUTTRESS_CACHE__BACKEND=memory")
    auto = choose_backend(load_settings(env_file=None, environ={"BUTTRESS_REDIS_URL": redis_url}))
    assert auto.chosen == "tiered"


def test_set_cache_replaces_and_returns_the_previous() -> None:
    mine = Cache()
    previous = set_cache(mine)
    assert get_cache() is mine
    assert set_cache(previous) is mine
