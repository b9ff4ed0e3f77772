"""Core fixes found while building the ops side (each test failed before its fix)."""

from __future__ import annotations

import pytest

from buttress.errors import NotFoundError
from buttress.jobs import REGISTRY, Jobs

from ._support import db_url, jobs, module_pg_url

__all__ = ["db_url", "jobs", "module_pg_url"]


@pytest.mark.parametrize("action", ["get", "cancel", "retry", "aget", "acancel", "aretry"])
async def test_a_missing_job_is_a_not_found_error_naming_the_job(jobs: Jobs, action: str) -> None:
    method = getattr(jobs, action)
    with pytest.raises(NotFoundError) as caught:
        result = method(987654)
        if action.startswith("a"):
            await result
    assert caught.value.status == 404
    assert "no job 987654" in str(caught.value)
    assert caught.value.context["job_id"] == 987654


def test_an_unknown_job_type_is_a_not_found_error_naming_the_fix() -> None:
    with pytest.raises(NotFoundError) as caught:
        REGISTRY.task("ops.no-such-task")
    assert "buttress worker --import" in str(caught.value)
    assert caught.value.context["task"] == "ops.no-such-task"
