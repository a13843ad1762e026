"""DST tables (C9, C10, C11): each transition type, with the fires written out.

Transitions used (looked up with zoneinfo; UTC instant of the change, local view):

  Europe/Berlin 2021-03-28 01:00Z   01:59:59+01:00 -> 03:00:00+02:00   (gap 02:00-03:00)
  Europe/Berlin 2021-10-31 01:00Z   02:59:59+02:00 -> 02:00:00+01:00   (02:00-03:00 twice)
  Europe/Riga   2021-03-28 01:00Z   02:59:59+02:00 -> 04:00:00+03:00   (gap 03:00-04:00)
  Europe/Riga   2021-10-31 01:00Z   03:59:59+03:00 -> 03:00:00+02:00   (03:00-04:00 twice)
  Australia/Lord_Howe 2019-10-05 15:30Z  01:59:59+10:30 -> 02:30:00+11:00 (gap 02:00-02:30)
  Australia/Lord_Howe 2021-04-03 15:00Z  01:59:59+11:00 -> 01:30:00+10:30 (01:30-02:00 twice)
  Australia/Lord_Howe 2021-10-02 15:30Z  01:59:59+10:30 -> 02:30:00+11:00 (gap 02:00-02:30)
  America/Havana 2021-03-14 05:00Z  2021-03-13T23:59:59-05:00 -> 2021-03-14T01:00:00-04:00
                                    (gap 00:00-01:00: midnight does not exist that day)
  America/Havana 2021-11-07 05:00Z  00:59:59-04:00 -> 00:00:00-05:00   (00:00-01:00 twice)
  America/Santiago 2021-09-05 04:00Z  2021-09-04T23:59:59-04:00 -> 2021-09-05T01:00:00-03:00
                                    (gap 00:00-01:00 on 2021-09-05)
  America/Santiago 2021-04-04 03:00Z  2021-04-03T23:59:59-03:00 -> 2021-04-03T23:00:00-04:00
                                    (23:00-24:00 of 2021-04-03 twice)
  Pacific/Chatham 2021-09-25 14:00Z  02:44:59+12:45 -> 03:45:00+13:45   (gap 02:45-03:45)
  Pacific/Chatham 2021-04-03 14:00Z  03:44:59+13:45 -> 02:45:00+12:45   (02:45-03:45 twice)

Rule C10 (cronie): a fixed job (minute and hour texts do not start with '*') fires once at
the first instant after a gap that swallowed a matching wall time, and only on the first
pass of a repeated wall time; an interval job follows elapsed time (no fire for a wall
time that does not exist, both passes of a repeated one).
"""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from trio_sched.cron import parse

from . import _reference as ref
from ._helpers import assert_fire_shape, at, isos, next_n, prev_n, utc
from ._strategies import nickname_spec

