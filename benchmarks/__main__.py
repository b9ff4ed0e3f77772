"""Run every ``benchmarks/bench_*.py`` module and rewrite BENCHMARKS.md (``make bench``).

``python -m benchmarks [NAME ...]`` runs only the named modules (``container``, ``events``, ...) and
prints their tables without touching BENCHMARKS.md.
"""

from __future__ import annotations

import importlib
import os
import platform
import sys
from pathlib import Path

from benchmarks._harness import Table

ROOT = Path(__file__).resolve().parent.parent
COMMAND = "make bench"


def _modules() -> list[str]:
    return sorted(p.stem for p in (ROOT / "benchmarks").glob("bench_*.py"))


def _machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    python = f"Python {platform.python_version()} ({platform.python_implementation()})"
    return f"{cpu}, {os.cpu_count()} cores, {python}"


def main(argv: list[str]) -> int:
    selected = [f"bench_{name}" for name in argv] if argv else _modules()
    tables: list[Table] = []
    for name in selected:
        module = importlib.import_module(f"benchmarks.{name}")
        print(f"running {name} ...", file=sys.stderr, flush=True)
        table: Table = module.run()
        print(table.to_markdown(), flush=True)
        tables.append(table)
    if argv:
        return 0
    body = [
        "# Benchmarks",
        "",
        "Numbers are per operation, the median of 7 calibrated loops, every column of a table measured in",
        "the same run on the same machine. These machines are shared and noisy: read the ratios, not the",
        "absolute times. Lower is better; a ratio below 1.00x means buttress is faster than that anchor.",
        "",
        f"- Command: `{COMMAND}`",
        f"- Machine: {_machine()}",
        "",
    ]
    body += [table.to_markdown() for table in tables]
    (ROOT / "BENCHMARKS.md").write_text("\n".join(body))
    print(f"wrote {ROOT / 'BENCHMARKS.md'}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
