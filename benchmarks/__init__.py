"""Benchmarks of trio-sched. Run each as a module from the project root, e.g.
``python -m benchmarks.cron_throughput``; results go to ``benchmarks/results/``
(gitignored). Benchmarks print what they measured; unit tests never assert on timing.
"""
