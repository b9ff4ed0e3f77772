"""The console the ``buttress`` commands print to: the terminal's width on a terminal, no limit in a pipe.

rich sizes a console that is not a terminal to ``COLUMNS`` or 80 columns, so a table piped to ``grep`` or a
file cut breaker names and hosts short with an ellipsis. Piped output is for tools: every value is printed
whole, each row on one line. On a terminal tables keep the terminal's width; their columns fold long
values onto more lines (``overflow="fold"``, :data:`FOLD`) instead of cutting them.
"""

from __future__ import annotations

from typing import Final, TextIO

from rich.console import Console

__all__ = ["FOLD", "PIPED_WIDTH", "cli_console"]

PIPED_WIDTH: Final = 100_000
"""The width of a console that is not a terminal: wider than any row, so none is cut or wrapped (tables are
as wide as their content, never padded to the console's width)."""

FOLD: Final = "fold"
"""The overflow of every column of the commands' tables: a value wider than its column goes on over more
lines rather than ending in an ellipsis."""


def cli_console(*, stderr: bool = False, file: TextIO | None = None) -> Console:
    """A console on stdout (``stderr``: on stderr; or on ``file``) sized for where it writes."""
    console = Console(stderr=stderr, file=file, highlight=False, soft_wrap=True)
    if not console.is_terminal:
        console.width = PIPED_WIDTH
    return console
