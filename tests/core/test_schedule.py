"""Schedules and stop policies as pure functions: a simulated week of runs in milliseconds,
DST changes in both directions, and what counts toward a stop policy."""

import datetime as dt
import itertools
import json
from zoneinfo import ZoneInfo

import pytest

from core.jobs import LATEST_DATE, JobError, parse_job
from core.schedule import (
    AUTO_INTERVAL,
    Schedule,
    job_status,
    local_zone,
    next_run,
    stop_reason,
    wall_clock,
)
from core.state import Execution, JobRecord

BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")
MONDAY = dt.datetime(2026, 12, 7, tzinfo=BERLIN)  # 00:00, a Monday
MINUTE = dt.timedelta(minutes=1)


def job(schedule=None, stop_policy=None, status=None):
    document = {"name": "j", "transfer": {
        "source": {"connection": {"id": "a"}, "target": {"path": "/"}},
        "destination": {"connection": {"id": "b"}, "target": {"path": "/"}}}}
    if schedule is not None:
        document["schedule"] = schedule
    if stop_policy is not None:
        document["stop_policy"] = stop_policy
    if status is not None:
        document["status"] = status
    return parse_job(json.dumps(document))


def auto(**keys):
    return Schedule.of(job({"mode": "auto", **keys}))


def execution(number, status="completed", start=0.0, end=None, files=1, resume_at=None):
    end = start + 60 if end is None else end
    return Execution(number, "j", status, "complete", start, end, end, 1,
                     {"files": files, "folders": 1 if files else 0}, None, resume_at)


def simulate(schedule, start, until, took=dt.timedelta(minutes=10), status="completed"):
    """The starts of the runs the schedule makes from `start` to `until`, each run taking
    `took`, with a scheduler that asks again as each run ends."""
    executions: list[Execution] = []
    now = start
    while True:
        due = next_run(schedule, executions, now)
        if due is None or due >= until:
            return [e.started_at for e in reversed(executions)]
        ended = due.timestamp() + took.total_seconds()  # elapsed time, not the wall clock
        executions.insert(0, execution(len(executions) + 1, status, due.timestamp(), ended))
        now = dt.datetime.fromtimestamp(ended, start.tzinfo)


def local(starts, zone=BERLIN):
    return [dt.datetime.fromtimestamp(t, zone) for t in starts]


def at(day, hour, minute=0, zone=BERLIN, fold=0):
    return dt.datetime(2026, 12, 7, hour, minute, tzinfo=zone, fold=fold) + dt.timedelta(
        days=day)


def test_an_auto_job_runs_at_once_then_15_minutes_after_each_run_ends():
    starts = local(simulate(auto(), MONDAY, MONDAY + dt.timedelta(hours=1)))
    assert AUTO_INTERVAL == 900
    # from the end, not the start: 10 minutes of work, 15 of rest
    assert starts == [MONDAY + n * 25 * MINUTE for n in range(3)]


def test_a_run_longer_than_its_interval_still_rests_a_whole_interval():
    schedule = auto(repeat_interval={"value": 5, "unit": "m"})
    starts = local(simulate(schedule, MONDAY, MONDAY + dt.timedelta(hours=1),
                            took=dt.timedelta(minutes=20)))
    assert starts == [MONDAY, MONDAY + 25 * MINUTE, MONDAY + 50 * MINUTE]


def test_a_week_of_a_weekday_evening_window():
    schedule = auto(days=["weekdays"], start_window={"hr": 19}, end_window={"hr": 23},
                    repeat_interval={"value": 1, "unit": "h"})
    starts = local(simulate(schedule, MONDAY, MONDAY + dt.timedelta(days=7)))
    evening = [(19, 0), (20, 10), (21, 20), (22, 30)]
    assert starts == [at(day, h, m) for day in range(5) for h, m in evening]


