"""ScheduleSpec: cron, every and daily times as fire instants, DST, catch-up policies, validation."""

from __future__ import annotations

from datetime import datetime, timedelta
from itertools import islice
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from buttress.errors import ValidationError
from buttress.jobs._schedule_spec import CATCH_UP_LIMIT, ScheduleSpec

LONDON = ZoneInfo("Europe/London")
NEW_YORK = ZoneInfo("America/New_York")
UTC = ZoneInfo("UTC")


def ts(zone: ZoneInfo, *parts: int, fold: int = 0) -> float:
    year, month, day, hour, minute = (*parts, 0, 0)[:5]
    return datetime(year, month, day, hour, minute, tzinfo=zone, fold=fold).timestamp()


def fires(spec: ScheduleSpec, start: float, n: int, anchor: float = 0.0) -> list[float]:
    out, t = [], start
    for _ in range(n):
        t = spec.next_fire(t, anchor)
        out.append(t)
    return out


def local(zone: ZoneInfo, instants: list[float]) -> list[str]:
    return [datetime.fromtimestamp(t, zone).strftime("%m-%d %H:%M:%S%z") for t in instants]


# -- cron with time zones across the 2027 changes -----------------------------------------------------------


@pytest.mark.parametrize(
    ("zone", "start"),
    [
        (LONDON, (2027, 3, 26)),  # spring forward Sun 28 Mar 01:00 UTC
        (LONDON, (2027, 10, 29)),  # fall back Sun 31 Oct 01:00 UTC
        (NEW_YORK, (2027, 3, 12)),  # spring forward Sun 14 Mar 02:00 EST
        (NEW_YORK, (2027, 11, 5)),  # fall back Sun 7 Nov 02:00 EDT
    ],
)
@pytest.mark.parametrize("how", ["cron", "cron6", "at"])
def test_nine_oclock_stays_nine_oclock_local_across_the_change(
    zone: ZoneInfo, start: tuple[int, int, int], how: str
) -> None:
    spec = {
        "cron": ScheduleSpec(cron="0 9 * * *", tz=zone.key),
        "cron6": ScheduleSpec(cron="0 0 9 * * *", tz=zone.key),
        "at": ScheduleSpec(at=["09:00"], tz=zone.key),
    }[how]
    got = fires(spec, ts(zone, *start), 5)
    days = [datetime(*start, tzinfo=zone) + timedelta(days=d) for d in range(5)]
    assert got == [ts(zone, d.year, d.month, d.day, 9) for d in days]
    offsets = {datetime.fromtimestamp(t, zone).utcoffset() for t in got}
    assert len(offsets) == 2  # the UTC instant really moved by an hour mid-way


@pytest.mark.parametrize("how", ["cron", "cron6", "at"])
def test_london_0130_in_the_spring_gap_fires_once_when_the_clocks_jump(how: str) -> None:
    spec = {
        "cron": ScheduleSpec(cron="30 1 * * *", tz="Europe/London"),
        "cron6": ScheduleSpec(cron="0 30 1 * * *", tz="Europe/London"),
        "at": ScheduleSpec(at=["01:30"], tz="Europe/London"),
    }[how]
    got = fires(spec, ts(LONDON, 2027, 3, 27, 12), 2)
    # 01:30 does not exist on 28 Mar: it fires at 01:00 UTC (02:00 BST), when the clocks jump; then as usual.
    assert got == [datetime(2027, 3, 28, 1, tzinfo=UTC).timestamp(), ts(LONDON, 2027, 3, 29, 1, 30)]


