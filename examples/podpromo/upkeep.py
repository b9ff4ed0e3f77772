"""Retention on a schedule: what keeps the episode store from filling the disk.

Imported by every worker (``examples.podpromo.worker``), so each worker's scheduler knows the schedule and
each fire of ``BUTTRESS_FILES__CLEANUP_CRON`` (hourly by default) becomes exactly one ``files.cleanup`` job.
"""

from __future__ import annotations

from typing import Final

from buttress.files import Retention, schedule_cleanup

__all__ = ["DAY", "RULES", "cleanup"]

DAY: Final = 86_400
RULES: Final = (
    Retention(max_age=30 * DAY),  # an episode's upload is archived (gzipped) after a month
    Retention(action="delete", state="archived", max_age=365 * DAY),  # and purged a year on
    Retention(high_water=5e9, low_water=4e9),  # past 5 GB on disk, the least recently read go first
)

cleanup = schedule_cleanup(RULES)
