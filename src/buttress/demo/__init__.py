"""``buttress demo http``: a batch of HTTP calls through per-host policies, next to plain httpx.

Five fake upstreams on loopback (healthy, flaky, rate-limited, dead, slow) get the same shuffled batch
three times: through :class:`~buttress.http.AsyncHttpClient` with the default policies (three knobs
changed, listed in the report), then through a plain ``httpx.AsyncClient``, then through buttress again
with the first pass's successes in a :class:`~buttress.cache.Cache`. The report shows, per upstream, what
the retries, breaker and limiter changed, and what the cache saved; ``run_demo`` is the programmatic
entry point.
"""

from buttress._extras import require

# First, so a missing extra is named (pip install 'buttress[cli,server]') instead of a bare import error.
require("rich", "cli", "buttress demo http")
for _package in ("fastapi", "uvicorn"):
    require(_package, "server", "buttress demo http (it runs the ops server)")

from buttress.demo._render import render_report
from buttress.demo._report import CachedPassReport, DemoReport, PassReport, PassStats
from buttress.demo._run import run_demo

__all__ = ["CachedPassReport", "DemoReport", "PassReport", "PassStats", "render_report", "run_demo"]
