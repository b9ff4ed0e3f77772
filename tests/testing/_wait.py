"""Wait for the upstream to have seen requests: a condition with a deadline, never a timing assertion."""

from __future__ import annotations

import time

from buttress.testing import Upstream


def wait_for_calls(up: Upstream, count: int, path: str | None = None) -> None:
    deadline = time.monotonic() + 5.0
    while up.calls(path=path) < count:
        assert time.monotonic() < deadline, f"the upstream never saw {count} requests"
        time.sleep(0.002)
