"""Observability: structured logging (``buttress.observe.logging``), metrics, health checks and profiling.

Each capability lives in its own module; import from there, so using one does not load the others.
"""
