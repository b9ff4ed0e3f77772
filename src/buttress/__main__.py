"""The ``buttress`` script's entry point: ``--help`` answers at once, everything else runs the typer app.

``buttress --help`` (and a bare ``buttress``) print the help text typer would print, stored in
:mod:`buttress._cli_help`, without importing typer, rich or the rest of buttress: 30 ms instead of a second.
``tests/test_cli_help.py`` compares that text with typer's own output, so it cannot drift. The fast path
is taken only where typer's text would be the same: a terminal at least 80 columns wide (click wraps at 78)
and typer installed (the ``[cli]`` extra); otherwise the app itself answers.
"""

from __future__ import annotations

import os
import sys

_HELP_WIDTH = 80  # click formats help at min(terminal columns, 80) - 2


def main() -> None:
    """Run the ``buttress`` command."""
    arguments = sys.argv[1:]
    if arguments in ([], ["--help"]) and _terminal_columns() >= _HELP_WIDTH and _typer_installed():
        from buttress._cli_help import HELP  # noqa: PLC0415 - only the help path reads it

        if arguments:
            sys.stdout.write(HELP)
            raise SystemExit(0)
        sys.stderr.write(HELP)  # click's no_args_is_help: the help on stderr, exit 2 (a usage error)
        raise SystemExit(2)
    _run_app()


def _run_app() -> None:
    from buttress._extras import MissingExtra  # noqa: PLC0415 - the help path needs it not

    try:  # buttress.cli checks for typer and rich first thing, naming the extra that installs them
        from buttress.cli import main as run  # noqa: PLC0415 - typer and rich load only here
    except MissingExtra as missing:
        sys.stderr.write(f"{missing}\n")
        raise SystemExit(1) from None
    run()


def _terminal_columns() -> int:
    """The width click will format for: shutil.get_terminal_size's rule, without importing shutil."""
    try:
        columns = int(os.environ.get("COLUMNS", "0"))
    except ValueError:
        columns = 0
    if columns > 0:
        return columns
    try:
        return os.get_terminal_size(sys.__stdout__.fileno()).columns or _HELP_WIDTH  # type: ignore[union-attr]
    except (AttributeError, ValueError, OSError):
        return _HELP_WIDTH


def _typer_installed() -> bool:
    import importlib.util  # noqa: PLC0415 - only the help path asks

    return importlib.util.find_spec("typer") is not None


if __name__ == "__main__":
    main()
