"""The dashboard in Chromium: it loads clean and fast, follows a job's progress, cancels and retries a job
as an admin, and shows a breaker opening the moment its upstream dies; a screenshot is kept.

Every wait is Playwright's auto-waiting ``expect`` with a timeout: the tests never sleep.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from .conftest import ADMIN_TOKEN, ARTIFACTS, IDLE_TIMEOUT, OpsServer

expect = pytest.importorskip("playwright.sync_api").expect

LIVE = 5_000  # ms an update pushed over the WebSocket may take to show (the budget is 500 ms)


@pytest.fixture
def problems(page: Any) -> Iterator[list[str]]:
    """Console errors and uncaught exceptions of the page; each test ends with none."""
    seen: list[str] = []
    page.on("console", lambda message: seen.append(message.text) if message.type == "error" else None)
    page.on("pageerror", lambda error: seen.append(f"uncaught: {error}"))
    yield seen
    assert seen == [], seen


def sign_in(page: Any) -> None:
    page.fill("#token", ADMIN_TOKEN)
    page.click("#auth button[type=submit]")
    expect(page.locator("#role")).to_have_text("admin")
    expect(page.locator("#connection")).to_have_text("live")


def first_paint(page: Any, url: str) -> float:
    """Load ``url``; milliseconds from the navigation's start to the first contentful paint."""
    page.goto(url)
    # The paint entry is recorded just after the paint: wait for it, then read when it happened.
    page.wait_for_function("() => performance.getEntriesByName('first-contentful-paint').length > 0")
    paint: float = page.evaluate("() => performance.getEntriesByName('first-contentful-paint')[0].startTime")
    return paint


def job_row(page: Any, job_id: int) -> Any:
    return page.locator(f'#jobs tr[data-job="{job_id}"]')


def test_chromium_launches(browser: Any) -> None:
    """The smoke test: which Chromium Playwright drives (a launch failure fails the fixture loudly)."""
    print(f"chromium {browser.version} driven by Playwright")
    assert browser.version.split(".")[0].isdigit()


def test_the_dashboard_loads_clean_and_fast(ops_server: OpsServer, page: Any, problems: list[str]) -> None:
    # The first load also pays for Chromium starting a renderer for the origin: it is printed, with a
    # loose bound; the budget (1 s) applies to the next load, the page's own cost.
    cold = first_paint(page, ops_server.dashboard)
    warm = first_paint(page, ops_server.dashboard)
    print(f"first contentful paint: {cold:.0f} ms (cold browser), {warm:.0f} ms")
    assert cold < 5000
    assert warm < 1000
    expect(page.locator("body")).to_have_attribute("data-loaded", "true")
    expect(page.locator("#connection")).to_have_text("live")  # the WebSocket, anonymously
    expect(page.locator("#role")).to_have_text("reader")
    expect(page.locator("#health .body")).to_contain_text("Overall")
    expect(page.locator("#system .body")).to_contain_text("host memory")
    expect(page.locator("#storage .body")).to_contain_text("files are not in use")
    # A reader sees the queues and jobs but gets no buttons to change them.
    job_id, _gate = ops_server.start_job(steps=2)
    expect(page.locator("#queues .body")).to_contain_text("dashboard-browser")
    expect(job_row(page, job_id)).to_have_attribute("data-status", "running")
    expect(job_row(page, job_id).locator("button")).to_have_count(0)


def test_a_jobs_progress_bar_moves_and_finishes(
    ops_server: OpsServer, page: Any, problems: list[str]
) -> None:
    page.goto(ops_server.dashboard)
    sign_in(page)
    job_id, gate = ops_server.start_job(steps=4)
    row = job_row(page, job_id)
    expect(row).to_have_attribute("data-status", "running")
    bar = row.locator(".bar")
    expect(bar).to_have_attribute("aria-valuenow", "0")
    for step in range(1, 5):
        started = time.perf_counter()
        gate.release()
        expect(bar).to_have_attribute("aria-valuenow", str(25 * step), timeout=LIVE)
        print(f"step {step}: on the page after {1000 * (time.perf_counter() - started):.0f} ms")
        expect(row.locator(".message")).to_have_text(f"step {step} of 4", timeout=LIVE)
    expect(row).to_have_attribute("data-status", "succeeded", timeout=LIVE)
    expect(bar).to_have_attribute("aria-valuenow", "100")


