"""The dashboard in real Chromium: Debian's browser driven by Playwright, never a downloaded one.

Select these tests with ``-m browser`` (or skip them with ``-m "not browser"``). The browser is the
``chromium`` on PATH (``/usr/bin/chromium`` from apt, installed by ``.ci/run``); without one the tests
skip, and fail under ``BUTTRESS_REQUIRE_SERVICES=1``.

``ops_server`` runs a real uvicorn (WebSockets on) in a thread of the test process with the ops app, a
job worker on SQLite, and an HTTP client whose per-host breaker guards a :class:`buttress.testing.Upstream`
domain, all on the process's event bus, so job progress and breaker changes reach the page over the
realtime WebSocket exactly as in a service. Jobs advance only when a test releases their gate.
"""

from __future__ import annotations

import contextlib
import gc
import os
import shutil
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import uvicorn

from buttress.config import HttpSettings, Settings, reset_settings
from buttress.http import HttpClient, HttpPolicies
from buttress.jobs import JobContext, job
from buttress.server import create_app
from buttress.testing import Fault, Upstream
from buttress.testing.jobs import JobWorker, job_worker
from tests.conftest import services_required

ADMIN_TOKEN = "browser-admin-token-0123456789abcdef"
STARTUP_SECONDS = 20.0
HEARTBEAT = 0.5
IDLE_TIMEOUT = 2.0
ARTIFACTS = Path(__file__).resolve().parents[2] / ".artifacts"
"""Screenshots the tests keep (gitignored): ``.artifacts/dashboard.png`` at the repository's root."""

GATES: dict[str, threading.Semaphore] = {}
"""One semaphore per stepped job run: each release lets its job take one step."""


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "browser: drives the dashboard in Debian's Chromium through Playwright"
    )


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.browser)


@job(queue="dashboard-browser", name="dashboard_browser.stepped", retry=1)
def stepped(ctx: JobContext, run: str, steps: int) -> int:
    """Take ``steps`` steps, each when the test releases ``GATES[run]``; stop when cancelled."""
    gate = GATES[run]
    for step in range(1, steps + 1):
        while not gate.acquire(timeout=0.02):  # wait for the test, and notice a cancel meanwhile
            ctx.raise_if_cancelled()
        ctx.progress(step / steps, f"step {step} of {steps}")
    return steps


def chromium_path() -> str:
    """Debian's chromium; skip (or fail when services are required) where there is none."""
    found = shutil.which("chromium") or "/usr/bin/chromium"
    if not os.access(found, os.X_OK):
        message = "chromium is needed by the browser tests (Debian package chromium; .ci/run installs it)"
        if services_required():
            pytest.fail(
                message + " and BUTTRESS_REQUIRE_SERVICES=1 turns the skip into a failure", pytrace=False
            )
        pytest.skip(message)
    return found


@pytest.fixture(scope="package")
def browser() -> Iterator[Any]:
    """One headless Chromium for these tests, launched from its Debian path (no download, ever).

    Package scope, not session: Playwright's sync API marks an event loop running in the main thread
    while it is open, which the rest of the suite's asyncio tests must not inherit.
    """
    path = chromium_path()
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as playwright:
        try:
            launched = playwright.chromium.launch(executable_path=path, headless=True)
        except Exception as exc:
            pytest.fail(f"Chromium at {path} did not launch under Playwright: {exc}", pytrace=False)
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1280, "height": 1000})
    page = context.new_page()
    page.set_default_timeout(10_000)
    try:
        yield page
    finally:
        context.close()


