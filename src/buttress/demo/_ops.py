"""The ops server during the demo: uvicorn in a background thread, and one look at it mid-run.

The demo serves the real ops app (``buttress.server.create_app``) on a free loopback port, so while the
batch runs ``/metrics`` shows the ``buttress_http_*`` series and ``/breakers`` the hosts' breakers. The
probe fetches ``/health``, ``/metrics`` and ``/breakers`` once, halfway through, to show (and let tests
check) that it answered while the batch was running, and what any health warning said.
"""

from __future__ import annotations

import threading
import time
from dataclasses import asdict, dataclass
from types import TracebackType
from typing import Any, Final, Self

import httpx
import uvicorn

__all__ = ["OpsProbe", "OpsServer", "probe"]

STARTUP_SECONDS: Final = 10.0
HTTP_SERIES: Final = "buttress_http_"


class OpsServer:
    """``app`` served by uvicorn on 127.0.0.1 (port 0: any free one) from a daemon thread."""

    def __init__(self, app: Any, *, host: str = "127.0.0.1", port: int = 0) -> None:
        config = uvicorn.Config(
            app,
            host=host,
            port=port,
            log_level="warning",
            log_config=None,
            ws="websockets-sansio",
            lifespan="on",
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._serve, name="buttress-demo-ops", daemon=True)
        self._exit_code: str | int | None = None
        self.url = ""

    def _serve(self) -> None:
        try:
            self._server.run()
        except SystemExit as exited:  # uvicorn exits this way when the app's startup fails
            self._exit_code = exited.code

    def start(self) -> Self:
        """Start serving; returns once the socket is bound and the app's startup has run."""
        self._thread.start()
        deadline = time.monotonic() + STARTUP_SECONDS
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(
                    f"the demo's ops server did not start (exit code {self._exit_code}); see the log above"
                )
            time.sleep(0.01)  # uvicorn offers no startup hook to wait on from another thread
        port = self._server.servers[0].sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        return self

    def stop(self) -> None:
        """Ask uvicorn to exit (it runs the app's shutdown) and wait for the thread."""
        self._server.should_exit = True
        if self._thread.is_alive():
            self._thread.join(STARTUP_SECONDS)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


@dataclass(frozen=True, slots=True)
class OpsProbe:
    """What the ops server answered mid-run."""

    url: str
    health_status_code: int | None
    """HTTP status of ``GET /health`` (200 pass or warn, 503 fail), None when it did not answer."""
    health_status: str | None
    """The health document's ``status``: ``pass``, ``warn`` or ``fail``."""
    http_metric_samples: int
    """``buttress_http_*`` samples in ``GET /metrics``: the batch's own series, live."""
    health_warnings: tuple[str, ...] = ()
    """``<check>: <output>`` of each check that did not pass, e.g. ``system: cpu 100.0% >= cpu_warn=90%``."""
    breakers: tuple[str, ...] = ()
    """The breaker names ``GET /breakers`` listed (``http:flaky.demo.test``, ...)."""
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


async def probe(url: str) -> OpsProbe:
    """Fetch ``/health``, ``/metrics`` and ``/breakers`` from the ops server at ``url``, plain httpx."""
    try:
        async with httpx.AsyncClient(base_url=url, timeout=5.0) as client:
            health = await client.get("/health")
            metrics = await client.get("/metrics")
            breakers = await client.get("/breakers")
    except httpx.HTTPError as error:
        return OpsProbe(url, None, None, 0, error=f"{type(error).__name__}: {error}")
    document = health.json() if health.headers.get("content-type", "").endswith("json") else {}
    samples = sum(1 for line in metrics.text.splitlines() if line.startswith(HTTP_SERIES))
    names = tuple(str(row.get("name")) for row in breakers.json()) if breakers.is_success else ()
    return OpsProbe(
        url,
        health.status_code,
        document.get("status"),
        samples,
        health_warnings=_warnings(document),
        breakers=names,
    )


def _warnings(document: dict[str, Any]) -> tuple[str, ...]:
    """``<check>: <output>`` of every check in a health+json document that did not pass."""
    return tuple(
        f"{name}: {result.get('output') or result.get('status')}"
        for name, results in document.get("checks", {}).items()
        for result in results
        if result.get("status") != "pass"
    )
