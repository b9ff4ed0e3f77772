"""Durable jobs and schedules on SQLite and PostgreSQL (the core owns this file)."""

from buttress.jobs._schedule_spec import ScheduleSpec

__all__ = ["ScheduleSpec"]
