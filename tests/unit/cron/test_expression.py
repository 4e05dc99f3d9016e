"""Five-field cron expressions: parsing, slots, and daylight saving in a time zone."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from pubsub_jobs.cron.expression import CronExpression

BERLIN = ZoneInfo("Europe/Berlin")  # 2026: CET->CEST 29 March 01:00Z, back 25 October 01:00Z
NEW_YORK = ZoneInfo("America/New_York")


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def runs(cron: str, after: str, count: int, zone: ZoneInfo = BERLIN) -> list[str]:
    expression = CronExpression.parse(cron)
    moment, out = utc(after), []
    for _ in range(count):
        moment = expression.next_after(moment, zone)
        out.append(moment.strftime("%m-%d %H:%M"))
    return out


@pytest.mark.parametrize("text", [
    "* * * * *", "0 2 * * *", "*/15 9-17 * * MON-FRI", "0 0 1,15 * *", "5 4 * JAN,jul sun",
    "0-30/10 * * * 7", "59 23 31 12 *", "0 0 29 2 *", " 0   2 * *  * ",
])
def test_valid_expressions(text):
    assert CronExpression.parse(text).text == " ".join(text.split())


@pytest.mark.parametrize(("text", "says"), [
    ("* * * *", "five fields"),
    ("* * * * * *", "five fields"),
    ("@daily", "macros such as @daily are not standard"),
    ("60 * * * *", "minute 60 is out of range 0-59"),
    ("* 24 * * *", "hour 24 is out of range 0-23"),
    ("* * 0 * *", "day of month 0 is out of range 1-31"),
    ("* * * 13 *", "month 13 is out of range 1-12"),
    ("* * * * 8", "day of week 8 is out of range 0-7"),
    ("* * * FOO *", "month 'FOO' is not a number or a name"),
    ("*/0 * * * *", "a step is a whole number of at least 1"),
    ("5/10 * * * *", "write 5-59/10"),
    ("30-10 * * * *", "a range runs from low to high"),
    ("1,,2 * * * *", "minute '' is not a number"),
    ("0 0 30 2 *", "never runs"),
    ("0 0 31 4,6,9,11 *", "never runs"),
])
def test_invalid_expressions_say_why(text, says):
    with pytest.raises(ValueError, match=says):
        CronExpression.parse(text)


def test_fields_and_names():
    expression = CronExpression.parse("*/20 8-10 * JAN-MAR MON,WED,7")
    assert expression.minutes == (0, 20, 40)
    assert expression.hours == (8, 9, 10)
    assert expression.months == {1, 2, 3}
    assert expression.weekdays == {1, 3, 0}


def test_day_of_month_or_day_of_week_when_both_are_restricted():
    # Vixie cron (and Cloud Scheduler): the 13th of the month OR every Friday.
    assert runs("0 0 13 * FRI", "2026-02-01T00:00:00", 4, ZoneInfo("UTC")) == [
        "02-06 00:00", "02-13 00:00", "02-20 00:00", "02-27 00:00"]
    # With one of them "*" only the other restricts: every 13th.
    assert runs("0 0 13 * *", "2026-02-01T00:00:00", 2, ZoneInfo("UTC")) == [
        "02-13 00:00", "03-13 00:00"]
    # A field starting with "*" (a step) counts as "*": both must match (1st, 11th, 21st or
    # 31st, and a Friday), as in Vixie cron.
    assert runs("0 0 */10 * FRI", "2026-03-01T00:00:00", 2, ZoneInfo("UTC")) == [
        "05-01 00:00", "07-31 00:00"]


def test_next_and_last_slot_in_utc():
    expression = CronExpression.parse("*/15 * * * *")
    zone = ZoneInfo("UTC")
    assert expression.next_after(utc("2026-01-01T10:07:00"), zone) == utc("2026-01-01T10:15:00")
    assert expression.next_after(utc("2026-01-01T10:15:00"), zone) == utc("2026-01-01T10:30:00")
    assert expression.last_at_or_before(utc("2026-01-01T10:15:00"), zone) == utc(
        "2026-01-01T10:15:00")
    assert expression.last_at_or_before(utc("2026-01-01T10:14:59.999"), zone) == utc(
        "2026-01-01T10:00:00")


def test_rare_slots_are_found_years_apart():
    expression = CronExpression.parse("0 0 29 2 *")
    assert expression.next_after(utc("2026-03-01T00:00:00"), BERLIN) == utc("2028-02-28T23:00:00")
    assert expression.last_at_or_before(utc("2026-03-01T00:00:00"), BERLIN) == utc(
        "2024-02-28T23:00:00")


def test_naive_datetimes_are_refused():
    with pytest.raises(ValueError, match="naive"):
        CronExpression.parse("* * * * *").next_after(datetime(2026, 1, 1), BERLIN)


class TestDaylightSaving:
    """Europe/Berlin: 29 March 2026 02:00 CET becomes 03:00 CEST (the wall times 02:00-02:59
    do not exist); 25 October 2026 03:00 CEST becomes 02:00 CET (02:00-02:59 happen twice)."""

    def test_a_daily_slot_the_clock_skips_runs_at_the_jump(self):
        # 02:30 does not exist on 29 March: it runs at 03:00 CEST (01:00Z), once.
        assert runs("30 2 * * *", "2026-03-27T12:00:00", 3) == [
            "03-28 01:30", "03-29 01:00", "03-30 00:30"]

    def test_several_skipped_slots_collapse_into_one_run(self):
        assert runs("*/15 2 * * *", "2026-03-28T12:00:00", 2) == ["03-29 01:00", "03-30 00:00"]
        assert runs("0 2,3 * * *", "2026-03-28T12:00:00", 3) == [
            "03-29 01:00", "03-30 00:00", "03-30 01:00"]

    def test_a_daily_slot_that_happens_twice_runs_once_at_the_first(self):
        # 02:30 happens at 00:30Z (CEST) and at 01:30Z (CET): only the first runs.
        assert runs("30 2 * * *", "2026-10-24T12:00:00", 3) == [
            "10-25 00:30", "10-26 01:30", "10-27 01:30"]

    def test_an_hourly_schedule_follows_the_clock(self):
        # Spring: 02:30 does not exist and does not run; the runs stay an hour apart.
        assert runs("30 * * * *", "2026-03-28T23:00:00", 3) == [
            "03-28 23:30", "03-29 00:30", "03-29 01:30"]
        # Autumn: 02:30 CEST and 02:30 CET both run, an hour apart.
        assert runs("30 * * * *", "2026-10-24T23:00:00", 4) == [
            "10-24 23:30", "10-25 00:30", "10-25 01:30", "10-25 02:30"]

    def test_the_slot_at_or_before_a_moment_agrees_with_the_runs(self):
        nightly = CronExpression.parse("30 2 * * *")
        last = nightly.last_at_or_before
        assert last(utc("2026-03-29T01:00:00"), BERLIN) == utc("2026-03-29T01:00:00")
        assert last(utc("2026-03-29T00:59:59"), BERLIN) == utc("2026-03-28T01:30:00")
        # The second 02:30 (CET) is no slot: a firing then belongs to the first.
        assert last(utc("2026-10-25T01:30:00"), BERLIN) == utc("2026-10-25T00:30:00")
        hourly = CronExpression.parse("30 * * * *")
        assert hourly.last_at_or_before(utc("2026-10-25T01:30:00"), BERLIN) == utc(
            "2026-10-25T01:30:00")
        assert hourly.last_at_or_before(utc("2026-10-25T01:29:59"), BERLIN) == utc(
            "2026-10-25T00:30:00")

    def test_every_run_and_slot_agree_across_a_year(self):
        """For any moment, the latest slot at or before it is the run before the next one."""
        for cron in ("30 2 * * *", "30 * * * *", "*/20 1-3 * * *", "0 2 * * SUN"):
            expression = CronExpression.parse(cron)
            for zone in (BERLIN, NEW_YORK):
                moment = utc("2026-03-01T00:00:00")
                previous = expression.last_at_or_before(moment, zone)
                for _ in range(60):
                    slot = expression.next_after(moment, zone)
                    assert slot > moment
                    assert expression.last_at_or_before(slot, zone) == slot
                    assert expression.last_at_or_before(
                        slot - timedelta(microseconds=1), zone) == previous
                    previous = moment = slot
