"""The light import and the optional extras.

``import buttress`` loads no third-party package, its names resolve on first use, and code that needs an
extra whose package is missing raises MissingExtra naming ``pip install 'buttress[extra]'``. The missing
package is a real import failure: a fresh interpreter whose meta path refuses it, as if never installed.
"""

from __future__ import annotations

import importlib
import subprocess
import sys
import textwrap

import pytest

import buttress

OPTIONAL_OR_HEAVY = ("pydantic", "structlog", "redis", "fastapi", "typer", "rich", "sqlalchemy", "httpx")

# Prepended to each probe: packages named in HIDDEN cannot be imported, exactly as if not installed.
HIDE = """
import importlib.abc, sys

HIDDEN = {hidden!r}

class Refuse(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name.partition(".")[0] in HIDDEN:
            raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
        return None

sys.meta_path.insert(0, Refuse())
"""


def _python(code: str, *, hidden: tuple[str, ...] = ()) -> subprocess.CompletedProcess[str]:
    source = HIDE.format(hidden=set(hidden)) + textwrap.dedent(code)
    return subprocess.run(
        [sys.executable, "-c", source], capture_output=True, text=True, timeout=60, check=False
    )


def _loaded_after(statement: str) -> list[str]:
    code = f"{statement}\nprint(sorted(m for m in {OPTIONAL_OR_HEAVY!r} if m in sys.modules))"
    result = _python(code)
    assert result.returncode == 0, result.stderr
    return eval(result.stdout)  # noqa: S307 - our own probe's printed list


def test_import_buttress_loads_no_third_party_package() -> None:
    assert _loaded_after("import buttress") == []


def test_the_memory_event_bus_loads_neither_redis_nor_structlog() -> None:
    loaded = _loaded_after(
        "from buttress.events import EventBus, publish\nwith EventBus() as bus: bus.flush()"
    )
    assert not {"redis", "structlog"} & set(loaded)


def test_resilience_without_settings_loads_neither_pydantic_nor_redis() -> None:
    """Wanting Retry or a memory breaker costs no settings machinery: pydantic loads with settings only."""
    loaded = _loaded_after(
        "from buttress.resilience import CircuitBreaker, Retry\n"
        "Retry(attempts=2, on=OSError)(lambda: None)()\nCircuitBreaker('b')(lambda: None)()"
    )
    assert not {"pydantic", "redis", "structlog"} & set(loaded)


def test_resolving_a_name_loads_only_its_module() -> None:
    assert _loaded_after("import buttress; buttress.FakeClock; buttress.ValidationError") == []
    assert "pydantic" in _loaded_after("import buttress; buttress.Settings")


@pytest.mark.parametrize("name", buttress.__all__)
def test_every_lazy_name_resolves_to_its_definition(name: str) -> None:
    exports = buttress._EXPORTS
    assert getattr(buttress, name) is getattr(importlib.import_module(exports[name]), name)


def test_the_lazy_table_the_names_and_dir_agree() -> None:
    assert set(buttress._EXPORTS) == set(buttress.__all__)
    assert set(buttress.__all__) <= set(dir(buttress))
    with pytest.raises(AttributeError, match="module 'buttress' has no attribute 'Retry'"):
        _ = buttress.Retry  # type: ignore[attr-defined]


def test_star_import_gets_every_name() -> None:
    namespace: dict[str, object] = {}
    exec("from buttress import *", namespace)  # noqa: S102
    assert set(buttress.__all__) <= set(namespace)


MISSING = [
    pytest.param(
        ("redis",),
        "from buttress.events import create_event_bus\n"
        "create_event_bus('redis', redis_url='redis://127.0.0.1:1/0')",
        "redis",
        id="redis-events",
    ),
    pytest.param(
        ("redis",),
        "from buttress.observe.health import redis_check\nredis_check('redis://127.0.0.1:1/0')",
        "redis",
        id="redis-health",
    ),
    pytest.param(("fastapi",), "import buttress.server", "server", id="server-fastapi"),
    pytest.param(("jwt",), "import buttress.server", "server", id="server-jwt"),
    pytest.param(("typer",), "import buttress.cli", "cli", id="cli-typer"),
    pytest.param(("rich",), "import buttress.cli", "cli", id="cli-rich"),
    pytest.param(("uvicorn",), "import buttress.demo", "server", id="demo-uvicorn"),
    pytest.param(
        ("sqlalchemy",),
        "from buttress.observe.health import database_check\ndatabase_check('sqlite://')",
        "db",
        id="db-health",
    ),
]


@pytest.mark.parametrize(("hidden", "code", "extra"), MISSING)
def test_a_missing_extra_is_named(hidden: tuple[str, ...], code: str, extra: str) -> None:
    probe = f"""
    from buttress._extras import MissingExtra
    try:
        {textwrap.indent(code, "        ").strip()}
    except MissingExtra as missing:
        print(missing.extra, missing.module, missing, sep="|")
    """
    result = _python(probe, hidden=hidden)
    assert result.returncode == 0, result.stderr
    got_extra, module, message = result.stdout.strip().split("|")
    assert (got_extra, module) == (extra, hidden[0])
    assert f"pip install 'buttress[{extra}]'" in message


def test_the_command_without_its_extra_says_what_to_install() -> None:
    code = "import sys; sys.argv = ['buttress', 'version']\nfrom buttress.__main__ import main\nmain()"
    result = _python(code, hidden=("typer",))
    assert result.returncode == 1
    assert result.stdout == ""
    assert "install it with: pip install 'buttress[cli]'" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_command_whose_extra_is_missing_exits_1_without_a_traceback() -> None:
    code = "import sys; sys.argv = ['buttress', 'serve']\nfrom buttress.__main__ import main\nmain()"
    result = _python(code, hidden=("uvicorn",))
    assert result.returncode == 1
    assert "buttress serve needs the 'uvicorn' package" in result.stderr
    assert "pip install 'buttress[server]'" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_broken_optional_package_is_not_reported_as_missing() -> None:
    # An import error inside the package (not its absence) must surface as it is.
    result = _python("import buttress.server", hidden=("starlette",))
    assert result.returncode == 1
    assert "MissingExtra" not in result.stderr
    assert "No module named 'starlette'" in result.stderr