def test_a_window_across_midnight_belongs_to_the_day_it_opens_on():
    schedule = auto(days="friday", start_window={"hr": 22}, end_window={"hr": 6},
                    repeat_interval={"value": 2, "unit": "h"})
    starts = local(simulate(schedule, MONDAY, MONDAY + dt.timedelta(days=7)))
    # Friday 22:00 until Saturday 06:00; Saturday's own 22:00 is not Friday's
    assert starts == [at(4, 22), at(5, 0, 10), at(5, 2, 20), at(5, 4, 30)]


def test_run_at_runs_once_on_each_allowed_day():
    schedule = auto(days=["saturday", "sunday"], run_at={"hr": 2, "min": 30})
    starts = local(simulate(schedule, MONDAY, MONDAY + dt.timedelta(days=14)))
    assert starts == [at(5, 2, 30), at(6, 2, 30), at(12, 2, 30), at(13, 2, 30)]


def test_run_at_with_a_repeat_interval_repeats_until_the_window_closes():
    schedule = auto(run_at={"hr": 20}, end_window={"hr": 22},
                    repeat_interval={"value": 50, "unit": "m"})
    starts = local(simulate(schedule, MONDAY, MONDAY + dt.timedelta(days=1)))
    assert starts == [at(0, 20), at(0, 21)]


def test_a_missed_run_at_is_made_up_once_later_that_day():
    schedule = auto(run_at={"hr": 2, "min": 30})
    # no scheduler ran at 02:30 on Monday; it starts at 09:00
    assert next_run(schedule, [], at(0, 9)) == at(0, 9)
    ran = [execution(1, start=at(0, 9).timestamp())]
    assert next_run(schedule, ran, at(0, 9, 30)) == at(1, 2, 30)


def test_start_and_end_dates_bound_the_runs():
    schedule = auto(start_date=at(2, 12).timestamp(), end_date=at(2, 13).timestamp(),
                    repeat_interval={"value": 20, "unit": "m"})
    starts = local(simulate(schedule, MONDAY, MONDAY + dt.timedelta(days=7)))
    assert starts == [at(2, 12), at(2, 12, 30)]  # 13:00 is the end: no run at it


def test_repeat_count_is_the_runs_after_the_first():
    starts = simulate(auto(repeat_count=2), MONDAY, MONDAY + dt.timedelta(days=1))
    assert len(starts) == 3


def test_paused_and_interrupted_runs_are_continued_not_counted():
    schedule = auto(repeat_count=0)
    paused = execution(1, "paused", MONDAY.timestamp(), resume_at=at(0, 1).timestamp())
    # a paused run continues once the rate limit resets, whatever the interval
    assert next_run(schedule, [paused], at(0, 0, 5)) == at(0, 1)
    # an interrupted one continues at once, not an interval after it stopped
    interrupted = execution(2, "interrupted", at(0, 1).timestamp())
    assert next_run(schedule, [interrupted, paused], at(0, 1, 5)) == at(0, 1, 5)
    done = execution(3, "completed", at(0, 2).timestamp())
    assert next_run(schedule, [done, interrupted, paused], at(0, 3)) is None


def test_a_paused_job_waits_for_its_manual_first_run():
    schedule = Schedule.of(job({"mode": "auto"}, status="paused"))
    assert next_run(schedule, [], MONDAY) is None
    first = execution(1, start=MONDAY.timestamp())
    assert next_run(schedule, [first], at(0, 1)) == at(0, 1)


def test_manual_and_ad_hoc_jobs_never_run_by_themselves_unless_started_on_creation():
    for mode in ("manual", "ad-hoc"):
        assert next_run(Schedule.of(job({"mode": mode})), [], MONDAY) is None
    assert next_run(Schedule.of(job()), [], MONDAY) is None
    started = Schedule.of(job({"mode": "manual"}, status="start"))
    assert next_run(started, [], MONDAY) == MONDAY
    assert next_run(started, [execution(1)], MONDAY) is None


