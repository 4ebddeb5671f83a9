"""Whether a day's data is complete: the stream's arrival watermark past the day's end plus
its allowed lateness.

A record of day D arrives at the latest at D+1 00:00 + `allowed_lateness_hours`
(streams.yaml). The day is complete once the cleaning ledger has committed an object that
arrived at or after that hour. The ledger, not the wall clock, decides, so rebuilding or
backfilling a past day gives the same answer whenever it runs, and a stream that stalls
leaves its days incomplete instead of judging them on half the data. An hour the ledger
skipped (a failed run) is cleaned later by reconciliation, and the days its records
belong to are rebuilt then.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

from lake.ledger import has_manifest_from
from lake.storage import Storage


def completion_hour(day: date, allowed_lateness_hours: int) -> datetime:
    """The first arrival hour whose data proves `day` complete."""
    day_end = datetime.combine(day + timedelta(days=1), time(), tzinfo=UTC)
    return day_end + timedelta(hours=allowed_lateness_hours)


def is_day_complete(lake: Storage, stream: str, day: date, allowed_lateness_hours: int) -> bool:
    """Whether the ledger holds an object of `stream` that arrived in the completion hour
    of `day` or later."""
    return has_manifest_from(lake, stream, completion_hour(day, allowed_lateness_hours))


def days_completed(after: datetime, through: datetime, allowed_lateness_hours: int) -> list[date]:
    """The days an arrival watermark moving from `after` to `through` makes complete (their
    completion hour is in (after, through]), oldest first; at most a year of them."""
    lateness = timedelta(hours=allowed_lateness_hours)
    day = (through - lateness).date() - timedelta(days=1)
    days: list[date] = []
    while completion_hour(day, allowed_lateness_hours) > after and len(days) < 366:
        days.append(day)
        day -= timedelta(days=1)
    return days[::-1]