@pytest.mark.parametrize("how", ["cron", "cron6", "at"])
def test_london_0130_in_the_fall_overlap_fires_once_at_the_first_occurrence(how: str) -> None:
    spec = {
        "cron": ScheduleSpec(cron="30 1 * * *", tz="Europe/London"),
        "cron6": ScheduleSpec(cron="0 30 1 * * *", tz="Europe/London"),
        "at": ScheduleSpec(at=["01:30"], tz="Europe/London"),
    }[how]
    day_start, day_end = ts(LONDON, 2027, 10, 31), ts(LONDON, 2027, 11, 1)
    got = list(spec.fires_between(day_start, day_end))
    assert got == [datetime(2027, 10, 31, 0, 30, tzinfo=UTC).timestamp()]  # 01:30 BST, not 01:30 GMT too


def test_new_york_gap_and_overlap() -> None:
    gap = ScheduleSpec(cron="30 2 * * *", tz="America/New_York")
    # 02:30 does not exist on 14 Mar 2027: fires at 03:00 EDT (07:00 UTC).
    assert gap.next_fire(ts(NEW_YORK, 2027, 3, 14)) == datetime(2027, 3, 14, 7, tzinfo=UTC).timestamp()
    overlap = ScheduleSpec(at=["01:30"], tz="America/New_York")
    got = list(overlap.fires_between(ts(NEW_YORK, 2027, 11, 7), ts(NEW_YORK, 2027, 11, 8)))
    assert got == [datetime(2027, 11, 7, 5, 30, tzinfo=UTC).timestamp()]  # 01:30 EDT


def test_wildcard_cron_counts_real_time_through_the_change() -> None:
    spec = ScheduleSpec(cron="*/30 * * * *", tz="Europe/London")
    # 00:00-02:00 UTC on both change days is two real hours: four half-hour fires, none doubled or lost.
    for day in (28,):
        got = list(
            spec.fires_between(
                datetime(2027, 3, day, tzinfo=UTC).timestamp() - 1,
                datetime(2027, 3, day, 1, 30, tzinfo=UTC).timestamp(),
            )
        )
        assert local(LONDON, got) == [
            "03-28 00:00:00+0000",
            "03-28 00:30:00+0000",
            "03-28 02:00:00+0100",
            "03-28 02:30:00+0100",
        ]
    got = list(
        spec.fires_between(
            datetime(2027, 10, 31, tzinfo=UTC).timestamp() - 1,
            datetime(2027, 10, 31, 1, 30, tzinfo=UTC).timestamp(),
        )
    )
    assert local(LONDON, got) == [
        "10-31 01:00:00+0100",
        "10-31 01:30:00+0100",
        "10-31 01:00:00+0000",
        "10-31 01:30:00+0000",
    ]


def test_two_wall_times_in_one_gap_collapse_into_one_fire() -> None:
    spec = ScheduleSpec(at=["01:15", "01:45", "02:00"], tz="Europe/London")
    got = list(spec.fires_between(ts(LONDON, 2027, 3, 28), ts(LONDON, 2027, 3, 28, 12)))
    assert got == [datetime(2027, 3, 28, 1, tzinfo=UTC).timestamp()]


def test_previous_fire_sees_the_first_pass_of_a_repeated_hour() -> None:
    spec = ScheduleSpec(cron="30 1 * * *", tz="Europe/London")
    second_pass = ts(LONDON, 2027, 10, 31, 1, 20, fold=1)  # 01:20 GMT, after 01:30 BST already happened
    assert spec.previous_fire(second_pass) == datetime(2027, 10, 31, 0, 30, tzinfo=UTC).timestamp()
    assert spec.next_fire(second_pass) == ts(LONDON, 2027, 11, 1, 1, 30)


def test_cron_with_seconds_and_next_fire_is_strictly_after() -> None:
    spec = ScheduleSpec(cron="*/10 * * * * *")
    t0 = datetime(2027, 1, 1, tzinfo=UTC).timestamp()
    assert spec.next_fire(t0) == t0 + 10
    assert spec.next_fire(t0 + 9.999) == t0 + 10
    assert spec.next_fire(t0 + 10) == t0 + 20
    assert spec.previous_fire(t0 + 10) == t0 + 10
    assert spec.previous_fire(t0 + 9.5) == t0


