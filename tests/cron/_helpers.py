"""Small helpers shared by the cron tests (engine-facing; the model is `_reference`)."""

from __future__ import annotations

from datetime import UTC, datetime
from itertools import islice

from trio_sched.cron import Schedule

from . import _reference as ref


def utc(t: datetime) -> datetime:
    return t.astimezone(UTC)


def at(iso: str) -> datetime:
    """An aware datetime from an ISO string with an offset (a fixed-offset tzinfo)."""
    t = datetime.fromisoformat(iso)
    assert t.tzinfo is not None, iso
    return t


def assert_fire_shape(s: Schedule, fire: datetime) -> None:
    """C9: a fire is aware, in the schedule's zone, with the fold its instant implies."""
    assert fire.tzinfo is s.tz, (fire, s.tz)
    canonical = utc(fire).astimezone(s.tz)
    assert (fire.replace(tzinfo=None), fire.fold) == (
        canonical.replace(tzinfo=None),
        canonical.fold,
    ), f"{fire!r} is not the canonical local form {canonical!r}"


def next_n(s: Schedule, t: datetime, n: int) -> list[datetime]:
    return list(islice(s.iter_after(t), n))


def prev_n(s: Schedule, t: datetime, n: int) -> list[datetime]:
    return list(islice(s.iter_before(t), n))


def isos(fires: list[datetime]) -> list[str]:
    return [f.isoformat() for f in fires]


def spec_from_fields(s: Schedule) -> ref.Spec:
    """The model of a parsed schedule, from its `CronField` data only."""
    second, minute, hour, dom, month, dow = s.fields
    return ref.Spec(
        seconds=frozenset(second.values),
        minutes=frozenset(minute.values),
        hours=frozenset(hour.values),
        days=frozenset(dom.values),
        months=frozenset(month.values),
        weekdays=frozenset(dow.values),
        dom_star=dom.star,
        dow_star=dow.star,
        fixed=not (minute.star or hour.star),
        last=dom.last,
        last_weekday=dom.last_weekday,
        last_of=frozenset(dow.last_of),
        nth=frozenset(dow.nth),
    )
