"""Every ```python block of the README and of every docs page runs as written, each in a fresh namespace."""

from __future__ import annotations

import re
import sys
import types

import pytest

from tests.conftest import DATABASE_URL, REDIS_URL, need_service
from tests.docs.pages import README, Block, all_blocks, blocks_of, pages

BLOCKS = all_blocks()
README_LINES = 200


def run(block: Block) -> None:
    """Run the block as a module of its own, as a reader's script would be.

    SQLAlchemy resolves a mapped class's annotations through ``sys.modules``.
    """
    module = types.ModuleType("docs_example")
    if "redis" in block.needs:
        module.REDIS_URL = need_service("Redis", REDIS_URL, 6379)  # type: ignore[attr-defined]
    if "postgresql" in block.needs:
        module.DATABASE_URL = need_service("PostgreSQL", DATABASE_URL, 5432)  # type: ignore[attr-defined]
    sys.modules[module.__name__] = module
    try:
        exec(compile(block.code, block.page, "exec"), module.__dict__)  # noqa: S102 - the docs' own examples
    finally:
        del sys.modules[module.__name__]


@pytest.mark.parametrize("block", BLOCKS, ids=[block.id for block in BLOCKS])
@pytest.mark.usefixtures("isolated_settings")  # examples run from defaults, in an empty directory
def test_example_runs(block: Block) -> None:
    run(block)


def test_the_pages_hold_examples() -> None:
    assert len(pages()) >= 30
    assert len(BLOCKS) >= 50
    assert blocks_of(README), "the README shows one short example"


def test_readme_stays_a_first_visit() -> None:
    lines = README.read_text(encoding="utf-8").count("\n")
    assert lines <= README_LINES, (
        f"README.md has {lines} lines; move detail into docs/ (at most {README_LINES})"
    )


def test_the_readme_links_reach_files_of_the_repository() -> None:
    """mkdocs checks the site's links strictly; the README is outside the site: its links are checked here."""
    text = README.read_text(encoding="utf-8")
    targets = [t for t in re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", text) if "://" not in t]
    assert len(targets) >= 20
    assert [t for t in targets if not (README.parent / t).exists()] == []


@pytest.mark.usefixtures("isolated_settings")
def test_the_transport_example_shows_a_retried_503_become_a_200(capsys: pytest.CaptureFixture[str]) -> None:
    """The transport example claims a retry: its seeded upstream answers 503, then 200."""
    (block,) = [b for b in BLOCKS if "ResilientTransport(settings=settings)" in b.code]
    run(block)
    assert capsys.readouterr().out == "200 after 2 attempts\n"
