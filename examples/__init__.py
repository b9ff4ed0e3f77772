"""Five small services rebuilt on buttress, one package each (see examples/README.md).

Each is what a real service once wrote by hand as its production layer, now a few hundred lines on the
public API; each has its own README and tests that ``make test`` runs. Run one from the repository's root,
e.g. ``python -m examples.poster --help``.
"""