# (id, zone, expression, start, expected next fires)
DST_TABLE = [
    # (a) spring-forward gap, whole hour: Europe/Berlin 2021-03-28
    (
        "berlin-gap-fixed",
        "Europe/Berlin",
        "30 2 * * *",
        "2021-03-26T12:00:00+01:00",
        ["2021-03-27T02:30:00+01:00", "2021-03-28T03:00:00+02:00", "2021-03-29T02:30:00+02:00"],
    ),
    (
        "berlin-gap-fixed-0",
        "Europe/Berlin",
        "0 2 * * *",
        "2021-03-27T12:00:00+01:00",
        ["2021-03-28T03:00:00+02:00", "2021-03-29T02:00:00+02:00"],
    ),
    (
        "berlin-gap-fixed-merge",
        "Europe/Berlin",
        "0,30 2,3 * * *",
        "2021-03-28T01:00:00+01:00",
        ["2021-03-28T03:00:00+02:00", "2021-03-28T03:30:00+02:00", "2021-03-29T02:00:00+02:00"],
    ),
    (
        "berlin-gap-fixed-seconds",
        "Europe/Berlin",
        "*/20 30 2 * * *",
        "2021-03-28T00:00:00+01:00",
        ["2021-03-28T03:00:00+02:00", "2021-03-29T02:30:00+02:00", "2021-03-29T02:30:20+02:00"],
    ),
    (
        "berlin-gap-interval",
        "Europe/Berlin",
        "*/30 * * * *",
        "2021-03-28T01:00:00+01:00",
        ["2021-03-28T01:30:00+01:00", "2021-03-28T03:00:00+02:00", "2021-03-28T03:30:00+02:00"],
    ),
    (
        "berlin-gap-interval-30",
        "Europe/Berlin",
        "30 * * * *",
        "2021-03-28T01:00:00+01:00",
        ["2021-03-28T01:30:00+01:00", "2021-03-28T03:30:00+02:00"],
    ),
    (
        "berlin-gap-hourly",
        "Europe/Berlin",
        "@hourly",
        "2021-03-28T00:30:00+01:00",
        ["2021-03-28T01:00:00+01:00", "2021-03-28T03:00:00+02:00"],
    ),
    (
        "berlin-gap-minutely",
        "Europe/Berlin",
        "* * * * *",
        "2021-03-28T01:58:00+01:00",
        ["2021-03-28T01:59:00+01:00", "2021-03-28T03:00:00+02:00", "2021-03-28T03:01:00+02:00"],
    ),
    (
        "berlin-gap-interval-hour-2",
        "Europe/Berlin",
        "* 2 * * *",
        "2021-03-28T01:58:00+01:00",
        ["2021-03-29T02:00:00+02:00"],
    ),
    # 2021-03-28T00:00Z = 1616889600 s = 598848 * 2700: multiples of 45 min in real time.
    (
        "berlin-gap-every",
        "Europe/Berlin",
        "@every 45m",
        "2021-03-28T01:00:00+01:00",
        ["2021-03-28T01:45:00+01:00", "2021-03-28T03:30:00+02:00", "2021-03-28T04:15:00+02:00"],
    ),
    # (b) fall-back fold, whole hour: Europe/Berlin 2021-10-31
    (
        "berlin-fold-fixed",
        "Europe/Berlin",
        "30 2 * * *",
        "2021-10-30T12:00:00+02:00",
        ["2021-10-31T02:30:00+02:00", "2021-11-01T02:30:00+01:00"],
    ),
    (
        "berlin-fold-fixed-hours",
        "Europe/Berlin",
        "0 0-23 * * *",
        "2021-10-31T00:30:00+02:00",
        ["2021-10-31T01:00:00+02:00", "2021-10-31T02:00:00+02:00", "2021-10-31T03:00:00+01:00"],
    ),
    (
        "berlin-fold-interval",
        "Europe/Berlin",
        "*/30 * * * *",
        "2021-10-31T01:45:00+02:00",
        [
            "2021-10-31T02:00:00+02:00",
            "2021-10-31T02:30:00+02:00",
            "2021-10-31T02:00:00+01:00",
            "2021-10-31T02:30:00+01:00",
            "2021-10-31T03:00:00+01:00",
        ],
    ),
    (
        "berlin-fold-hourly",
        "Europe/Berlin",
        "0 * * * *",
        "2021-10-31T00:30:00+02:00",
        [
            "2021-10-31T01:00:00+02:00",
            "2021-10-31T02:00:00+02:00",
            "2021-10-31T02:00:00+01:00",
            "2021-10-31T03:00:00+01:00",
        ],
    ),
    (
        "berlin-fold-interval-hour-2",
        "Europe/Berlin",
        "* 2 * * *",
        "2021-10-31T02:58:00+02:00",
        ["2021-10-31T02:59:00+02:00", "2021-10-31T02:00:00+01:00", "2021-10-31T02:01:00+01:00"],
    ),
    (
        "berlin-fold-fixed-seconds",
        "Europe/Berlin",
        "0,30 30 2 * * *",
        "2021-10-31T02:00:00+02:00",
        ["2021-10-31T02:30:00+02:00", "2021-10-31T02:30:30+02:00", "2021-11-01T02:30:00+01:00"],
    ),
    # starts inside the second pass: the first pass is already over
    (
        "berlin-fold-start-2nd-fixed",
        "Europe/Berlin",
        "30 2 * * *",
        "2021-10-31T02:10:00+01:00",
        ["2021-11-01T02:30:00+01:00"],
    ),
    (
        "berlin-fold-start-2nd-interval",
        "Europe/Berlin",
        "*/30 * * * *",
        "2021-10-31T02:10:00+01:00",
        ["2021-10-31T02:30:00+01:00", "2021-10-31T03:00:00+01:00"],
    ),
    (
        "berlin-fold-every",
        "Europe/Berlin",
        "@every 1h",
        "2021-10-31T01:30:00+02:00",
        ["2021-10-31T02:00:00+02:00", "2021-10-31T02:00:00+01:00", "2021-10-31T03:00:00+01:00"],
    ),
    # (c) 30-minute shifts: Australia/Lord_Howe
    (
        "lhi-gap-fixed",
        "Australia/Lord_Howe",
        "15 2 * * *",
        "2021-10-02T12:00:00+10:30",
        ["2021-10-03T02:30:00+11:00", "2021-10-04T02:15:00+11:00"],
    ),
    (
        "lhi-gap-fixed-merge",
        "Australia/Lord_Howe",
        "0,15 2 * * *",
        "2021-10-02T12:00:00+10:30",
        ["2021-10-03T02:30:00+11:00", "2021-10-04T02:00:00+11:00"],
    ),
    (
        "lhi-gap-fixed-exists",
        "Australia/Lord_Howe",
        "0,30 2 * * *",
        "2021-10-03T01:00:00+10:30",
        ["2021-10-03T02:30:00+11:00", "2021-10-04T02:00:00+11:00"],
    ),
    (
        "lhi-gap-interval",
        "Australia/Lord_Howe",
        "*/15 * * * *",
        "2021-10-03T01:40:00+10:30",
        ["2021-10-03T01:45:00+10:30", "2021-10-03T02:30:00+11:00", "2021-10-03T02:45:00+11:00"],
    ),
    # croniter 7.0's own Lord_Howe vectors (croniter/tests/test_croniter.py, 2019-10-06)
    (
        "lhi-croniter-hourly",
        "Australia/Lord_Howe",
        "0 * * * *",
        "2019-10-06T00:00:00+10:30",
        [
            "2019-10-06T01:00:00+10:30",
            "2019-10-06T03:00:00+11:00",
            "2019-10-06T04:00:00+11:00",
            "2019-10-06T05:00:00+11:00",
        ],
    ),
    (
        "lhi-croniter-from-0143",
        "Australia/Lord_Howe",
        "0 * * * *",
        "2019-10-06T01:43:00+10:30",
        ["2019-10-06T03:00:00+11:00"],
    ),
    (
        "lhi-croniter-from-0103",
        "Australia/Lord_Howe",
        "0 * * * *",
        "2019-10-06T01:03:00+10:30",
        ["2019-10-06T03:00:00+11:00"],
    ),
    (
        "lhi-croniter-half-hours",
        "Australia/Lord_Howe",
        "0,30 * * * *",
        "2019-10-06T01:45:00+10:30",
        ["2019-10-06T02:30:00+11:00", "2019-10-06T03:00:00+11:00"],
    ),
    (
        "lhi-fold-fixed",
        "Australia/Lord_Howe",
        "45 1 * * *",
        "2021-04-03T12:00:00+11:00",
        ["2021-04-04T01:45:00+11:00", "2021-04-05T01:45:00+10:30"],
    ),
    (
        "lhi-fold-fixed-30",
        "Australia/Lord_Howe",
        "30 1 * * *",
        "2021-04-03T12:00:00+11:00",
        ["2021-04-04T01:30:00+11:00", "2021-04-05T01:30:00+10:30"],
    ),
    (
        "lhi-fold-interval",
        "Australia/Lord_Howe",
        "*/15 * * * *",
        "2021-04-04T01:10:00+11:00",
        [
            "2021-04-04T01:15:00+11:00",
            "2021-04-04T01:30:00+11:00",
            "2021-04-04T01:45:00+11:00",
            "2021-04-04T01:30:00+10:30",
            "2021-04-04T01:45:00+10:30",
            "2021-04-04T02:00:00+10:30",
        ],
    ),
    (
        "lhi-fold-hourly",
        "Australia/Lord_Howe",
        "0 * * * *",
        "2021-04-04T00:30:00+11:00",
        ["2021-04-04T01:00:00+11:00", "2021-04-04T02:00:00+10:30"],
    ),
    (
        "lhi-fold-interval-30",
        "Australia/Lord_Howe",
        "30 * * * *",
        "2021-04-04T00:45:00+11:00",
        ["2021-04-04T01:30:00+11:00", "2021-04-04T01:30:00+10:30", "2021-04-04T02:30:00+10:30"],
    ),
    # :45 offsets: Pacific/Chatham
    (
        "chatham-gap-fixed",
        "Pacific/Chatham",
        "0 3 * * *",
        "2021-09-25T12:00:00+12:45",
        ["2021-09-26T03:45:00+13:45", "2021-09-27T03:00:00+13:45"],
    ),
    (
        "chatham-gap-fixed-split",
        "Pacific/Chatham",
        "0,50 3 * * *",
        "2021-09-25T12:00:00+12:45",
        ["2021-09-26T03:45:00+13:45", "2021-09-26T03:50:00+13:45", "2021-09-27T03:00:00+13:45"],
    ),
    (
        "chatham-gap-interval",
        "Pacific/Chatham",
        "*/30 * * * *",
        "2021-09-26T02:20:00+12:45",
        ["2021-09-26T02:30:00+12:45", "2021-09-26T04:00:00+13:45"],
    ),
    (
        "chatham-fold-fixed",
        "Pacific/Chatham",
        "0 3 * * *",
        "2021-04-03T12:00:00+13:45",
        ["2021-04-04T03:00:00+13:45", "2021-04-05T03:00:00+12:45"],
    ),
    (
        "chatham-fold-interval",
        "Pacific/Chatham",
        "0 * * * *",
        "2021-04-04T02:30:00+13:45",
        ["2021-04-04T03:00:00+13:45", "2021-04-04T03:00:00+12:45", "2021-04-04T04:00:00+12:45"],
    ),
    # (d) transitions at midnight: America/Havana
    (
        "havana-gap-midnight",
        "America/Havana",
        "0 0 * * *",
        "2021-03-13T12:00:00-05:00",
        ["2021-03-14T01:00:00-04:00", "2021-03-15T00:00:00-04:00"],
    ),
    (
        "havana-gap-daily",
        "America/Havana",
        "@daily",
        "2021-03-13T12:00:00-05:00",
        ["2021-03-14T01:00:00-04:00", "2021-03-15T00:00:00-04:00"],
    ),
    (
        "havana-gap-0030",
        "America/Havana",
        "30 0 * * *",
        "2021-03-13T12:00:00-05:00",
        ["2021-03-14T01:00:00-04:00", "2021-03-15T00:30:00-04:00"],
    ),
    (
        "havana-gap-date",
        "America/Havana",
        "0 0 14 3 *",
        "2021-03-01T00:00:00-05:00",
        ["2021-03-14T01:00:00-04:00", "2022-03-14T00:00:00-04:00"],
    ),
    (
        "havana-gap-sunday",
        "America/Havana",
        "0 0 * * SUN",
        "2021-03-10T00:00:00-05:00",
        ["2021-03-14T01:00:00-04:00", "2021-03-21T00:00:00-04:00"],
    ),
    (
        "havana-gap-hourly",
        "America/Havana",
        "0 * * * *",
        "2021-03-13T23:30:00-05:00",
        ["2021-03-14T01:00:00-04:00", "2021-03-14T02:00:00-04:00"],
    ),
    (
        "havana-fold-midnight",
        "America/Havana",
        "0 0 * * *",
        "2021-11-06T12:00:00-04:00",
        ["2021-11-07T00:00:00-04:00", "2021-11-08T00:00:00-05:00"],
    ),
    (
        "havana-fold-interval",
        "America/Havana",
        "*/30 * * * *",
        "2021-11-06T23:45:00-04:00",
        [
            "2021-11-07T00:00:00-04:00",
            "2021-11-07T00:30:00-04:00",
            "2021-11-07T00:00:00-05:00",
            "2021-11-07T00:30:00-05:00",
            "2021-11-07T01:00:00-05:00",
        ],
    ),
    (
        "havana-fold-0030",
        "America/Havana",
        "30 0 * * *",
        "2021-11-06T12:00:00-04:00",
        ["2021-11-07T00:30:00-04:00", "2021-11-08T00:30:00-05:00"],
    ),
    # (d) America/Santiago
    (
        "santiago-gap-midnight",
        "America/Santiago",
        "0 0 * * *",
        "2021-09-04T12:00:00-04:00",
        ["2021-09-05T01:00:00-03:00", "2021-09-06T00:00:00-03:00"],
    ),
    (
        "santiago-gap-date",
        "America/Santiago",
        "0 0 5 9 *",
        "2021-09-01T00:00:00-04:00",
        ["2021-09-05T01:00:00-03:00"],
    ),
    (
        "santiago-gap-interval",
        "America/Santiago",
        "*/30 * * * *",
        "2021-09-04T23:15:00-04:00",
        ["2021-09-04T23:30:00-04:00", "2021-09-05T01:00:00-03:00", "2021-09-05T01:30:00-03:00"],
    ),
    (
        "santiago-fold-2300",
        "America/Santiago",
        "0 23 * * *",
        "2021-04-03T12:00:00-03:00",
        ["2021-04-03T23:00:00-03:00", "2021-04-04T23:00:00-04:00"],
    ),
    (
        "santiago-fold-midnight",
        "America/Santiago",
        "0 0 * * *",
        "2021-04-03T12:00:00-03:00",
        ["2021-04-04T00:00:00-04:00", "2021-04-05T00:00:00-04:00"],
    ),
    (
        "santiago-fold-interval",
        "America/Santiago",
        "*/30 * * * *",
        "2021-04-03T22:50:00-03:00",
        [
            "2021-04-03T23:00:00-03:00",
            "2021-04-03T23:30:00-03:00",
            "2021-04-03T23:00:00-04:00",
            "2021-04-03T23:30:00-04:00",
            "2021-04-04T00:00:00-04:00",
        ],
    ),
]

