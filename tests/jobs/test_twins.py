"""Every sync method of the jobs API has an async twin taking the same parameters."""

from __future__ import annotations

import inspect

import pytest

from buttress.jobs import Deferral, JobHandle, Jobs, Task

PAIRS = [
    (cls, name)
    for cls in (Jobs, JobHandle, Task, Deferral)
    for name, member in vars(cls).items()
    if not name.startswith("_") and callable(member) and hasattr(cls, "a" + name)
]


def test_the_twins_are_there() -> None:
    names = {f"{cls.__name__}.{name}" for cls, name in PAIRS}
    expected = {"Jobs.defer", "Jobs.get", "Jobs.cancel", "JobHandle.result", "Deferral.defer_many"}
    assert expected <= names


@pytest.mark.parametrize(("cls", "name"), PAIRS, ids=[f"{c.__name__}.{n}" for c, n in PAIRS])
def test_a_twin_takes_the_same_parameters(cls: type, name: str) -> None:
    sync, asynchronous = getattr(cls, name), getattr(cls, "a" + name)
    assert inspect.iscoroutinefunction(asynchronous)
    assert not inspect.iscoroutinefunction(sync)
    assert list(inspect.signature(sync).parameters) == list(inspect.signature(asynchronous).parameters)
