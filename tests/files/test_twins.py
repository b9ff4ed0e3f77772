"""Every sync method of the files API has an async twin taking the same parameters."""

from __future__ import annotations

import inspect

import pytest

from buttress.files import AsyncUpload, FileStore, Upload

PAIRS = [
    (cls, name)
    for cls in (FileStore,)
    for name, member in vars(cls).items()
    if not name.startswith("_") and callable(member) and hasattr(cls, "a" + name)
]


def test_the_twins_are_there() -> None:
    names = {name for _, name in PAIRS}
    assert {
        "save",
        "begin",
        "stat",
        "list",
        "stream",
        "delete",
        "archive",
        "restore",
        "stats",
        "sweep",
    } <= names
    members = {
        name for name, member in vars(FileStore).items() if not name.startswith("_") and callable(member)
    }
    twins = {name for name in members if name.startswith("a") and name[1:] in members}
    lonely = {name for name in members - twins if "a" + name not in members}
    assert lonely == {"ensure_schema", "close", "open"}  # astream is the async read


@pytest.mark.parametrize(("cls", "name"), PAIRS, ids=[f"{c.__name__}.{n}" for c, n in PAIRS])
def test_a_twin_takes_the_same_parameters(cls: type, name: str) -> None:
    sync, asynchronous = getattr(cls, name), getattr(cls, "a" + name)
    assert inspect.iscoroutinefunction(asynchronous) or inspect.isasyncgenfunction(asynchronous)
    assert not inspect.iscoroutinefunction(sync)
    assert list(inspect.signature(sync).parameters) == list(inspect.signature(asynchronous).parameters)


@pytest.mark.parametrize("name", ["write", "finish", "abort"])
def test_the_async_upload_mirrors_the_upload(name: str) -> None:
    assert inspect.iscoroutinefunction(getattr(AsyncUpload, name))
    assert list(inspect.signature(getattr(Upload, name)).parameters) == list(
        inspect.signature(getattr(AsyncUpload, name)).parameters
    )