# -- every, anchored ----------------------------------------------------------------------------------------


def test_every_fires_on_the_anchor_grid() -> None:
    spec = ScheduleSpec(every=1.5)
    anchor = 1_800_000_000.25
    assert fires(spec, anchor, 3, anchor) == [anchor + 1.5, anchor + 3.0, anchor + 4.5]
    # Any process, from any point, lands on the same instants (bit-identical floats for the unique key).
    assert spec.next_fire(anchor + 2.0, anchor) == anchor + 3.0
    assert spec.next_fire(anchor + 3.0, anchor) == anchor + 4.5
    assert spec.previous_fire(anchor + 4.4, anchor) == anchor + 3.0
    assert list(spec.fires_between(anchor + 1.0, anchor + 4.5, anchor)) == [
        anchor + 1.5,
        anchor + 3.0,
        anchor + 4.5,
    ]


def test_every_ignores_dst_and_accepts_timedelta() -> None:
    spec = ScheduleSpec(every=timedelta(hours=1), tz="Europe/London")
    assert spec.text == "every 3600s"
    assert spec == ScheduleSpec(every=3600)
    start = datetime(2027, 10, 31, tzinfo=UTC).timestamp()
    assert fires(spec, start, 3, start) == [start + 3600, start + 7200, start + 10800]


# -- catch-up -----------------------------------------------------------------------------------------------

MINUTE = ScheduleSpec(every=60)
T0 = 1_800_000_000.0  # anchor; fires at T0 + 60k


def test_on_time_every_policy_creates_the_one_due_fire() -> None:
    for policy in ("skip", "once", "all"):
        assert MINUTE.due_fires(T0 + 60, T0, T0 + 120.3, catch_up=policy) == [T0 + 120]
        assert MINUTE.due_fires(T0 + 120, T0, T0 + 120.3, catch_up=policy) == []


def test_skip_drops_a_fire_older_than_the_grace() -> None:
    ten = ScheduleSpec(every=600)
    now = T0 + 3000 + 90  # down 40 minutes; the latest fire (T0+3000) is 90 s old
    assert ten.due_fires(T0 + 600, T0, now, catch_up="skip", grace=60) == []
    assert ten.due_fires(T0 + 600, T0, now, catch_up="skip", grace=120) == [T0 + 3000]
    assert ten.due_fires(T0 + 600, T0, T0 + 3000.5, catch_up="skip", grace=60) == [
        T0 + 3000
    ]  # a late wake-up still fires


def test_once_makes_one_run_for_any_downtime_within_the_window() -> None:
    now = T0 + 600 + 30
    assert MINUTE.due_fires(T0 + 60, T0, now, catch_up="once") == [T0 + 600]
    assert MINUTE.due_fires(T0 + 60, T0, T0 + 86_400 * 3 + 5, catch_up="once", window=3600) == [
        T0 + 86_400 * 3
    ]
    # a daily schedule down two hours past its fire, with a one-hour window: nothing
    daily = ScheduleSpec(at=["09:00"])
    nine = ts(UTC, 2027, 1, 2, 9)
    assert daily.due_fires(nine - 86_400, 0.0, nine + 7200, catch_up="once", window=3600) == []
    assert daily.due_fires(nine - 86_400, 0.0, nine + 1800, catch_up="once", window=3600) == [nine]


def test_all_replays_every_missed_fire_within_the_window() -> None:
    now = T0 + 7200 + 30  # two hours down; the window keeps fires at most an hour old
    got = MINUTE.due_fires(T0, T0, now, catch_up="all", window=3600)
    assert got == [T0 + 60 * k for k in range(61, 121)]
    assert MINUTE.due_fires(T0, T0, T0 + 600, catch_up="all", window=3600) == [
        T0 + 60 * k for k in range(1, 11)
    ]
    # exactly window old still counts
    assert MINUTE.due_fires(T0, T0, T0 + 3600 + 60, catch_up="all", window=3600)[0] == T0 + 60