def test_the_schedule_is_read_typed():
    schedule = Schedule.of(job({
        "mode": "auto", "days": ["monday", "weekends"], "start_window": {"hr": 22, "min": 5},
        "end_window": {"hr": 6}, "start_date": 1_800_000_000, "end_date": 1_900_000_000,
        "repeat_interval": {"value": 90, "unit": "s"}, "repeat_count": 4,
        "max_execution": {"value": 2, "unit": "h"}}))
    assert schedule.days == {0, 5, 6}
    assert (schedule.start_window, schedule.end_window) == (dt.time(22, 5), dt.time(6))
    assert (schedule.start_date, schedule.end_date) == (1.8e9, 1.9e9)
    assert (schedule.interval, schedule.repeat_count, schedule.max_execution) == (90, 4, 7200)
    assert Schedule.of(job()) == Schedule()


# -- DST ---------------------------------------------------------------------------------------


def test_run_at_in_the_hour_spring_skips_runs_as_the_clocks_jump():
    schedule = auto(run_at={"hr": 2, "min": 30})
    saturday = dt.datetime(2026, 3, 28, tzinfo=BERLIN)
    starts = local(simulate(schedule, saturday, saturday + dt.timedelta(days=3)))
    assert [s.strftime("%d %H:%M %Z") for s in starts] == [
        "28 02:30 CET",
        "29 03:00 CEST",  # Sunday: 02:00 CET became 03:00 CEST; 02:30 never showed
        "30 02:30 CEST"]
    assert wall_clock(dt.date(2026, 3, 29), dt.time(2, 30), BERLIN) == dt.datetime(
        2026, 3, 29, 1, tzinfo=dt.UTC)


def test_run_at_in_the_hour_autumn_repeats_runs_once():
    schedule = auto(run_at={"hr": 2, "min": 30})
    saturday = dt.datetime(2026, 10, 24, tzinfo=BERLIN)
    starts = simulate(schedule, saturday, saturday + dt.timedelta(days=3))
    assert [dt.datetime.fromtimestamp(s, dt.UTC).strftime("%d %H:%M") for s in starts] == [
        "24 00:30",  # 02:30 CEST
        "25 00:30",  # the first 02:30 (CEST); not again at the second (01:30 UTC)
        "26 01:30"]  # 02:30 CET


def test_intervals_are_elapsed_time_through_both_changes():
    schedule = auto(repeat_interval={"value": 50, "unit": "m"})
    for night in (dt.datetime(2026, 3, 8, tzinfo=NEW_YORK),
                  dt.datetime(2026, 11, 1, tzinfo=NEW_YORK)):
        starts = simulate(schedule, night, night + dt.timedelta(hours=6))
        assert {b - a for a, b in itertools.pairwise(starts)} == {3600}


def test_a_window_on_the_spring_forward_night_is_an_hour_shorter():
    schedule = auto(start_window={"hr": 1}, end_window={"hr": 4},
                    repeat_interval={"value": 20, "unit": "m"})
    night = dt.datetime(2026, 3, 8, tzinfo=NEW_YORK)
    starts = local(simulate(schedule, night, night + dt.timedelta(hours=12)), NEW_YORK)
    assert [s.strftime("%H:%M") for s in starts] == ["01:00", "01:30", "03:00", "03:30"]


def test_a_window_on_the_autumn_night_is_an_hour_longer():
    schedule = auto(start_window={"hr": 1}, end_window={"hr": 3},
                    repeat_interval={"value": 20, "unit": "m"})
    night = dt.datetime(2026, 11, 1, tzinfo=NEW_YORK)
    starts = simulate(schedule, night, night + dt.timedelta(hours=12))
    assert len(starts) == 6  # 01:00 EDT to 03:00 EST is three hours: 6 runs of 30 minutes


# -- stop policies --------------------------------------------------------------------------