def test_an_admin_cancels_a_running_job_and_retries_it(
    ops_server: OpsServer, page: Any, problems: list[str]
) -> None:
    page.goto(ops_server.dashboard)
    sign_in(page)
    job_id, gate = ops_server.start_job(steps=2)
    row = job_row(page, job_id)
    expect(row).to_have_attribute("data-status", "running")
    row.locator("button[data-action=cancel]").click()
    expect(row).to_have_attribute("data-status", "cancelled", timeout=LIVE)
    expect(page.locator("#notice")).to_contain_text(f"job {job_id}: cancel")
    assert ops_server.worker.jobs.get(job_id).status.value == "cancelled"

    row.locator("button[data-action=retry]").click()
    expect(row).to_have_attribute("data-status", "running", timeout=LIVE)
    gate.release(2)
    expect(row).to_have_attribute("data-status", "succeeded", timeout=LIVE)


def test_a_breaker_turns_open_live_when_its_upstream_dies(
    ops_server: OpsServer, page: Any, problems: list[str]
) -> None:
    ops_server.call_upstream()  # the host's breaker exists once a request went there
    page.goto(ops_server.dashboard)
    sign_in(page)
    host = ops_server.upstream.host("payments")
    breaker = page.locator("#breakers tr", has_text=host)
    expect(breaker.locator(".state")).to_have_text("closed")
    job_id, gate = ops_server.start_job(steps=2)  # something moving in the screenshot
    gate.release()
    expect(job_row(page, job_id).locator(".bar")).to_have_attribute("aria-valuenow", "50", timeout=LIVE)
    expect(job_row(page, job_id).locator(".message")).to_have_text("step 1 of 2", timeout=LIVE)

    ops_server.upstream.set_down("payments")
    for _ in range(3):  # consecutive_failures=3
        ops_server.call_upstream()
    expect(breaker.locator(".state")).to_have_text("open", timeout=LIVE)

    # Snapshots came meanwhile (the stored progress lags its events): the bar and message stay put.
    expect(job_row(page, job_id).locator(".message")).to_have_text("step 1 of 2")
    expect(job_row(page, job_id).locator(".bar")).to_have_attribute("aria-valuenow", "50")
    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "dashboard.png"
    page.screenshot(path=str(shot), full_page=True)
    print(f"screenshot: {shot}")
    assert shot.stat().st_size > 10_000


def test_the_page_answers_pings_and_resumes_after_a_drop(
    ops_server: OpsServer, page: Any, problems: list[str]
) -> None:
    sockets: list[Any] = []
    page.on("websocket", lambda socket: sockets.append(socket))  # noqa: PLW0108 - Playwright wraps a function, not a bound builtin
    page.goto(ops_server.dashboard)
    sign_in(page)
    socket = sockets[-1]
    assert "bearer." not in socket.url  # the token travels in the subprotocol, never in the URL
    # Pongs for longer than the idle timeout: the server keeps the connection, the page stays on it.
    answered = 0
    started = time.monotonic()
    while time.monotonic() - started < 1.5 * IDLE_TIMEOUT:
        with socket.expect_event("framesent", predicate=lambda payload: '"pong"' in str(payload)):
            pass
        answered += 1
    assert answered >= 3
    expect(page.locator("#connection")).to_have_text("live")
    assert sockets[-1] is socket

    job_id, gate = ops_server.start_job(steps=2)
    bar = job_row(page, job_id).locator(".bar")
    gate.release()
    expect(bar).to_have_attribute("aria-valuenow", "50", timeout=LIVE)
    # The connection drops; the page reconnects by itself, with the id of the last event it saw.
    with page.expect_websocket(predicate=lambda ws: "last_id=" in ws.url, timeout=LIVE):
        page.evaluate("() => state.socket.close()")
    expect(page.locator("#connection")).to_have_text("live", timeout=LIVE)
    gate.release()
    expect(bar).to_have_attribute("aria-valuenow", "100", timeout=LIVE)
    expect(job_row(page, job_id)).to_have_attribute("data-status", "succeeded", timeout=LIVE)