# cronsim 2.8's published DST vectors (cronsim tests/test_cronsim.py, TestDstTransitions,
# Europe/Riga 2021), all consistent with C10. (id, expression, start wall time, fires)
RIGA = "Europe/Riga"
RIGA_TABLE = [
    ("001_every_hour_mar", "0 * * * *", (2021, 3, 28, 1, 30),
     ["2021-03-28T02:00:00+02:00", "2021-03-28T04:00:00+03:00"]),
    ("001_every_hour_oct", "0 * * * *", (2021, 10, 31, 1, 30),
     ["2021-10-31T02:00:00+03:00", "2021-10-31T03:00:00+03:00", "2021-10-31T03:00:00+02:00",
      "2021-10-31T04:00:00+02:00"]),
    ("002_every_30_minutes_mar", "*/30 * * * *", (2021, 3, 28, 2, 10),
     ["2021-03-28T02:30:00+02:00", "2021-03-28T04:00:00+03:00", "2021-03-28T04:30:00+03:00"]),
    ("002_every_30_minutes_oct", "*/30 * * * *", (2021, 10, 31, 2, 10),
     ["2021-10-31T02:30:00+03:00", "2021-10-31T03:00:00+03:00", "2021-10-31T03:30:00+03:00",
      "2021-10-31T03:00:00+02:00", "2021-10-31T03:30:00+02:00", "2021-10-31T04:00:00+02:00"]),
    ("003_every_15_minutes_mar", "*/15 * * * *", (2021, 3, 28, 2, 40),
     ["2021-03-28T02:45:00+02:00", "2021-03-28T04:00:00+03:00"]),
    ("003_every_15_minutes_oct", "*/15 * * * *", (2021, 10, 31, 2, 40),
     ["2021-10-31T02:45:00+03:00", "2021-10-31T03:00:00+03:00", "2021-10-31T03:15:00+03:00",
      "2021-10-31T03:30:00+03:00", "2021-10-31T03:45:00+03:00", "2021-10-31T03:00:00+02:00",
      "2021-10-31T03:15:00+02:00", "2021-10-31T03:30:00+02:00", "2021-10-31T03:45:00+02:00",
      "2021-10-31T04:00:00+02:00"]),
    ("004_every_2_hours_mar", "0 */2 * * *", (2021, 3, 28, 1, 30),
     ["2021-03-28T02:00:00+02:00", "2021-03-28T04:00:00+03:00", "2021-03-28T06:00:00+03:00"]),
    ("004_every_2_hours_oct", "0 */2 * * *", (2021, 10, 31, 1, 30),
     ["2021-10-31T02:00:00+03:00", "2021-10-31T04:00:00+02:00", "2021-10-31T06:00:00+02:00"]),
    ("005_30_past_every_2_hours_mar", "30 */2 * * *", (2021, 3, 28, 1, 30),
     ["2021-03-28T02:30:00+02:00", "2021-03-28T04:30:00+03:00"]),
    ("005_30_past_every_2_hours_oct", "30 */2 * * *", (2021, 10, 31, 1, 30),
     ["2021-10-31T02:30:00+03:00", "2021-10-31T04:30:00+02:00"]),
    ("006_every_3_hours_oct", "0 */3 * * *", (2021, 10, 31, 1, 30),
     ["2021-10-31T03:00:00+03:00", "2021-10-31T03:00:00+02:00", "2021-10-31T06:00:00+02:00"]),
    ("008_at_1_2_3_4_5_mar", "0 1,2,3,4,5 * * *", (2021, 3, 28, 1, 30),
     ["2021-03-28T02:00:00+02:00", "2021-03-28T04:00:00+03:00", "2021-03-28T05:00:00+03:00"]),
    ("008_at_1_2_3_4_5_oct", "0 1,2,3,4,5 * * *", (2021, 10, 31, 1, 30),
     ["2021-10-31T02:00:00+03:00", "2021-10-31T03:00:00+03:00", "2021-10-31T04:00:00+02:00"]),
    ("009_30_past_1_2_3_4_5_mar", "30 1,2,3,4,5 * * *", (2021, 3, 28, 1, 30),
     ["2021-03-28T02:30:00+02:00", "2021-03-28T04:00:00+03:00", "2021-03-28T04:30:00+03:00"]),
    ("009_30_past_1_2_3_4_5_oct", "30 1,2,3,4,5 * * *", (2021, 10, 31, 1, 30),
     ["2021-10-31T02:30:00+03:00", "2021-10-31T03:30:00+03:00", "2021-10-31T04:30:00+02:00"]),
    ("010_at_2_mar", "0 2 * * *", (2021, 3, 28, 1, 30),
     ["2021-03-28T02:00:00+02:00", "2021-03-29T02:00:00+03:00"]),
    ("010_at_2_oct", "0 2 * * *", (2021, 10, 31, 1, 30),
     ["2021-10-31T02:00:00+03:00", "2021-11-01T02:00:00+02:00"]),
    ("011_at_3_mar", "0 3 * * *", (2021, 3, 27, 1, 30),
     ["2021-03-27T03:00:00+02:00", "2021-03-28T04:00:00+03:00", "2021-03-29T03:00:00+03:00"]),
    ("011_at_3_oct", "0 3 * * *", (2021, 10, 31, 1, 30),
     ["2021-10-31T03:00:00+03:00", "2021-11-01T03:00:00+02:00"]),
    ("012_at_4_mar", "0 4 * * *", (2021, 3, 27, 1, 30),
     ["2021-03-27T04:00:00+02:00", "2021-03-28T04:00:00+03:00", "2021-03-29T04:00:00+03:00"]),
    ("012_at_4_oct", "0 4 * * *", (2021, 10, 30, 1, 30),
     ["2021-10-30T04:00:00+03:00", "2021-10-31T04:00:00+02:00", "2021-11-01T04:00:00+02:00"]),
    ("014_every_hour_enumerated_mar",
     "0 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23 * * *", (2021, 3, 28, 1, 30),
     ["2021-03-28T02:00:00+02:00", "2021-03-28T04:00:00+03:00", "2021-03-28T05:00:00+03:00"]),
    ("014_every_hour_enumerated_oct",
     "0 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23 * * *", (2021, 10, 31, 1, 30),
     ["2021-10-31T02:00:00+03:00", "2021-10-31T03:00:00+03:00", "2021-10-31T04:00:00+02:00"]),
    ("015_every_other_hour_enumerated_mar", "0 1,3,5,7,9,11,13,15,17,19,21,23 * * *",
     (2021, 3, 28, 0, 30),
     ["2021-03-28T01:00:00+02:00", "2021-03-28T04:00:00+03:00", "2021-03-28T05:00:00+03:00"]),
    ("015_every_other_hour_enumerated_oct", "0 1,3,5,7,9,11,13,15,17,19,21,23 * * *",
     (2021, 10, 31, 0, 30),
     ["2021-10-31T01:00:00+03:00", "2021-10-31T03:00:00+03:00", "2021-10-31T05:00:00+02:00"]),
    ("016_at_1_to_5_mar", "0 1-5 * * *", (2021, 3, 28, 1, 30),
     ["2021-03-28T02:00:00+02:00", "2021-03-28T04:00:00+03:00", "2021-03-28T05:00:00+03:00"]),
    ("016_at_1_to_5_oct", "0 1-5 * * *", (2021, 10, 31, 1, 30),
     ["2021-10-31T02:00:00+03:00", "2021-10-31T03:00:00+03:00", "2021-10-31T04:00:00+02:00"]),
    ("at_3_15_mar", "15 3 * * *", (2021, 3, 27, 0, 0),
     ["2021-03-27T03:15:00+02:00", "2021-03-28T04:00:00+03:00", "2021-03-29T03:15:00+03:00"]),
    ("at_3_15_oct", "15 3 * * *", (2021, 10, 30, 0, 0),
     ["2021-10-30T03:15:00+03:00", "2021-10-31T03:15:00+03:00", "2021-11-01T03:15:00+02:00"]),
    ("every_minute_mar", "* * * * *", (2021, 3, 28, 2, 58),
     ["2021-03-28T02:59:00+02:00", "2021-03-28T04:00:00+03:00"]),
    ("every_minute_oct", "* * * * *", (2021, 10, 31, 3, 58),
     ["2021-10-31T03:59:00+03:00", "2021-10-31T03:00:00+02:00", "2021-10-31T03:01:00+02:00"]),
    ("every_minute_from_1_to_6_mar", "* 1-6 * * *", (2021, 3, 28, 2, 58),
     ["2021-03-28T02:59:00+02:00", "2021-03-28T04:00:00+03:00"]),
    ("every_minute_from_1_to_6_oct", "* 1-6 * * *", (2021, 10, 31, 3, 58),
     ["2021-10-31T03:59:00+03:00", "2021-10-31T03:00:00+02:00", "2021-10-31T03:01:00+02:00"]),
]  # fmt: skip