@pytest.mark.parametrize(("policy", "statuses", "reason"), [
    ({"on_success": 2}, ["no_changes", "completed", "no_changes"],
     "stop policy on_success 2: 2 runs with no changes"),
    ({"on_failure": 2}, ["failed", "completed", "guarded"],
     "stop policy on_failure 2: 2 runs failed"),
    ({"on_execute": 3}, ["completed", "warn", "failed"],
     "stop policy on_execute 3: 3 runs in all"),
])
def test_each_stop_policy_key_counts_runs_not_necessarily_consecutive(policy, statuses, reason):
    done = [execution(n, status) for n, status in enumerate(statuses, 1)][::-1]
    assert stop_reason(job(stop_policy=policy), done[1:]) is None
    assert stop_reason(job(stop_policy=policy), done) == reason


def test_what_does_not_count_as_a_run():
    not_runs = [execution(1, "paused"), execution(2, "interrupted"),
                execution(3, "failed", files=0),  # failed to start: examined nothing
                execution(4, "running", end=None)]
    policy = {"on_execute": 1, "on_failure": 1}
    assert stop_reason(job(stop_policy=policy), not_runs) is None
    assert stop_reason(job(stop_policy={"on_execute": 0}), [execution(1)] * 3) is None


def test_an_ad_hoc_job_is_complete_after_its_run_and_repeat_count_after_its_last():
    assert stop_reason(job({"mode": "ad-hoc"}), [execution(1, "paused")]) is None
    assert stop_reason(job({"mode": "ad-hoc"}), [execution(1, "failed")]) == \
        "ad-hoc job: it ran once"
    counted = job({"mode": "auto", "repeat_count": 1})
    assert stop_reason(counted, [execution(1)]) is None
    assert stop_reason(counted, [execution(2), execution(1)]) == \
        "schedule repeat_count 1: 2 runs made"


def test_the_status_words():
    def record(status="idle", reason=None, **schedule):
        definition = job(schedule or None, status="paused" if schedule else None).definition
        return JobRecord("id", "j", "transfer", "copy", "a", "", "b", "", False,
                         schedule.get("mode", "manual"), "Default", 2, json.dumps(definition),
                         0.0, status, reason)

    assert job_status(record(), None, running=False).words == "idle"
    assert job_status(record(), None, running=True).words == "running"
    complete = record("complete", "ad-hoc job: it ran once")
    assert job_status(complete, None, running=False).words == "complete: ad-hoc job: it ran once"
    assert job_status(complete, None, running=True).words == "running"  # run by hand
    assert job_status(record(), execution(1, "interrupted"), running=False).code == "paused"
    waiting = job_status(record(mode="auto"), None, running=False)
    assert waiting.words == 'paused: status "paused": waits for a manual first run'


def test_the_local_zone_keeps_its_dst_rules(monkeypatch):
    monkeypatch.setenv("TZ", "Europe/Berlin")
    zone = local_zone()
    offsets = {dt.datetime(2026, month, 1, tzinfo=zone).utcoffset() for month in (1, 7)}
    assert offsets == {dt.timedelta(hours=1), dt.timedelta(hours=2)}  # not a fixed offset
    monkeypatch.setenv("TZ", "Not/A_Zone")
    assert dt.datetime(2026, 1, 1, tzinfo=local_zone()).utcoffset() is not None  # /etc/localtime


def test_an_end_date_before_the_start_date_is_refused():
    with pytest.raises(JobError) as caught:
        job({"mode": "auto", "start_date": 2000, "end_date": 1000})
    assert caught.value.errors == ["schedule.end_date: end_date (1000) is not after "
                                   "start_date (2000)"]


