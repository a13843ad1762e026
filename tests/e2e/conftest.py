"""Fixtures for the end-to-end test: the Redis server fixtures of ``tests/redis_backend``
(``redis_url``: env URL, else 127.0.0.1:6379, else a throwaway server, never skipped;
``redis_prefix``: a random prefix whose keys are deleted after the test), imported, not
copied."""

from __future__ import annotations

from redis_backend.conftest import redis_prefix, redis_url

__all__ = ["redis_prefix", "redis_url"]
