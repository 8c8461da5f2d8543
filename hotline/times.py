"""Times of cases: one stored format, the city's zone, and the window a case's time must fall in.

Two failures taught the rules here. ``strftime('%Y')`` writes the year 1 as
``1``, not ``0001``, so a case dated 0001-01-01 was stored but could never be
read back, and every view that met it answered 500. And one row dated 2040 or
2017 stretched every default view to that year (400s, or a 9.5 s hotspot
query). So the stored format always has four-digit years, and a case's time
is accepted only inside a plausible window: from a configurable earliest day
(2000-01-01 by default; no hotline holds older records) to one day after now
(a clock a little fast, not a typo of 2052). Offsets are converted into the
city's zone (Asia/Shanghai by default) rather than dropped: a case sent as
``08:00Z`` came in at 16:00 local time.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import TypeVar, overload
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from hotline.errors import Implausible, InvalidInput

D = TypeVar("D", date, datetime)

DEFAULT_EARLIEST = date(2000, 1, 1)
DEFAULT_ZONE = "Asia/Shanghai"


def shifted(moment: D, delta: timedelta) -> D:
    """``moment + delta``, held within the calendar: a year-1 row an older version let in must not overflow
    the arithmetic of whatever reads it."""
    try:
        return moment + delta
    except OverflowError:
        return type(moment).max if delta > timedelta(0) else type(moment).min


@overload
def format_time(moment: datetime) -> str: ...
@overload
def format_time(moment: None) -> None: ...
def format_time(moment: datetime | None) -> str | None:
    """``YYYY-MM-DD HH:MM:SS`` for any datetime, years under 1000 included (``strftime`` leaves them unpadded)."""
    if moment is None:
        return None
    return moment.replace(tzinfo=None, microsecond=0).isoformat(sep=" ")


def parse_time(text: str | None) -> datetime | None:
    """The inverse of :func:`format_time` (also reads the unpadded years older versions wrote)."""
    if not text:
        return None
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        year, rest = text.split("-", 1)
        return datetime.fromisoformat(f"{int(year):04d}-{rest}")


def zone(name: str) -> ZoneInfo:
    """A time zone by its IANA name; an unknown name is a settings error, said once at start."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise InvalidInput(f"unknown time zone {name!r} (an IANA name such as Asia/Shanghai)") from None


def city_now(city: ZoneInfo | None = None) -> datetime:
    """Now as a naive time of the city, to the second: the one clock of every stored time (``received_at`` is
    city time; stamps once taken from the host's clock put Open311's updated_datetime 8 hours before
    requested_datetime on a UTC host)."""
    return datetime.now(city or ZoneInfo(DEFAULT_ZONE)).replace(tzinfo=None, microsecond=0)


def to_local(moment: datetime, city: ZoneInfo) -> datetime:
    """A naive local time of the city: aware times are converted, naive ones are taken as local already."""
    if moment.tzinfo is not None and moment.utcoffset() is not None:
        moment = moment.astimezone(city)
    return moment.replace(tzinfo=None, microsecond=0)


@dataclass(frozen=True)
class TimeWindow:
    """When a case may have come in: from ``earliest`` (a day) to ``ahead`` after now, in the city's zone.

    ``now`` is a parameter for tests; the service reads the clock on every check.
    """

    earliest: date = DEFAULT_EARLIEST
    ahead: timedelta = timedelta(days=1)
    city: ZoneInfo = field(default_factory=lambda: ZoneInfo(DEFAULT_ZONE))

    def latest(self, now: datetime | None = None) -> datetime:
        current = now or datetime.now(self.city).replace(tzinfo=None)
        return current + self.ahead

    def check(self, moment: datetime, what: str = "received_at", now: datetime | None = None) -> datetime:
        """``moment`` in local time if it is plausible; :class:`Implausible` naming the window if not."""
        local = to_local(moment, self.city)
        if local < datetime.combine(self.earliest, time.min):
            raise Implausible(f"{what} {format_time(local)} is before the earliest accepted day {self.earliest}")
        latest = self.latest(now)
        if local > latest:
            raise Implausible(f"{what} {format_time(local)} is in the future (latest accepted {format_time(latest)})")
        return local
