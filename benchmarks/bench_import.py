"""Start-up cost: ``import buttress`` vs ``import httpx``, ``buttress --help``, ``import buttress.server``.

Every sample is a fresh interpreter (``python -I -c``), so nothing is cached in ``sys.modules``; the
candidates of a table are interleaved round by round (:func:`~benchmarks._harness.rotations`), so a burst
of load on this shared machine lands on all of them. Import time is ``time.perf_counter`` around the
``import`` statement inside the child; memory is the child's resident set (``/proc/self/statm``) before and
after it. ``buttress --help`` is wall time from spawning the installed script to its exit.

``python -m benchmarks.bench_import --python PATH`` prints the same table for another interpreter (another
checkout's virtualenv, e.g. main before a change).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks._harness import Table, rotations

ROUNDS = 21
BUDGET_IMPORT_RATIO = 0.60  # import buttress <= 0.6x import httpx, measured in the same run
BUDGET_HELP_SECONDS = 0.300  # buttress --help, wall

PROBE = """\
import os, time
def rss():
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
before, start = rss(), time.perf_counter()
{statement}
print(time.perf_counter() - start, rss() - before)
"""


@dataclass(frozen=True)
class Candidate:
    """One thing to time in fresh interpreters: an import statement, or a command's wall time."""

    label: str
    statement: str = ""
    command: tuple[str, ...] = ()


@dataclass
class Samples:
    seconds: list[float] = field(default_factory=list)
    rss: list[float] = field(default_factory=list)


def _sample(python: str, candidate: Candidate) -> tuple[float, float | None]:
    env = {**os.environ, "COLUMNS": "80"}
    if candidate.command:
        start = time.perf_counter()
        subprocess.run(candidate.command, capture_output=True, check=True, env=env, timeout=120)  # noqa: S603 - our own interpreter and script
        return time.perf_counter() - start, None
    probe = PROBE.format(statement=candidate.statement)
    out = subprocess.run(  # noqa: S603 - our own interpreter
        [python, "-I", "-c", probe], capture_output=True, text=True, check=True, env=env, timeout=120
    ).stdout
    seconds, rss = out.split()
    return float(seconds), float(rss)


def measure(python: str, candidates: list[Candidate], rounds: int = ROUNDS) -> dict[str, Samples]:
    """Every candidate ``rounds`` times, interleaved; a warm-up round first (disk cache, .pyc files)."""
    by_label = {candidate.label: candidate for candidate in candidates}
    for candidate in candidates:
        _sample(python, candidate)
    samples = {label: Samples() for label in by_label}
    for label in rotations(list(by_label), rounds):
        seconds, rss = _sample(python, by_label[label])
        samples[label].seconds.append(seconds)
        if rss is not None:
            samples[label].rss.append(rss)
    return samples


def _median_and_spread(values: list[float], scale: float, unit: str) -> tuple[str, str]:
    quartiles = statistics.quantiles(values, n=4)
    median = statistics.median(values) / scale
    return f"{median:.1f} {unit}", f"{quartiles[0] / scale:.1f}-{quartiles[2] / scale:.1f} {unit}"


@dataclass
class ImportTable(Table):
    """Times in ms and memory in MiB with their spread (the middle half of the samples), per anchor."""

    lines: list[tuple[str, ...]] = field(default_factory=list)

    def to_markdown(self) -> str:
        out = [
            f"### {self.title}",
            "",
            "| measure | buttress | spread | anchor | anchor's | spread | buttress / anchor |",
            "|---|---|---|---|---|---|---|",
        ]
        out += ["| " + " | ".join(line) + " |" for line in self.lines]
        out += ["", *(f"- {note}" for note in self.notes)]
        return "\n".join(out) + "\n"


def _verdict(met: bool) -> str:
    return "met" if met else "MISSED"


