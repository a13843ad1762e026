"""Tests of the Trio runtime (issue 3): Task, Config, _plan, timer, Scheduler, health."""
