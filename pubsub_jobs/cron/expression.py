"""Standard five-field cron expressions, evaluated in a time zone.

``minute hour day-of-month month day-of-week``, as Cloud Scheduler reads them: ``*``,
numbers, ranges ``a-b``, steps ``*/n`` and ``a-b/n``, lists ``a,b``, month names
``JAN``-``DEC`` and day names ``SUN``-``SAT`` (``0`` and ``7`` are Sunday). When both day
fields are restricted a day matching either runs (Vixie cron's rule, which Cloud Scheduler
follows); when one starts with ``*`` only the other counts.

Slots are wall-clock times in the schedule's time zone. Daylight saving moves the clock, so
some wall times do not exist and others happen twice; :meth:`CronExpression.instants` decides
what becomes of them:

* when the hour field starts with ``*`` the schedule follows the clock: a wall time the
  clock jumps over does not run, and one that happens twice runs twice (hourly stays hourly);
* when the hour field names hours, each named wall time runs once a day: one the clock jumps
  over runs at the jump (``02:30`` runs at ``03:00`` when 02:00 becomes 03:00; several
  collapse into that one run), and one that happens twice runs at its first occurrence.
"""

from __future__ import annotations

import calendar
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, tzinfo

_FIELDS = (("minute", 0, 59), ("hour", 0, 23), ("day of month", 1, 31), ("month", 1, 12),
           ("day of week", 0, 7))
_MONTHS = {name.upper(): i for i, name in enumerate(calendar.month_abbr) if name}
_DAYS = {"SUN": 0, "MON": 1, "TUE": 2, "WED": 3, "THU": 4, "FRI": 5, "SAT": 6}
_NAMES: dict[str, dict[str, int]] = {"month": _MONTHS, "day of week": _DAYS}
#: The longest a valid expression can wait for its next day (29 February: eight years
#: around 2100); the search stops there rather than loop on a date that never comes.
_MAX_DAYS = 366 * 9
#: How far around a moment offset changes are looked for (a day and then some).
_AROUND = timedelta(hours=26)
_DAY = timedelta(days=1)


@dataclass(frozen=True, slots=True)
class CronExpression:
    """A parsed cron expression: :meth:`parse` it, then ask for slots in a time zone."""

    text: str
    minutes: tuple[int, ...]
    hours: tuple[int, ...]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]  # 0 is Sunday
    any_day: bool  # day of month starts with "*"
    any_weekday: bool  # day of week starts with "*"
    follows_clock: bool  # hour starts with "*": see the module docstring

    @classmethod
    def parse(cls, text: str) -> CronExpression:
        """Parse ``text``; a ``ValueError`` says what is wrong with it."""
        if not isinstance(text, str):
            raise ValueError(f"a cron expression is a string, not {type(text).__name__}")
        parts = text.split()
        if len(parts) != 5:
            hint = " (macros such as @daily are not standard: write 0 0 * * *)" if (
                text.strip().startswith("@")) else ""
            raise ValueError(
                f"a cron expression has five fields (minute hour day-of-month month "
                f"day-of-week), this one has {len(parts)}{hint}"
            )
        values = [_field(part, *spec) for part, spec in zip(parts, _FIELDS, strict=True)]
        minutes, hours, days, months, weekdays = values
        expression = cls(
            text=" ".join(parts),
            minutes=tuple(sorted(minutes)),
            hours=tuple(sorted(hours)),
            days=frozenset(days),
            months=frozenset(months),
            weekdays=frozenset(0 if d == 7 else d for d in weekdays),
            any_day=parts[2].startswith("*"),
            any_weekday=parts[4].startswith("*"),
            follows_clock=parts[1].startswith("*"),
        )
        if expression.any_weekday and not any(
            day <= _longest(month) for month in expression.months for day in expression.days
        ):
            raise ValueError("no month of this expression has one of its days, so it never runs")
        return expression

    def __str__(self) -> str:
        return self.text

    def matches_day(self, day: date) -> bool:
        if day.month not in self.months:
            return False
        in_days = day.day in self.days
        in_weekdays = day.isoweekday() % 7 in self.weekdays
        if self.any_day or self.any_weekday:
            return in_days and in_weekdays
        return in_days or in_weekdays

    def next_after(self, moment: datetime, zone: tzinfo) -> datetime:
        """The first slot strictly after ``moment`` (an aware datetime), in UTC."""
        moment = _utc(moment)
        spread = _spread(zone, moment)
        best: datetime | None = None
        limit: datetime | None = None
        for wall in self._walls(_wall(moment, zone) - spread, forward=True):
            if limit is not None and wall > limit:
                break
            for instant in self.instants(wall, zone):
                if instant > moment and (best is None or instant < best):
                    best = instant
                    limit = _wall(best, zone) + _spread(zone, best)
        if best is None:  # pragma: no cover - parse() refuses expressions that never run
            raise ValueError(f"cron {self.text!r} has no slot after {moment.isoformat()}")
        return best

    def last_at_or_before(self, moment: datetime, zone: tzinfo) -> datetime:
        """The latest slot at or before ``moment`` (an aware datetime), in UTC."""
        moment = _utc(moment)
        spread = _spread(zone, moment)
        best: datetime | None = None
        limit: datetime | None = None
        for wall in self._walls(_wall(moment, zone) + spread, forward=False):
            if limit is not None and wall < limit:
                break
            for instant in self.instants(wall, zone):
                if instant <= moment and (best is None or instant > best):
                    best = instant
                    limit = _wall(best, zone) - _spread(zone, best)
        if best is None:  # pragma: no cover - parse() refuses expressions that never run
            raise ValueError(f"cron {self.text!r} has no slot before {moment.isoformat()}")
        return best

    def instants(self, wall: datetime, zone: tzinfo) -> list[datetime]:
        """The UTC instants at which the naive wall-clock time ``wall`` runs in ``zone``:
        usually one; none or the moment of the jump when the clock skips it; one or two when
        it happens twice (see the module docstring)."""
        before = wall.replace(tzinfo=zone, fold=0).utcoffset() or timedelta(0)
        after = wall.replace(tzinfo=zone, fold=1).utcoffset() or timedelta(0)
        first = (wall - before).replace(tzinfo=UTC)
        if before == after:
            return [first]
        second = (wall - after).replace(tzinfo=UTC)
        if before > after:  # the clock went back: this wall time happens twice
            return [first, second] if self.follows_clock else [first]
        # The clock jumped forward over this wall time: it does not exist today.
        return [] if self.follows_clock else [_jump(second, first, zone)]

    def _walls(self, start: datetime, *, forward: bool) -> Iterator[datetime]:
        """The naive wall-clock times this expression names, from ``start`` (included) on,
        forwards or backwards."""
        day = start.date()
        step = _DAY if forward else -_DAY
        hours = self.hours if forward else self.hours[::-1]
        minutes = self.minutes if forward else self.minutes[::-1]
        for _ in range(_MAX_DAYS):
            if self.matches_day(day):
                first_day = day == start.date()
                for hour in hours:
                    if first_day and (hour < start.hour if forward else hour > start.hour):
                        continue
                    for minute in minutes:
                        wall = datetime(day.year, day.month, day.day, hour, minute)
                        if wall >= start if forward else wall <= start:
                            yield wall
            day += step


