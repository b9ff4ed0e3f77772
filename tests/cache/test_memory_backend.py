"""The memory backend: LRU order, entry and byte bounds, TTL on the fake clock, threads."""

from __future__ import annotations

import threading

import pytest

from buttress.cache import Entry, JsonSerializer, MemoryBackend
from buttress.clock import FakeClock
from buttress.errors import ValidationError


def test_least_recently_used_is_evicted_first() -> None:
    backend = MemoryBackend(max_entries=3)
    for key in ("n:a", "n:b", "n:c"):
        backend.set(key, Entry(key), None)
    backend.get("n:a")  # a is now the most recent
    backend.set("n:d", Entry("d"), None)
    assert backend.get("n:b") is None
    assert [backend.get(key) is not None for key in ("n:a", "n:c", "n:d")] == [True, True, True]
    assert backend.info().evictions == {"n": 1}


def test_byte_bound_evicts_and_refuses_oversized_values() -> None:
    backend = MemoryBackend(max_entries=100, max_bytes=100, sizer=lambda key, value: len(value))
    backend.set("n:a", Entry("x" * 40), None)
    backend.set("n:b", Entry("x" * 40), None)
    backend.set("n:c", Entry("x" * 40), None)
    assert backend.get("n:a") is None
    assert backend.bytes == 80
    backend.set("n:huge", Entry("x" * 101), None)
    assert backend.get("n:huge") is None
    assert backend.bytes == 80
    assert backend.delete(["n:b", "n:c"]) == 2
    assert backend.bytes == 0


def test_default_size_estimate_counts_bytes() -> None:
    backend = MemoryBackend(max_bytes=10_000)
    backend.set("n:a", Entry({"k": "v" * 100}), None)
    assert 100 < backend.bytes < 200


def test_ttl_runs_on_the_injected_clock_and_counts_unread_expiries() -> None:
    clock = FakeClock()
    backend = MemoryBackend(clock=clock, max_entries=4)
    backend.set("n:read", Entry(1), 10)
    backend.set("n:unread", Entry(2), 10)
    assert backend.get("n:read") is not None
    clock.advance(10)
    assert not backend.exists("n:read")
    assert backend.get("n:read") is None
    assert backend.get("n:unread") is None
    assert backend.info().expired_unread == {"n": 1}
    assert len(backend) == 0


def test_expired_entries_are_swept_before_evicting_live_ones() -> None:
    clock = FakeClock()
    backend = MemoryBackend(clock=clock, max_entries=3)
    backend.set("n:old", Entry(0), 1)
    backend.set("n:b", Entry(1), None)
    backend.set("n:c", Entry(2), None)
    clock.advance(2)
    backend.set("n:d", Entry(3), None)
    assert all(backend.get(key) is not None for key in ("n:b", "n:c", "n:d"))
    assert backend.info().evictions == {}


def test_clear_all_and_peek() -> None:
    backend = MemoryBackend()
    backend.set("a:1", Entry(1, tags=("t",)), None)
    assert backend.peek("a:1") == Entry(1, tags=("t",))
    assert backend.clear_all() == 1
    assert backend.invalidate_tags(["t"]) == 0
    assert "0 entries" in repr(backend)


def test_threads_writing_and_reading_keep_the_bounds() -> None:
    backend = MemoryBackend(max_entries=500)
    errors: list[BaseException] = []

    def work(offset: int) -> None:
        try:
            for i in range(3000):
                key = f"n:{(offset * 7919 + i) % 2000}"
                backend.set(key, Entry(i, tags=(f"t{i % 5}",)), 60)
                backend.get(key)
                if i % 50 == 0:
                    backend.delete([key])
                    backend.invalidate_tags([f"t{i % 5}"])
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert len(backend) <= 500
    assert sum(backend.info().sizes.values()) == len(backend)  # type: ignore[union-attr]


def test_max_bytes_must_be_positive() -> None:
    with pytest.raises(ValidationError, match="max_bytes"):
        MemoryBackend(max_bytes=0)


def test_health_check_passes_with_a_count() -> None:
    backend = MemoryBackend()
    backend.set("n:a", Entry(1), None)
    result = backend.check()
    assert result.status == "pass"
    assert result.observed_value == 1


def test_a_serializer_rule_is_checked_when_the_backend_is_built() -> None:
    assert MemoryBackend(serializer="msgpack").serializer == "msgpack"
    assert MemoryBackend(serializer=JsonSerializer()).serializer == "json"
    assert MemoryBackend().serializer is None
    for wrong in ("yaml", 42):
        with pytest.raises(ValidationError) as raised:
            MemoryBackend(serializer=wrong)  # type: ignore[arg-type]
        assert raised.value.field == "serializer"