def _check_sequence(zone: str, expr: str, start: datetime, expected: list[str]) -> None:
    s = parse(expr, tz=zone)
    fires = next_n(s, start, len(expected))
    assert isos(fires) == expected
    for fire in fires:
        assert_fire_shape(s, fire)
    # C11 on every fire: next_after/prev_before are exact inverses.
    assert utc(s.prev_before(fires[0])) <= utc(start) < utc(fires[0])
    for earlier, later in itertools.pairwise(fires):
        assert utc(s.next_after(earlier)) == utc(later)
        assert utc(s.prev_before(later)) == utc(earlier)
    # Backward iteration gives the same fires, newest first.
    assert isos(prev_n(s, fires[-1], len(fires) - 1)) == expected[-2::-1]


@pytest.mark.parametrize(
    ("zone", "expr", "start", "expected"),
    [pytest.param(z, e, s, x, id=i) for i, z, e, s, x in DST_TABLE],
)
def test_dst_table(zone: str, expr: str, start: str, expected: list[str]) -> None:
    _check_sequence(zone, expr, at(start), expected)


@pytest.mark.parametrize(
    ("expr", "wall", "expected"), [pytest.param(e, w, x, id=i) for i, e, w, x in RIGA_TABLE]
)
def test_cronsim_riga_vectors(expr: str, wall: tuple[int, ...], expected: list[str]) -> None:
    start = datetime(*wall, tzinfo=ZoneInfo(RIGA))  # type: ignore[misc]
    _check_sequence(RIGA, expr, start, expected)


