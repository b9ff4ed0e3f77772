"""`buttress cache warm` (importing the user's module, progress bar, results) and `buttress cache stats`."""

from __future__ import annotations

import gc
import io
import json
import sys
import textwrap
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from rich.console import Console
from typer.testing import CliRunner

from buttress.cache import Cache, MemoryBackend, reset_cache, set_cache
from buttress.cache.cli import stats_command, warm_command
from buttress.cli import app
from buttress.clock import FakeClock
from buttress.observe.metrics import MetricsRegistry
from tests.server.conftest import build
from tests.server.test_live_server import serving

WARMERS = """
from buttress.cache import Cache, MemoryBackend
from buttress.cache._warm import warmer

cache = Cache(MemoryBackend())
loaded = []

@warmer(cache, "popular")
def popular():
    for done in range(1, 4):
        cache.set(f"top:{done}", done)
        yield done, 3

@warmer(cache, "settings")
async def settings():
    await cache.aset("settings", {"theme": "dark"})
"""

BROKEN = """
@warmer(cache, "broken", on_startup=False)
def broken():
    raise ConnectionError("catalog service refused")
"""


@pytest.fixture(autouse=True)
def _isolated(isolated_settings: None, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Settings from the test alone, a wide terminal, and no warmers of other tests' dead caches."""
    monkeypatch.setenv("COLUMNS", "200")
    gc.collect()
    yield
    reset_cache()
    gc.collect()


@pytest.fixture
def module(tmp_path: Path) -> Iterator[str]:
    """Write a module of warmers in the working directory (tmp_path); yields its name, then forgets it."""
    name = f"warmers_{uuid.uuid4().hex}"
    (tmp_path / f"{name}.py").write_text(textwrap.dedent(WARMERS))
    yield name
    sys.modules.pop(name, None)


def _invoke(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, ["cache", *args])
    return result.exit_code, result.stdout, result.stderr


def test_warm_imports_the_module_and_runs_every_warmer(module: str) -> None:
    code, out, _ = _invoke("warm", "-m", module)
    assert code == 0, out
    assert "2 cache warmers" in out
    assert "popular" in out
    assert "settings" in out
    warmed = sys.modules[module].cache
    assert warmed.get("top:3") == 3
    assert warmed.get("settings") == {"theme": "dark"}


def test_warm_json_prints_only_json_on_stdout(module: str) -> None:
    code, out, err = _invoke("warm", "popular", "--module", module, "--json")
    assert code == 0, err
    results = json.loads(out)
    assert [(r["name"], r["outcome"], r["items"], r["error"]) for r in results] == [
        ("popular", "ok", 3, None)
    ]
    assert "popular" in err  # the progress bar went to stderr
    assert sys.modules[module].cache.get("settings") is None  # not asked for


def test_a_failing_warmer_exits_1_after_the_others_ran(module: str, tmp_path: Path) -> None:
    path = tmp_path / f"{module}.py"
    path.write_text(textwrap.dedent(WARMERS) + textwrap.dedent(BROKEN))
    code, out, _ = _invoke("warm", "-m", module, "--json")
    assert code == 1
    results = {r["name"]: r for r in json.loads(out)}
    assert results["broken"]["outcome"] == "failed"
    assert results["broken"]["error"] == "ConnectionError: catalog service refused"
    assert results["popular"]["outcome"] == results["settings"]["outcome"] == "ok"


def test_warm_explains_what_went_wrong(module: str) -> None:
    code, _, err = _invoke("warm", "-m", "no_such_module_for_buttress")
    assert code == 1
    assert "cannot import module 'no_such_module_for_buttress' (--module): ModuleNotFoundError" in err
    code, _, err = _invoke("warm")
    assert code == 1
    assert "no cache warmers are registered: pass --module/-m" in err
    code, _, err = _invoke("warm", "nope", "-m", module)
    assert code == 1
    assert "no cache warmer named 'nope'; registered: popular, settings" in err


def test_the_progress_bar_follows_the_warmers(module: str) -> None:
    output = io.StringIO()
    console = Console(file=output, force_terminal=True, width=120)
    assert warm_command(modules=[module], console=console, err_console=console) == 0
    shown = output.getvalue()
    assert "popular" in shown
    assert "3/3" in shown  # the generator's (done, total)


def _console() -> tuple[Console, io.StringIO]:
    out = io.StringIO()
    return Console(file=out, width=200, color_system=None), out


def test_stats_reads_a_live_ops_server() -> None:
    clock = FakeClock()
    cache = Cache(
        MemoryBackend(max_entries=5, clock=clock), clock=clock, metrics=MetricsRegistry(clock=clock)
    )
    set_cache(cache)
    pages = cache.namespaced("pages")
    for _ in range(2):
        for key in range(100):
            pages.get_or_set(str(key), lambda: "html")
    built = build()
    with serving(built.app) as base:
        console, out = _console()
        assert stats_command(url=base, console=console) == 0
        text = out.getvalue()
        assert "cache backend: memory available" in text
        assert "pages" in text
        assert "0.0%" in text
        assert (
            "pages: hit rate 0% over 200 lookups with 195 evictions for 200 sets: raise max_entries (now 5)"
            in text
        )
        code, json_out, _ = _invoke("stats", "--url", base, "--json")
    assert code == 0
    document = json.loads(json_out)
    assert document["recommendations"][0]["code"] == "raise_max_entries"


def test_stats_explains_an_unreachable_server_and_an_error_status() -> None:
    console, out = _console()
    assert stats_command(url="http://127.0.0.1:9/ops", console=console) == 1
    assert "cannot reach the ops server" in out.getvalue()

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(503, json={"detail": "warming up"})

    console, out = _console()
    assert stats_command(url="http://x/ops", console=console, transport=httpx.MockTransport(handler)) == 1
    assert "GET http://x/ops/cache/stats: HTTP 503: warming up" in out.getvalue()