def _field(text: str, name: str, low: int, high: int) -> set[int]:
    values: set[int] = set()
    for part in text.split(","):
        span, slash, step_text = part.partition("/")
        step = 1
        if slash:
            if not step_text.isdigit() or int(step_text) < 1:
                raise ValueError(f"{name} {part!r}: a step is a whole number of at least 1")
            step = int(step_text)
        if span == "*":
            start, end = low, high
        elif "-" in span:
            first, _, last = span.partition("-")
            start, end = _value(first, name, low, high), _value(last, name, low, high)
            if start > end:
                raise ValueError(f"{name} {part!r}: a range runs from low to high")
        else:
            start = end = _value(span, name, low, high)
            if slash:
                raise ValueError(f"{name} {part!r}: a step follows * or a range "
                                 f"(write {span}-{high}/{step})")
        values.update(range(start, end + 1, step))
    return values


def _value(text: str, name: str, low: int, high: int) -> int:
    names = _NAMES.get(name, {})
    if text.upper() in names:
        return names[text.upper()]
    if not text.isdigit():
        known = f" or a name ({', '.join(names)})" if names else ""
        raise ValueError(f"{name} {text!r} is not a number{known}")
    value = int(text)
    if not low <= value <= high:
        raise ValueError(f"{name} {value} is out of range {low}-{high}")
    return value


def _longest(month: int) -> int:
    return 29 if month == 2 else calendar.monthrange(2001, month)[1]


def _utc(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        raise ValueError("a naive datetime has no time zone: pass an aware datetime")
    return moment.astimezone(UTC)


def _wall(moment: datetime, zone: tzinfo) -> datetime:
    """The naive wall-clock time of an aware ``moment`` in ``zone``."""
    return moment.astimezone(zone).replace(tzinfo=None)


def _spread(zone: tzinfo, moment: datetime) -> timedelta:
    """How much the zone's UTC offset varies around ``moment``: how far apart a wall time and
    its instants can drift, so how far around a moment slots are looked for (zero without
    daylight saving)."""
    offsets = [(moment + shift).astimezone(zone).utcoffset() or timedelta(0)
               for shift in (-_AROUND, timedelta(0), _AROUND)]
    return max(offsets) - min(offsets)


def _jump(before: datetime, after: datetime, zone: tzinfo) -> datetime:
    """The instant in ``(before, after]`` at which ``zone`` moves its clock forward (offsets
    change on whole seconds)."""
    low, high = int(before.timestamp()), int(after.timestamp())
    new_offset = after.astimezone(zone).utcoffset()
    while high - low > 1:
        middle = (low + high) // 2
        if datetime.fromtimestamp(middle, zone).utcoffset() == new_offset:
            high = middle
        else:
            low = middle
    return datetime.fromtimestamp(high, UTC)
