"""The text of ``buttress --help`` at 80 columns, as typer prints it (checked by tests/test_cli_help.py).

Regenerate after changing a command or its docstring: ``.venv/bin/python -m tests.test_cli_help``.
"""

HELP = """\
Usage: buttress [OPTIONS] COMMAND [ARGS]...

  buttress: the production layer of a Python service.

Options:
  --help  Show this message and exit.

Commands:
  version    Print the installed buttress version.
  health     Run the health checks: a table of ✓/⚠/✗, exit 1 when a...
  serve      Run the ops server: health probes, Prometheus metrics,...
  breakers   Show the circuit breakers of a running service (from its ops...
  worker     Run a job worker until SIGTERM: exit 1 when the database...
  schedules  List the stored schedules: expression, job, policies,...
  config     Show the effective configuration: every variable, its value...
  demo       Demos of buttress at work.
  cache      The cache: run its warmers, read its stats.
  db         The database: buttress's own tables; a running service's...
  jobs       Jobs in the database: list, show, cancel, retry and purge them.
  files      Files in the store: stats, list, archive, restore and clean up.
"""