def test_all_is_bounded_per_call_and_continues_where_it_stopped() -> None:
    second = ScheduleSpec(every=1)
    now = T0 + 2500
    first = second.due_fires(T0, T0, now, catch_up="all", window=10_000)
    assert len(first) == CATCH_UP_LIMIT == 1000
    assert first == [T0 + k for k in range(1, 1001)]
    rest = second.due_fires(first[-1], T0, now, catch_up="all", window=10_000)
    assert rest[0] == T0 + 1001
    assert len(rest) == 1000


def test_fires_never_reach_back_before_the_anchor() -> None:
    anchor = T0 + 30  # a changed schedule moved its anchor to now
    assert MINUTE.due_fires(None, anchor, T0 + 60, catch_up="all", window=3600, grace=3600) == []
    spec = ScheduleSpec(every=60)
    assert spec.due_fires(None, anchor, anchor + 60, catch_up="once") == [anchor + 60]
    assert spec.due_fires(None, anchor, anchor, catch_up="all") == []
    assert spec.due_fires(anchor + 120, anchor, anchor + 60, catch_up="all") == []


def test_catch_up_arguments_are_validated() -> None:
    with pytest.raises(ValidationError) as info:
        MINUTE.due_fires(None, T0, T0 + 60, catch_up="latest")  # type: ignore[arg-type]
    assert info.value.field == "catch_up"
    assert "'once'" in str(info.value)
    with pytest.raises(ValidationError) as info:
        MINUTE.due_fires(None, T0, T0 + 60, catch_up="all", window=-1)
    assert info.value.field == "catch_up_window"


# -- validation, canonical text, digest ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "field", "hint"),
    [
        ({}, "schedule", "exactly one of"),
        ({"cron": "* * * * *", "every": 5}, "schedule", "got cron, every"),
        ({"cron": "* * * *"}, "cron", "4 fields"),
        ({"cron": "61 * * * *"}, "cron", "e.g."),
        ({"cron": "0 0 31 2 *"}, "cron", "not a valid cron"),
        ({"cron": 5}, "cron", "must be a string"),
        ({"every": 0}, "every", "> 0"),
        ({"every": -3}, "every", "> 0"),
        ({"every": float("nan")}, "every", "> 0"),
        ({"every": "60"}, "every", "timedelta"),
        ({"every": True}, "every", "timedelta"),
        ({"at": ["25:00"]}, "at", "'25:00'"),
        ({"at": ["9"]}, "at", "HH:MM"),
        ({"at": ["09:60"]}, "at", "HH:MM"),
        ({"at": []}, "at", "at least one"),
        ({"at": 9}, "at", "list"),
        ({"cron": "0 9 * * *", "tz": "Mars/Olympus"}, "tz", "IANA"),
        ({"at": ["09:00"], "tz": ""}, "tz", "IANA"),
    ],
)
def test_invalid_input_names_the_field_and_the_fix(kwargs: dict[str, object], field: str, hint: str) -> None:
    with pytest.raises(ValidationError) as info:
        ScheduleSpec(**kwargs)  # type: ignore[arg-type]
    assert info.value.field == field
    assert hint in str(info.value)
    assert "e.g." in str(info.value)


def test_canonical_text_and_digest() -> None:
    a = ScheduleSpec(cron=" 0  9 * * *", tz="Europe/London")
    assert a.text == "cron 0 9 * * * Europe/London"
    assert ScheduleSpec(every=60).text == "every 60s"
    assert ScheduleSpec(every=0.5).text == "every 0.5s"
    assert ScheduleSpec(at=["15:00", "09:00", "9:00", "21:00:30"]).text == "at 09:00,15:00,21:00:30 UTC"
    assert a.digest == ScheduleSpec(cron="0 9 * * *", tz="Europe/London").digest
    assert len(a.digest) == 16
    others = [
        ScheduleSpec(cron="0 9 * * *"),
        ScheduleSpec(cron="0 10 * * *", tz="Europe/London"),
        ScheduleSpec(at=["09:00"], tz="Europe/London"),
    ]
    assert len({a.digest, *(o.digest for o in others)}) == 4
    for spec in (
        a,
        *others,
        ScheduleSpec(every=0.25),
        ScheduleSpec(at=["01:02:03", "04:05"], tz="Asia/Kolkata"),
    ):
        assert ScheduleSpec.from_text(spec.text) == spec
    with pytest.raises(ValidationError):
        ScheduleSpec.from_text("weekly on mondays")