@dataclass
class OpsServer:
    """The served app and what it reports on; ``url`` is the base (``http://127.0.0.1:<port>``)."""

    url: str
    worker: JobWorker
    upstream: Upstream
    http: HttpClient
    runs: list[str] = field(default_factory=list)

    @property
    def dashboard(self) -> str:
        return self.url + "/dashboard"

    def start_job(self, steps: int) -> tuple[int, threading.Semaphore]:
        """Defer a stepped job; returns its id and the gate that lets it take a step."""
        run = f"run-{len(self.runs)}-{time.monotonic_ns()}"
        gate = GATES[run] = threading.Semaphore(0)
        self.runs.append(run)
        handle = stepped.defer(run=run, steps=steps)
        return handle.id, gate

    def call_upstream(self) -> None:
        """One GET through the HTTP client (its breaker counts the outcome); errors are expected."""
        with contextlib.suppress(Exception):  # an open breaker or a refused connection: the point
            self.http.get(self.upstream.url("payments", "/charge"))


@contextmanager
def worker_thread(path: Path) -> Iterator[JobWorker]:
    """:func:`job_worker` entered and left on a thread of its own.

    Playwright's sync API keeps an event loop marked running in the main thread, and a ``Database``
    closed under a running loop only detaches its async pool (its aiosqlite connections would be left to
    the garbage collector, a ResourceWarning). On a plain thread the pool is closed properly.
    """
    ready, stop = threading.Event(), threading.Event()
    box: dict[str, Any] = {}

    def own() -> None:
        try:
            with job_worker(path, queues=["dashboard-browser"]) as worker:
                box["worker"] = worker
                ready.set()
                stop.wait()
                worker.drain()
        except BaseException as exc:  # handed to the test's thread
            box["error"] = exc
            ready.set()

    thread = threading.Thread(target=own, name="job-worker-owner", daemon=True)
    thread.start()
    assert ready.wait(STARTUP_SECONDS), "the job worker did not start in time"
    if "error" in box:
        raise box["error"]
    try:
        yield box["worker"]
    finally:
        stop.set()
        thread.join(STARTUP_SECONDS)
        assert not thread.is_alive(), "the job worker did not stop in time"
    if "error" in box:
        raise box["error"]


def _serve(app: Any) -> tuple[uvicorn.Server, threading.Thread, str]:
    config = uvicorn.Config(
        app, host="127.0.0.1", port=0, log_config=None, ws="websockets-sansio", lifespan="on"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="uvicorn-dashboard-test", daemon=True)
    thread.start()
    deadline = time.monotonic() + STARTUP_SECONDS
    while not server.started:  # bounded wait for the socket to be bound and the lifespan to start
        assert thread.is_alive(), "uvicorn stopped during startup"
        assert time.monotonic() < deadline, "uvicorn did not start in time"
        time.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    return server, thread, f"http://127.0.0.1:{port}"


@pytest.fixture
def ops_server(
    isolated_settings: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[OpsServer]:
    # Pings every half second and a 2 s idle timeout: a page that stopped answering pings is dropped
    # within any test, so every test checks the page's pongs too.
    monkeypatch.setenv("BUTTRESS_REALTIME__HEARTBEAT", str(HEARTBEAT))
    monkeypatch.setenv("BUTTRESS_REALTIME__IDLE_TIMEOUT", str(IDLE_TIMEOUT))
    reset_settings()
    settings = Settings(_env_file=None, security={"admin_token": ADMIN_TOKEN})
    policies = HttpPolicies(
        HttpSettings.model_validate(
            {"default": {"retry": {"attempts": 1}, "breaker": {"consecutive_failures": 3}}}
        ),
        store="memory",
    )
    upstream = Upstream()
    upstream.add("payments", Fault())
    server, thread, url = _serve(create_app(settings))
    try:
        with upstream, worker_thread(tmp_path / "jobs.db") as worker:
            http = HttpClient(policies=policies, raise_for_status=True)
            served = OpsServer(url, worker, upstream, http)
            try:
                yield served
            finally:
                for run in served.runs:  # let every job still waiting finish: the worker stops idle
                    GATES.pop(run).release(1000)
                http.close()
    finally:  # the server stops last: its lifespan's end must not close what the worker still uses
        server.should_exit = True
        thread.join(STARTUP_SECONDS)
        gc.collect()  # report what the worker left behind in this test's teardown, not at the session's end
