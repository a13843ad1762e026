"""The data-loss epoch sentinel of a Redis key space (rule R8).

Imported only by the Redis backends, whose scripts embed `EPOCH_LUA` and whose clients
keep an `EpochWatch`. The driver re-checks persistence after a loss (R7, in
`trio_sched._redis_driver`).

Rules (R1-R4 and R7 are the driver's, in `trio_sched._redis_driver`; R5 and R6 in
`trio_sched._redis_common`):
- R8 Data loss is detected by an *epoch* sentinel per key space: a string key, no
  expiry, ``{born}:{lost}:{id}`` (``born``: the server's epoch ms when it was created;
  ``lost``: ``1`` once a client found it replacing one it knew; ``id``: the creating
  client's random id). The backend's scripts read it (`EPOCH_LUA`, one GET) in the same
  atomic step as their work, creating it when missing, and compare it with the one the
  client remembers (`EpochWatch`): a different ``{born}:{id}`` means the server lost
  the key space since (restarted without persistence, flushed, keys deleted). That
  script then changes nothing but the sentinel's ``lost`` flag and answers the new
  epoch; the client logs the loss once (error), counts it and raises `DataLossError`
  with ``detected_at`` = ``born``. A client's first call adopts whatever it finds, so a
  loss before a client's first call, or in the middle of it, is not seen by that
  client. A partial loss (an RDB snapshot or a shorter AOF restored, a failover to a
  lagging replica) keeps the old sentinel: the lock provider sees it only when its
  fencing counter turns out behind a token the client already got (the ``behind``
  argument; it then renews the sentinel, born now), the jobs runtime not at all.
"""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final, final

from trio_sched._errors import ConflictError, DataLossError

__all__ = ["EPOCH_LUA", "Detection", "Epoch", "EpochWatch"]

_log = logging.getLogger("trio_sched.redis")

# R8: the epoch sentinel, checked by a script in the same atomic step as its work.
# `epoch_check(key, remembered, creator, now_ms, behind)` answers the sentinel's value,
# whether it replaced the `remembered` '{born}:{id}' ('' when the client knows none; its
# lost flag is set then), its born ms and whether it is flagged lost. `behind` (optional)
# says the caller found the data older than the client knows it (a rollback): the
# sentinel is then replaced by a new one, born now and flagged lost, and reported
# replaced. For a key holding foreign data it answers false, true and nothing else (GET
# through pcall: another type answers an error instead of stopping the script), and the
# caller changes nothing.
EPOCH_LUA: Final = """
local function epoch_check(key, remembered, creator, now_ms, behind)
  local value = redis.pcall('GET', key)
  if value == false then
    value = string.format('%d:0:%s', now_ms, creator)
    redis.call('SET', key, value)
  elseif type(value) ~= 'string' then
    return false, true
  end
  local born, lost, id = string.match(value, '^(%d+):([01]):(.+)$')
  if not born then
    return false, true
  end
  if remembered ~= '' and remembered ~= born .. ':' .. id then
    if lost == '0' then
      value = born .. ':1:' .. id
      redis.call('SET', key, value)
    end
    return value, true, tonumber(born), true
  end
  if behind then
    value = string.format('%d:1:%s', now_ms, creator)
    redis.call('SET', key, value)
    return value, true, now_ms, true
  end
  return value, false, tonumber(born), lost == '1'
end
"""


@final
@dataclass(frozen=True, slots=True)
class Epoch:
    """A parsed epoch sentinel (R8): `born` in server epoch ms, whether a client found
    it replacing one it knew (`lost`), and its identity ``{born}:{id}``."""

    born: int
    lost: bool
    identity: str

    @property
    def born_at(self) -> datetime:
        return datetime.fromtimestamp(self.born / 1000, UTC)


@final
@dataclass(frozen=True, slots=True)
class Detection:
    """A data loss one call found (R8): the new `epoch`, the identity the call's client
    knew, and whether this call is the first of its client to report that epoch."""

    epoch: Epoch
    knew: str
    first: bool


@final
class EpochWatch:
    """What one client remembers of its key space's epoch sentinel (R8).

    `args` are the two script arguments (the remembered identity, '' for none, and this
    client's creator id), taken before the call; `adopt` and `detect` take the
    sentinel a script answered: the first epoch a client sees is adopted, and so is
    the new one of a detection.
    """

    __slots__ = ("_creator", "_key", "_remembered", "_what", "detections")

    def __init__(self, key: str, what: str) -> None:
        self._key = key
        self._what = what
        self._creator = secrets.token_hex(8)
        self._remembered = ""
        self.detections = 0

    @property
    def key(self) -> str:
        return self._key

    def args(self) -> tuple[str, str]:
        return self._remembered, self._creator

    def parse(self, value: object) -> Epoch:
        """The sentinel a script answered; `ConflictError` for foreign data (false)."""
        if not isinstance(value, str) or value.count(":") < 2:
            raise ConflictError(
                f"{self._what}: the epoch key {self._key!r} holds foreign data "
                "(a key under the prefix holds a value trio-sched did not write)"
            )
        born, lost, ident = value.split(":", 2)
        return Epoch(int(born), lost == "1", f"{born}:{ident}")

    def adopt(self, value: object) -> Epoch:
        """A script found `value` and it replaced nothing: remember it if it is the
        first epoch this client sees."""
        epoch = self.parse(value)
        if not self._remembered:
            self._remembered = epoch.identity
        return epoch

    def detect(self, value: object, knew: str) -> Detection:
        """A script found `value` replacing `knew`, the identity the call sent."""
        epoch = self.parse(value)
        first = epoch.identity != self._remembered  # else a concurrent call reported it
        if first:
            self._remembered = epoch.identity
            self.detections += 1
        return Detection(epoch, knew, first)

    def error(self, detection: Detection, consequence: str, **fields: Any) -> DataLossError:
        """The `DataLossError` of `detection`, logged (error) when it is the first."""
        epoch = detection.epoch
        message = (
            f"{self._what}: the server lost this key space's data: its epoch sentinel "
            f"{self._key!r} is {epoch.identity!r}, born {epoch.born_at.isoformat()} "
            f"(server clock), where this client knew {detection.knew!r}; {consequence}"
        )
        if detection.first:
            _log.error("%s", message)
        return DataLossError(message, detected_at=epoch.born_at, **fields)
