"""The time now, and dates as the people using the system see them: Thailand is UTC+7 all year (no daylight
saving)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone


def utcnow() -> datetime:
    """Now, timezone-aware (UTC): every stored and published time."""
    return datetime.now(UTC)


THAILAND = timezone(timedelta(hours=7), "ICT")


def thai_date(moment: datetime) -> date:
    """The calendar date in Thailand at `moment` (an aware datetime)."""
    return moment.astimezone(THAILAND).date()


def today() -> date:
    """Today's date in Thailand: what 'in the future' and 'overdue' are measured against."""
    return thai_date(utcnow())
