"""Observability: structured logging (``buttress.observe.logging``), metrics, health checks and profiling.

Each capability lives in its own module; import from there, so using one does not load the others.
"""

from buttress.observe._provide import register_services

__all__ = ["register_services"]