def test_lord_howe_croniter_prev_vector() -> None:
    # croniter 7.0: get_prev from 03:00+11:00 is 01:00+10:30 (02:00 never existed).
    s = parse("0 * * * *", tz="Australia/Lord_Howe")
    prev = s.prev_before(at("2019-10-06T03:00:00+11:00"))
    assert prev.isoformat() == "2019-10-06T01:00:00+10:30"


def test_starts_given_as_nonexistent_or_repeated_wall_times() -> None:
    # A start is an instant: a wall time in a gap or a fold means what zoneinfo says
    # (fold=0: the offset before the change; fold=1: the one after).
    berlin = ZoneInfo("Europe/Berlin")
    s = parse("*/30 * * * *", tz="Europe/Berlin")
    # 02:15 fold=0 in the gap = 01:15 UTC = 03:15+02:00
    assert s.next_after(datetime(2021, 3, 28, 2, 15, tzinfo=berlin)).isoformat() == (
        "2021-03-28T03:30:00+02:00"
    )
    # 02:15 fold=1 in the gap = 00:15 UTC = 01:15+01:00
    assert s.next_after(datetime(2021, 3, 28, 2, 15, fold=1, tzinfo=berlin)).isoformat() == (
        "2021-03-28T01:30:00+01:00"
    )
    # 02:15 fold=1 in the fold is the second pass
    assert s.next_after(datetime(2021, 10, 31, 2, 15, fold=1, tzinfo=berlin)).isoformat() == (
        "2021-10-31T02:30:00+01:00"
    )
    assert s.prev_before(datetime(2021, 10, 31, 2, 15, fold=1, tzinfo=berlin)).isoformat() == (
        "2021-10-31T02:00:00+01:00"
    )
    fixed = parse("30 2 * * *", tz="Europe/Berlin")
    assert fixed.prev_before(datetime(2021, 10, 31, 2, 15, fold=1, tzinfo=berlin)).isoformat() == (
        "2021-10-31T02:30:00+02:00"
    )