def test_spec_is_frozen() -> None:
    spec = ScheduleSpec(every=60)
    with pytest.raises(AttributeError):
        spec.every = 30  # type: ignore[misc]
    assert repr(spec) == "ScheduleSpec('every 60s')"


# -- properties ---------------------------------------------------------------------------------------------

ZONES = ["UTC", "Europe/London", "America/New_York", "Australia/Lord_Howe", "Asia/Kolkata"]
CRONS = [
    "0 9 * * *",
    "30 1 * * *",
    "*/15 * * * *",
    "0 30 2 * * *",
    "*/7 * * * * *",
    "0 0 1 * *",
    "15 2,3 * * 0",
]
specs = st.one_of(
    st.builds(lambda c, z: ScheduleSpec(cron=c, tz=z), st.sampled_from(CRONS), st.sampled_from(ZONES)),
    st.builds(lambda e: ScheduleSpec(every=e), st.floats(5, 50_000, allow_nan=False)),
    st.builds(
        lambda ts_, z: ScheduleSpec(
            at=[f"{s // 3600:02d}:{s // 60 % 60:02d}:{s % 60:02d}" for s in ts_], tz=z
        ),
        st.lists(st.integers(0, 86_399), min_size=1, max_size=4),
        st.sampled_from(ZONES),
    ),
)
# 2026-2028, so both DST changes of each zone are crossed often
instants = st.floats(1_767_225_600, 1_861_920_000, allow_nan=False)


@settings(max_examples=300, deadline=None)
@given(spec=specs, start=instants, anchor=instants, n=st.integers(1, 40))
def test_fires_strictly_increase_and_fires_between_equals_repeated_next_fire(
    spec: ScheduleSpec, start: float, anchor: float, n: int
) -> None:
    chain = fires(spec, start, n, anchor)
    assert all(a < b for a, b in zip([start, *chain], chain, strict=False))
    assert list(spec.fires_between(start, chain[-1], anchor)) == chain
    assert list(islice(spec.fires_between(start, chain[-1] - 1e-3, anchor), n)) == chain[:-1]
    # previous_fire is the inverse: the latest fire at or before t, with nothing between it and next_fire(t)
    for fire in chain[:3]:
        assert spec.previous_fire(fire, anchor) == fire
        assert spec.next_fire(spec.previous_fire(fire - 1e-3, anchor) or 0.0, anchor) == fire


@settings(max_examples=150, deadline=None)
@given(
    spec=specs,
    start=instants,
    downtime=st.floats(0.001, 20_000),
    policy=st.sampled_from(["skip", "once", "all"]),
)
def test_due_fires_are_missed_fires_only(
    spec: ScheduleSpec, start: float, downtime: float, policy: str
) -> None:
    now = start + downtime
    got = spec.due_fires(start, start - 5, now, catch_up=policy, window=3600, grace=60)  # type: ignore[arg-type]
    missed = list(spec.fires_between(start, now, start - 5))
    assert set(got) <= set(missed)
    assert got == sorted(got)
    assert all(now - f <= 3600 for f in got)
    if policy != "all":
        assert len(got) <= 1
        assert not got or got[0] == missed[-1]
    elif missed and now - missed[-1] <= 3600 and len(missed) <= CATCH_UP_LIMIT:
        assert got == [f for f in missed if now - f <= 3600]
