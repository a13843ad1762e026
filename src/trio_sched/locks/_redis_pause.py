"""The pause records of `RedisLockProvider` (rule L9 of `trio_sched.locks._protocol`):
its `PauseStore` calls, the script that stores records, the pause check the batch script
of `trio_sched.locks._redis_scripts` runs and the records' format.

`RedisLockProvider` keeps one `RedisPauses` on its driver and hands ``set_paused`` and
``get_paused`` to it; the pause check inside ``acquire_batch`` is `PAUSED_LUA`, and
`decode_paused` reads the records the batch answers with. The input checks shared by
every `PauseStore` are in `trio_sched.locks._pause`.

Rules (of the lock provider `trio_sched.locks.redis`, numbered with its RD1-RD9):
- RD10 Pause records (L9) live in the hash ``{prefix}:paused``: field the watermark
  name, value the JSON array ``[since, by, reason]`` (``since`` in epoch milliseconds,
  ``reason`` a string or ``null``: ``[1767225600000,"host-1:4711","maintenance"]``).
  They have no TTL. ``set_paused`` is one script (HSET, or HDEL for a resume; the hash
  goes when its last field does), ``get_paused`` one HMGET. The batch script reads the
  hash only when it exists (one EXISTS per batch, so a key space with no paused task
  pays nothing more), then one HGET per request with a watermark, before every other
  check; the key of a paused request is never touched. A value that is not such an
  array (foreign data) is no record: that name is not paused, for the batch script and
  ``get_paused`` alike. A data loss (R8, RD9) takes the pause records with it: the
  sentinel does not guard them, and paused tasks run again until they are paused anew.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Final, final

import redis
import trio

from trio_sched._errors import SchedulerError
from trio_sched._redis_driver import RedisDriver, RedisScript
from trio_sched.locks._pause import check_names, check_states, from_epoch_ms, to_epoch_ms
from trio_sched.locks._protocol import Paused

__all__ = ["PAUSED_LUA", "SET_PAUSED", "RedisPauses", "decode_paused", "encode_paused"]

# RD10: the pause record stored for a watermark name, as stored, or nothing when the
# name has none or its value is no record (foreign data: HGET through pcall, the JSON
# decoded through pcall and its shape checked, as `decode_paused` reads it).
PAUSED_LUA: Final = """
local function paused(hash, name)
  local value = redis.pcall('HGET', hash, name)
  if type(value) ~= 'string' then
    return nil
  end
  local ok, r = pcall(cjson.decode, value)
  if ok and type(r) == 'table' and #r == 3 and type(r[1]) == 'number'
      and r[1] == math.floor(r[1]) and type(r[2]) == 'string' and r[2] ~= ''
      and (r[3] == cjson.null or type(r[3]) == 'string') then
    return value
  end
  return nil
end
"""

# KEYS: pause hash. ARGV: name, record pairs (RD10); an empty record deletes the name's.
SET_PAUSED: Final = RedisScript(
    """
for i = 1, #ARGV, 2 do
  if ARGV[i + 1] == '' then
    redis.call('HDEL', KEYS[1], ARGV[i])
  else
    redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1])
  end
end
return 0
"""
)


@final
class RedisPauses:
    """The `PauseStore` calls of one `RedisLockProvider` (RD10): its driver and its pause
    hash ``key``."""

    __slots__ = ("_driver", "_key")

    def __init__(self, driver: RedisDriver, key: str) -> None:
        self._driver = driver
        self._key = key

    async def set_paused(self, states: Mapping[str, Paused | None]) -> None:
        """`RedisLockProvider.set_paused`: one script (RD10), none for no states."""
        args: list[str] = []
        for name, state in check_states(states).items():
            args += (name, "" if state is None else encode_paused(state))
        if not args:
            await self._checkpoint_open()
            return

        def run(client: redis.Redis) -> object:
            return SET_PAUSED.run(self._driver, client, [self._key], args)

        await self._driver.call(run)

    async def get_paused(self, names: Sequence[str]) -> dict[str, Paused]:
        """`RedisLockProvider.get_paused`: one HMGET (RD10), none for no names."""
        wanted = check_names(names)
        if not wanted:
            await self._checkpoint_open()
            return {}

        def run(client: redis.Redis) -> object:
            self._driver.count_round_trip()
            return client.hmget(self._key, wanted)

        values = await self._driver.call(run)
        if not isinstance(values, list) or len(values) != len(wanted):
            raise SchedulerError(f"unexpected HMGET reply from {self._driver.url}: {values!r}")
        records = {name: decode_paused(value) for name, value in zip(wanted, values, strict=True)}
        return {name: record for name, record in records.items() if record is not None}

    async def _checkpoint_open(self) -> None:
        await trio.lowlevel.checkpoint()
        self._driver.check_open()


def encode_paused(record: Paused) -> str:
    """A checked record as the pause hash stores it (RD10): ``[since ms, by, reason]``."""
    return json.dumps([to_epoch_ms(record.since), record.by, record.reason], separators=(",", ":"))


def decode_paused(value: object) -> Paused | None:
    """A stored pause record (RD10), or ``None`` for a value that is not one."""
    if not isinstance(value, str):
        return None
    try:
        fields = json.loads(value)
    except ValueError:
        return None
    if not isinstance(fields, list) or len(fields) != 3:
        return None
    since, by, reason = fields
    if isinstance(since, float) and since.is_integer():
        since = int(since)  # JSON numbers do not tell 1000 from 1e3; the script neither
    if (
        isinstance(since, bool)
        or not isinstance(since, int)
        or not isinstance(by, str)
        or not by
        or not (reason is None or isinstance(reason, str))
    ):
        return None
    try:
        return Paused(from_epoch_ms(since), by, reason)
    except OverflowError:
        return None