def table(python: str = sys.executable, rounds: int = ROUNDS) -> ImportTable:
    script = str(Path(python).with_name("buttress"))
    candidates = [
        Candidate("import buttress", "import buttress"),
        Candidate("import httpx", "import httpx"),
        Candidate("import buttress.resilience", "import buttress.resilience"),
        Candidate("import tenacity", "import tenacity"),
        Candidate("import buttress.http", "import buttress.http"),
        Candidate("import buttress.server", "import buttress.server"),
        Candidate("import fastapi", "import fastapi"),
        Candidate("buttress --help", command=(script, "--help")),
        Candidate("python -c pass", command=(python, "-I", "-c", "pass")),
        Candidate(
            "the typer app's --help",
            command=(python, "-I", "-c", "import sys; from buttress.cli import main; main()", "--help"),
        ),
    ]
    samples = measure(python, candidates, rounds)
    ms, mib = 1e-3, 1024 * 1024

    def median(label: str) -> float:
        return statistics.median(samples[label].seconds)

    def line(measure: str, mine: str, anchor: str, *, memory: bool = False) -> tuple[str, ...]:
        scale, unit = (mib, "MiB") if memory else (ms, "ms")
        ours, theirs = (
            (samples[mine].rss, samples[anchor].rss)
            if memory
            else (samples[mine].seconds, samples[anchor].seconds)
        )
        ratio = statistics.median(ours) / statistics.median(theirs) if statistics.median(theirs) else 0.0
        return (
            measure,
            *_median_and_spread(ours, scale, unit),
            f"`{anchor}`",
            *_median_and_spread(theirs, scale, unit),
            f"{ratio:.2f}x" if ratio >= 0.1 else f"{ratio:.3f}x",
        )

    import_ratio = median("import buttress") / median("import httpx")
    help_seconds = median("buttress --help")
    import_budget = (
        f"<= {BUDGET_IMPORT_RATIO:.2f}x `import httpx`: {_verdict(import_ratio <= BUDGET_IMPORT_RATIO)}"
    )
    help_budget = f"< {BUDGET_HELP_SECONDS * 1e3:.0f} ms: {_verdict(help_seconds < BUDGET_HELP_SECONDS)}"
    lines = [
        line(f"`import buttress`, import time (budget {import_budget})", "import buttress", "import httpx"),
        line("`import buttress`, resident memory added", "import buttress", "import httpx", memory=True),
        line("`import buttress.resilience`, import time", "import buttress.resilience", "import tenacity"),
        line(
            "`import buttress.http`, import time (it imports httpx)", "import buttress.http", "import httpx"
        ),
        line("`import buttress.server`, import time (reported)", "import buttress.server", "import fastapi"),
        line(
            "`import buttress.server`, resident memory added",
            "import buttress.server",
            "import fastapi",
            memory=True,
        ),
        line(f"`buttress --help`, wall (budget {help_budget})", "buttress --help", "python -c pass"),
        line("", "buttress --help", "the typer app's --help"),
    ]
    return ImportTable(
        title="Start-up: import time, memory and `buttress --help`",
        anchors=[],
        rows=[],
        lines=lines,
        notes=[
            (
                f"Each cell is the median of {rounds} fresh interpreters (`python -I -c`), interleaved with "
                "the other candidates round by round after one warm-up round; 'spread' is the middle half "
                "of the samples (25th-75th percentile). Import time is `time.perf_counter()` around the "
                "import inside the child, so interpreter start-up is not in it; memory is the growth of "
                "the child's resident set across the import."
            ),
            (
                "`import buttress` loads one small module: its public names (Settings, EventBus, errors, "
                "...) resolve on first use (PEP 562), so what a name costs is paid when it is used. "
                "`import buttress.resilience` loads no pydantic; `buttress.server` loads FastAPI, "
                "pydantic-settings, structlog and prometheus-client, and is compared with FastAPI alone."
            ),
            (
                "`buttress --help` is the installed script, spawned and waited for (`COLUMNS=80`); it "
                "prints a stored copy of typer's help text (checked against typer by "
                "tests/test_cli_help.py) without importing typer or rich. 'python -c pass' is the floor "
                "of any Python command here; 'the typer app's --help' is what the same help cost before, "
                "through typer."
            ),
        ],
    )


def run() -> Table:
    return table()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--python", default=sys.executable, help="the interpreter whose buttress to time")
    parser.add_argument("--rounds", type=int, default=ROUNDS)
    arguments = parser.parse_args()
    print(table(arguments.python, arguments.rounds).to_markdown())


if __name__ == "__main__":
    main()
