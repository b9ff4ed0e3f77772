"""Retention rules: checked when made, and the plans that choose their files in batches, on both databases."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import text

from buttress.clock import FakeClock
from buttress.errors import ValidationError
from buttress.files import FileStore
from buttress.files._retention import Retention, candidates_plan, check_rules, cursor_of, delete_batch_plan

DAY = 86400.0


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({}, "max_age"),  # no condition at all
        ({"tag": "raw"}, "max_age"),  # tag and owner only narrow a rule
        ({"action": "shred", "max_age": 1}, "action"),
        ({"state": "gone", "max_age": 1}, "state"),
        ({"state": "archived", "action": "archive", "max_age": 1}, "action"),
        ({"max_age": -1}, "max_age"),
        ({"max_age": True}, "max_age"),
        ({"max_age": timedelta(days=1)}, "max_age"),
        ({"idle": float("inf")}, "idle"),
        ({"idle": "30d"}, "idle"),
        ({"high_water": 0}, "high_water"),
        ({"high_water": float("nan")}, "high_water"),
        ({"low_water": 0.5, "max_age": 1}, "low_water"),
        ({"high_water": 0.5, "low_water": 0.8}, "low_water"),
        ({"high_water": 0.9, "low_water": 5e9}, "low_water"),
        ({"high_water": 5e9, "low_water": 0.5}, "low_water"),
        ({"max_age": 1, "tag": ""}, "tag"),
        ({"max_age": 1, "owner": 7}, "owner"),
    ],
)
def test_a_bad_rule_names_its_field(fields: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationError) as caught:
        Retention(**fields)
    assert caught.value.context["field"] == field


def test_a_rule_describes_itself_and_fills_in_its_low_water() -> None:
    rule = Retention(max_age=30 * DAY, idle=12 * 3600, tag="raw", owner="ana")
    assert (rule.max_age, rule.idle) == (30 * DAY, 12 * 3600.0)
    assert rule.describe() == "archive stored files older than 30d unread for 12h tagged 'raw' of 'ana'"
    pressure = Retention(action="delete", high_water=0.9)
    assert pressure.low_water == pytest.approx(0.81)
    assert pressure.kind == "delete"
    assert pressure.describe() == (
        "delete stored files least recently read first, from 90% down to 81% of the quota"
    )
    purge = Retention(action="delete", state="archived", max_age=90 * DAY)
    assert purge.kind == "purge"
    assert (
        Retention(action="delete", high_water=5e9, low_water=4e9)
        .describe()
        .endswith("from 5000000000 bytes down to 4000000000 bytes")
    )


def test_a_quota_fraction_needs_a_quota(make_store: Callable[..., FileStore]) -> None:
    rule = Retention(action="delete", high_water=0.9)
    with pytest.raises(ValidationError) as caught:
        check_rules([rule], quota=None)
    assert caught.value.context["field"] == "high_water"
    assert "files.quota" in str(caught.value)
    with pytest.raises(ValidationError) as on_store:
        FileStore(make_store().blobs, db=make_store().db, retention=[rule])
    assert on_store.value.context["field"] == "high_water"
    assert check_rules(rule, quota=1000) == (rule,)
    assert check_rules([Retention(action="delete", high_water=5e9)], quota=None)  # bytes need no quota
    with pytest.raises(ValidationError) as not_rules:
        check_rules(["max_age=30"], quota=None)
    assert not_rules.value.context["field"] == "rules"


def _ids(found: list[Any]) -> list[str]:
    return [f.id for f in found]


def test_candidates_come_oldest_first_in_batches_with_the_filters_applied(
    store: FileStore, clock: FakeClock
) -> None:
    made = []
    for index in range(7):
        made.append(store.save(b"x" * (index + 1), name=f"{index}.txt", owner="ana" if index % 2 else "bo",
                               tags=["raw"] if index < 4 else []))  # fmt: skip
        clock.advance(DAY)
    now = clock.time()
    rule = Retention(max_age=2.5 * DAY)  # files 0..4 (ages 7 .. 3 days)
    first = store.runner.run(lambda: candidates_plan(rule, now, None, 2), write=False)
    assert _ids(first) == _ids(made[:2])
    second = store.runner.run(lambda: candidates_plan(rule, now, cursor_of(rule, first[-1]), 2), write=False)
    assert _ids(second) == _ids(made[2:4])
    third = store.runner.run(lambda: candidates_plan(rule, now, cursor_of(rule, second[-1]), 2), write=False)
    assert _ids(third) == _ids(made[4:5])
    narrowed = Retention(max_age=2.5 * DAY, tag="raw", owner="ana")
    found = store.runner.run(lambda: candidates_plan(narrowed, now), write=False)
    assert _ids(found) == [made[1].id, made[3].id]
    store.archive(made[0].id)
    purge = Retention(action="delete", state="archived", max_age=DAY)
    assert _ids(store.runner.run(lambda: candidates_plan(purge, now), write=False)) == [made[0].id]


def test_idle_candidates_go_by_their_last_read(store: FileStore, clock: FakeClock) -> None:
    old = store.save(b"old but read\n", name="old.txt")
    clock.advance(DAY)
    young = store.save(b"young, never read\n", name="young.txt")
    clock.advance(10 * DAY)
    store.read_bytes(old.id)  # a read moves it to the back of the line
    rule = Retention(idle=5 * DAY)
    now = clock.time()
    assert _ids(store.runner.run(lambda: candidates_plan(rule, now), write=False)) == [young.id]
    pressure = Retention(action="delete", high_water=10.0)
    assert _ids(store.runner.run(lambda: candidates_plan(pressure, now), write=False)) == [young.id, old.id]


def test_a_batch_delete_takes_only_rows_still_in_their_state(store: FileStore, clock: FakeClock) -> None:
    kept = store.save(b"archived meanwhile\n", name="a.txt", owner="ana", tags=["raw"])
    gone = store.save(b"deleted here\n", name="b.txt", owner="ana", tags=["raw"])
    read = store.save(b"read meanwhile\n", name="c.txt", owner="ana")
    clock.advance(DAY)
    store.archive(kept.id)
    store.read_bytes(read.id)
    ids = [kept.id, gone.id, read.id]
    removed = store.runner.run(
        lambda: delete_batch_plan(ids, "stored", clock.time() - 1, postgres=store.postgres)
    )
    assert _ids(removed) == [gone.id]
    again = store.runner.run(lambda: delete_batch_plan(ids, "stored", None, postgres=store.postgres))
    assert _ids(again) == [read.id]  # without the idle guard the read file goes; the deleted one is gone
    usage = store.usage("ana")
    assert (usage.used, usage.files) == (kept.size, 1)
    assert (store.usage().used, store.usage().files) == (kept.size, 1)
    with store.db.engine.connect() as connection:
        tags = connection.execute(text("SELECT file_id FROM buttress_file_tags")).scalars().all()
    assert tags == [kept.id]


def test_the_candidates_query_reads_the_state_and_age_index(store: FileStore) -> None:
    if store.postgres:
        pytest.skip("the plan is checked on SQLite, where EXPLAIN QUERY PLAN is stable")
    plan = _explain(store, "f.created_at < 1e12 ORDER BY f.created_at, f.id")
    assert "buttress_files_age" in plan
    plan = _explain(store, "f.accessed_at < 1e12 ORDER BY f.accessed_at, f.id")
    assert "buttress_files_access" in plan


def _explain(store: FileStore, tail: str) -> str:
    query = f"EXPLAIN QUERY PLAN SELECT f.id FROM buttress_files f WHERE f.state = 'stored' AND {tail}"
    with store.db.engine.connect() as connection:
        return " ".join(str(row[-1]) for row in connection.execute(text(query)))
