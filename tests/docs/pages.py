"""The pages of the docs site and the README, and the ```python blocks they hold.

A block that needs a service says so on the line before its fence: ``<!-- needs: redis -->`` or
``<!-- needs: postgresql -->`` (several: ``<!-- needs: redis, postgresql -->``). The test gives it the service
through ``BUTTRESS_TEST_REDIS_URL`` / ``BUTTRESS_TEST_DATABASE_URL`` in its namespace as ``REDIS_URL`` and
``DATABASE_URL``, skipping locally when the service is absent (failing under BUTTRESS_REQUIRE_SERVICES=1).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent
README = ROOT / "README.md"
DOCS = ROOT / "docs"
SERVICES = frozenset({"redis", "postgresql"})

_NEEDS = re.compile(r"<!--\s*needs:\s*([a-z, ]+?)\s*-->")


@dataclass(frozen=True)
class Block:
    page: str  # relative to the repository root
    line: int  # of the opening fence, 1-based
    code: str
    needs: frozenset[str]

    @property
    def id(self) -> str:
        return f"{self.page}:{self.line}"


def pages() -> list[Path]:
    return [README, *sorted(DOCS.rglob("*.md"))]


def blocks_of(path: Path) -> list[Block]:
    """The page's ```python blocks, with the services the line before each names."""
    lines = path.read_text(encoding="utf-8").splitlines()
    found = []
    index = 0
    while index < len(lines):
        if lines[index].strip() == "```python":
            start = index
            index += 1
            body = []
            while lines[index].strip() != "```":
                body.append(lines[index])
                index += 1
            marker = _NEEDS.search(lines[start - 1]) if start else None
            needs = frozenset(n.strip() for n in marker.group(1).split(",")) if marker else frozenset()
            unknown = needs - SERVICES
            if unknown:
                raise ValueError(
                    f"{path}:{start + 1}: unknown service(s) {sorted(unknown)}; known: {sorted(SERVICES)}"
                )
            found.append(Block(str(path.relative_to(ROOT)), start + 1, "\n".join(body) + "\n", needs))
        index += 1
    return found


def all_blocks() -> list[Block]:
    return [block for path in pages() for block in blocks_of(path)]