# ------------------------------------------------------------------ whole DST days

# Every transition of the table above, as (zone, local date of the change).
DST_DAYS = [
    ("Europe/Berlin", (2021, 3, 28)),
    ("Europe/Berlin", (2021, 10, 31)),
    ("Europe/Riga", (2021, 3, 28)),
    ("Europe/Riga", (2021, 10, 31)),
    ("Australia/Lord_Howe", (2021, 4, 4)),
    ("Australia/Lord_Howe", (2021, 10, 3)),
    ("America/Havana", (2021, 3, 14)),
    ("America/Havana", (2021, 11, 7)),
    ("America/Santiago", (2021, 4, 3)),
    ("America/Santiago", (2021, 9, 5)),
    ("Pacific/Chatham", (2021, 4, 4)),
    ("Pacific/Chatham", (2021, 9, 26)),
    ("America/New_York", (2021, 3, 14)),
    ("America/New_York", (2021, 11, 7)),
    ("Australia/Sydney", (2021, 4, 4)),
    ("Australia/Sydney", (2021, 10, 3)),
]
DAY_EXPRS = [
    "0 0 * * *",
    "30 0 * * *",
    "0 1-3 * * *",
    "15,45 2 * * *",
    "0 */2 * * *",
    "*/15 * * * *",
    "30 * * * *",
    "0 23 * * *",
    "*/20 45 2,3 * * *",
    "@hourly",
]