def test_an_interrupted_run_is_continued_at_once_inside_the_window():
    evenings = auto(days="weekdays", start_window={"hr": 19}, end_window={"hr": 23},
                    repeat_interval={"value": 2, "unit": "h"})
    stopped = execution(1, "interrupted", at(0, 19).timestamp(), at(0, 19, 30).timestamp())
    assert next_run(evenings, [stopped], at(0, 19, 31)) == at(0, 19, 31)
    # after the window closed: when it opens again (Friday's run goes on on Monday)
    assert next_run(evenings, [stopped], at(0, 23, 30)) == at(1, 19)
    assert next_run(evenings, [stopped], at(4, 23, 30)) == at(7, 19)
    # a run_at job the agent's SIGTERM stopped continues today, not tomorrow
    daily = auto(run_at={"hr": 2})
    killed = execution(1, "interrupted", at(0, 2).timestamp(), at(0, 2, 10).timestamp())
    assert next_run(daily, [killed], at(0, 2, 11)) == at(0, 2, 11)
    assert next_run(daily, [execution(1, start=at(0, 2).timestamp())], at(0, 3)) == at(1, 2)


@pytest.mark.parametrize(("schedule", "error"), [
    ('"start_date": 1e300', "schedule.start_date: 1e+300 is not a date"),
    ('"end_date": 1e300', "schedule.end_date: 1e+300 is not a date"),
    ('"start_date": 1e400', "schedule.start_date: Infinity is not a date"),
    ('"end_date": 253402300800', "schedule.end_date: 253402300800 is not a date"),
    ('"repeat_interval": {"value": 1e300, "unit": "d"}',
     "schedule.repeat_interval.value: 1e+300 d is too long"),
    ('"max_execution": {"value": 1e400, "unit": "ns"}',
     "schedule.max_execution.value: Infinity ns is too long"),
    ('"repeat_interval": {"value": NaN, "unit": "s"}', "schedule.repeat_interval.value: NaN"),
    ('"start_date": Infinity', "schedule.start_date: Infinity"),
])
def test_dates_and_durations_a_datetime_cannot_hold_are_refused(schedule, error):
    text = json.dumps(job().definition)[:-1] + f', "schedule": {{"mode": "auto", {schedule}}}}}'
    with pytest.raises(JobError) as caught:
        parse_job(text)
    assert len(caught.value.errors) == 1 and caught.value.errors[0].startswith(error)


@pytest.mark.parametrize("keys", [
    {"start_date": 1e300}, {"start_date": float("inf")}, {"start_date": LATEST_DATE + 86_400},
    {"start_date": LATEST_DATE - 3600, "days": frozenset({0})},  # no Monday left in 9999
    {"repeat_interval": 1e300}, {"repeat_interval": float("inf")}, {"end_date": float("nan")},
])
def test_a_stored_schedule_past_what_a_datetime_holds_never_runs(keys):
    """A job kept from before the checks: never due, rather than a crash of every command
    that shows when it runs."""
    schedule = Schedule(mode="auto", **keys)
    due = next_run(schedule, [execution(1, start=MONDAY.timestamp())], MONDAY + 2 * MINUTE)
    assert due is None or "end_date" in keys


def test_a_repeat_interval_of_0_is_refused_and_one_under_a_minute_raised_to_it():
    for value in (0, 0.0):
        with pytest.raises(JobError) as caught:
            job({"mode": "auto", "repeat_interval": {"value": value, "unit": "m"}})
        assert caught.value.errors == ["schedule.repeat_interval.value: must be more than 0 "
                                       "(0 would run the job back to back)"]
    often = job({"mode": "auto", "repeat_interval": {"value": 1, "unit": "ns"}})
    assert often.warnings == ("schedule.repeat_interval: 1 ns is under 60 s; the job repeats "
                              "every 60 s",)
    assert Schedule.of(often).interval == 60
    ran = execution(1, start=MONDAY.timestamp(), end=MONDAY.timestamp())
    assert next_run(Schedule.of(often), [ran], MONDAY) == MONDAY + MINUTE
    assert job({"mode": "auto", "repeat_interval": {"value": 1, "unit": "m"}}).warnings == ()
