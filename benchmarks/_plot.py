"""The suite's plot: lateness distributions per scenario, ours vs APScheduler vs floor.

One panel per burst size (tasks due together); in each, one box per implementation
(trio-sched on each lock backend and alone, each with a plain ``enqueue`` runtime and an
``enqueue_many`` runtime ("many"), APScheduler 4 with and without running its jobs, the
``trio.sleep_until`` floor) of the
"enqueued" lateness (ms, log scale): box = p25-p75, line = median, whiskers = p1-p99,
and a dot for the lateness of the last fire of each burst. Uses matplotlib's Agg backend
(no display). The data are the ``sample_ms`` quantile samples of the results JSON.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

# Our rows carry the jobs-runtime kind (rule B1 of the suite): "(enqueue)" a plain
# runtime, "(enqueue_many)" a batch runtime; one colour family per lock backend.
COLORS = {
    "trio-sched/memory (enqueue_many)": "#1f77b4",
    "trio-sched/memory (enqueue)": "#17becf",
    "trio-sched/redis (enqueue_many)": "#2ca02c",
    "trio-sched/redis (enqueue)": "#98df8a",
    "trio-sched/postgres (enqueue_many)": "#9467bd",
    "trio-sched/postgres (enqueue)": "#c5b0d5",
    "trio-sched/memory (enqueue_many) (no handlers)": "#aec7e8",
    "trio-sched/memory (enqueue) (no handlers)": "#9edae5",
    "apscheduler4/memory": "#d62728",
    "apscheduler4/memory (scheduler role)": "#ff9896",
    "floor/trio.sleep_until": "#7f7f7f",
}
LABELS = {
    "trio-sched/memory (enqueue_many)": "ours\nmemory\nmany",
    "trio-sched/memory (enqueue)": "ours\nmemory\nenqueue",
    "trio-sched/redis (enqueue_many)": "ours\nredis\nmany",
    "trio-sched/redis (enqueue)": "ours\nredis\nenqueue",
    "trio-sched/postgres (enqueue_many)": "ours\npg\nmany",
    "trio-sched/postgres (enqueue)": "ours\npg\nenqueue",
    "trio-sched/memory (enqueue_many) (no handlers)": "ours\nalone\nmany",
    "trio-sched/memory (enqueue) (no handlers)": "ours\nalone\nenqueue",
    "apscheduler4/memory": "APS 4\nmemory",
    "apscheduler4/memory (scheduler role)": "APS 4\nalone",
    "floor/trio.sleep_until": "floor\nsleep_until",
}


def plot(record: dict[str, Any], out: Path) -> None:
    order = list(COLORS)
    rows = [r for r in record["lateness"] + record["floor"] if r["impl"] in COLORS]
    rows.sort(key=lambda r: order.index(r["impl"]))
    sizes = sorted({r["tasks"] for r in rows})
    fig, axes = plt.subplots(1, len(sizes), figsize=(6.4 * len(sizes), 5.6), squeeze=False)
    for ax, n in zip(axes[0], sizes, strict=True):
        group = [r for r in rows if r["tasks"] == n and r["enqueued"]["sample_ms"]]
        data = [[max(v, 1e-3) for v in r["enqueued"]["sample_ms"]] for r in group]
        if not data:
            ax.set_visible(False)
            continue
        box = ax.boxplot(data, whis=(1, 99), showfliers=False, patch_artist=True, widths=0.6)
        for patch, r in zip(box["boxes"], group, strict=True):
            patch.set_facecolor(COLORS[r["impl"]])
            patch.set_alpha(0.55)
        for i, r in enumerate(group, start=1):
            lasts = [max(v, 1e-3) for v in r["enqueued"]["last_per_burst_ms"]]
            ax.scatter([i] * len(lasts), lasts, s=12, color="black", zorder=3)
        ax.set_xticks(range(1, len(group) + 1))
        ax.set_xticklabels([LABELS[r["impl"]] for r in group], fontsize=7)
        ax.set_yscale("log")
        ax.set_title(f"{n:,} task{'s' if n != 1 else ''} due together", fontsize=10)
        ax.grid(axis="y", which="both", alpha=0.3)
    axes[0][0].set_ylabel("lateness to enqueue, ms (log)")
    load = record.get("load_average_before", [None])[0]
    fig.suptitle(
        f"fire-time lateness to enqueue, {record['mode']} run {record['timestamp']}, "
        f"load average {load:.2f}\nbox p25-p75, line median, whiskers p1-p99, dots: last "
        "fire of each burst; 'alone' = scheduler without job handlers; 'enqueue' = plain "
        "JobsRuntime, 'many' = with enqueue_many",
        fontsize=10,
    )
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