def _spec_of(expr: str) -> ref.Spec:
    """The model of the few plain expressions of DAY_EXPRS (no names, no extensions)."""
    if expr == "@hourly":
        return nickname_spec(("0", "*", "*", "*", "*"))
    texts = expr.split()
    if len(texts) == 5:
        texts = ["0", *texts]
    bounds = [(0, 59), (0, 59), (0, 23), (1, 31), (1, 12), (0, 6)]

    def values(text: str, lo: int, hi: int) -> frozenset[int]:
        out: set[int] = set()
        for item in text.split(","):
            rng, _, step = item.partition("/")
            if rng == "*":
                a, b = lo, hi
            elif "-" in rng:
                a, b = (int(x) for x in rng.split("-"))
            else:
                a = b = int(rng)
            out.update(range(a, b + 1, int(step or 1)))
        return frozenset(out)

    sets = [values(t, lo, hi) for t, (lo, hi) in zip(texts, bounds, strict=True)]
    return ref.Spec(
        *sets,
        dom_star=texts[3].startswith("*"),
        dow_star=texts[5].startswith("*"),
        fixed=not (texts[1].startswith("*") or texts[2].startswith("*")),
    )


@pytest.mark.parametrize("expr", DAY_EXPRS)
@pytest.mark.parametrize(("zone", "day"), DST_DAYS)
def test_forward_and_backward_agree_over_dst_days(
    zone: str, day: tuple[int, int, int], expr: str
) -> None:
    tz = ZoneInfo(zone)
    # Two local days around the change, as instants.
    a = datetime(*day, tzinfo=tz).astimezone(UTC) - timedelta(hours=12)
    b = a + timedelta(hours=48)
    s = parse(expr, tz=zone)
    forward = list(itertools.takewhile(lambda f: utc(f) < b, s.iter_after(a)))
    backward = list(itertools.takewhile(lambda f: utc(f) > a, s.iter_before(b)))
    assert [utc(f) for f in forward] == [utc(f) for f in reversed(backward)]
    for fire in forward:
        assert_fire_shape(s, fire)
    # ... and both equal the independent model: by enumeration over the two days, and
    # by a brute-force scan of every minute within three hours of the change.
    spec = _spec_of(expr)
    assert [utc(f) for f in forward] == ref.fires_between(spec, tz, a, b)
    (change,) = ref.transitions(tz, a, b)
    near_a, near_b = change.at - timedelta(hours=3), change.at + timedelta(hours=3)
    near = [utc(f) for f in forward if near_a < utc(f) < near_b]
    assert ref.scan_fires(spec, tz, near_a, near_b) == near
