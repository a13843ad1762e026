"""Conformance suites every backend runs, in the spirit of `trio.testing`'s stream checks.

- `check_lock_provider(make, *, ttl=0.5, advance=trio.sleep, prefix=None,
  concurrency=20)` checks a `LockProvider` against rules L1-L8.
- `check_jobs_runtime(make, *, read_back, queue=None, concurrency=10)` checks a
  `JobsRuntime`: acceptance, dedupe by idempotency key, that every `Job` field survives,
  and, for a `BatchJobsRuntime`, the contract of ``enqueue_many``.

Both raise `AssertionError` (a `CheckFailed`) naming the failed check. To run them for
a new backend, write a pytest-trio test that passes a factory of async context
managers (see each function's docstring). On real servers they use real time and random
key prefixes; on in-memory backends they also run under `trio.testing.MockClock` with
autojump, because they wait only through ``advance`` (default `trio.sleep`).
"""

from trio_sched.testing._check import CheckFailed as CheckFailed
from trio_sched.testing._jobs import check_jobs_runtime as check_jobs_runtime
from trio_sched.testing._locks import check_lock_provider as check_lock_provider

__all__ = ["CheckFailed", "check_jobs_runtime", "check_lock_provider"]
