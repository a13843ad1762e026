"""The keys of `RedisJobs` (rule RJ1 of the Redis jobs runtime, `trio_sched.jobs.redis`).

Rules:
- RJ1 Keys, all under ``{prefix}:jobs:``: ``data`` (hash: job id -> the job as enqueued,
  JSON with the payload in base64), ``tries`` (hash: job id -> deliveries so far),
  ``dedupe:{idempotency key}`` (string: the job id, expiring after
  ``dedupe_retention``), and per queue ``q:{queue}`` (stream of job ids, one consumer
  group ``group``), ``delayed:{queue}`` (sorted set: job id by due time in epoch ms) and
  ``dead:{queue}`` (stream of dead letters, capped near ``dead_letter_maxlen``). For
  `JobControl` (RJ8): ``leases`` (hash: job id -> the stream entry of its latest
  delivery) and ``ended:{idempotency key}`` (string: ``done``, ``dead`` or
  ``cancelled``, expiring with the dedupe key). Like the
  lock provider, scripts touch several keys: Redis Cluster is not supported.
"""

from __future__ import annotations

from typing import final

from trio_sched._errors import InvalidArgumentError


@final
class JobKeys:
    """The key names under one prefix (RJ1), plus ``epoch``: the sentinel of RJ7. A
    queue name that is not a non-empty str raises `InvalidArgumentError`."""

    __slots__ = ("base", "data", "epoch", "leases", "tries")

    def __init__(self, prefix: str) -> None:
        self.base = f"{prefix}:jobs:"
        self.data = self.base + "data"
        self.tries = self.base + "tries"
        self.epoch = self.base + "epoch"
        self.leases = self.base + "leases"

    def stream(self, queue: str) -> str:
        return f"{self.base}q:{_check_queue(queue)}"

    def delayed(self, queue: str) -> str:
        return f"{self.base}delayed:{_check_queue(queue)}"

    def dead(self, queue: str) -> str:
        return f"{self.base}dead:{_check_queue(queue)}"

    def dedupe(self, key: str) -> str:
        return self.base + f"dedupe:{key}"

    def ended(self, key: str) -> str:
        return self.base + f"ended:{key}"

    def job_keys(self, key: str | None) -> list[str]:
        """The dedupe and ended keys of a job's idempotency `key` (RJ8), or two keys
        that are never written when it has none."""
        if key is None:
            return [self.data, self.data]
        return [self.dedupe(key), self.ended(key)]


def _check_queue(queue: object) -> str:
    if not isinstance(queue, str) or not queue:
        raise InvalidArgumentError(f"queue must be a non-empty str, got {queue!r}")
    return queue
