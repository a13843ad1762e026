"""Tests of the pure cron engine `trio_sched.cron` (rules C1-C12)."""
