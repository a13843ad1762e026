"""The suite's plot: lateness distributions per scenario, ours vs APScheduler vs floor.

One panel per burst size (tasks due together); in each, one box per implementation
(trio-sched on each lock backend and alone, APScheduler 4 with and without running its
jobs, the ``trio.sleep_until`` floor) of the
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

COLORS = {
    "trio-sched/memory": "#1f77b4",
    "trio-sched/redis": "#2ca02c",
    "trio-sched/postgres": "#9467bd",
    "trio-sched/memory (no handlers)": "#aec7e8",
    "apscheduler4/memory": "#d62728",
    "apscheduler4/memory (scheduler role)": "#ff9896",
    "floor/trio.sleep_until": "#7f7f7f",
}
LABELS = {
    "trio-sched/memory": "ours\nmemory",
    "trio-sched/redis": "ours\nredis",
    "trio-sched/postgres": "ours\npostgres",
    "trio-sched/memory (no handlers)": "ours\nalone",
    "apscheduler4/memory": "APS 4\nmemory",
    "apscheduler4/memory (scheduler role)": "APS 4\nalone",
    "floor/trio.sleep_until": "floor\nsleep_until",
}


def plot(record: dict[str, Any], out: Path) -> None:
    order = list(COLORS)
    rows = [r for r in record["lateness"] + record["floor"] if r["impl"] in COLORS]
    rows.sort(key=lambda r: order.index(r["impl"]))
    sizes = sorted({r["tasks"] for r in rows})
    fig, axes = plt.subplots(1, len(sizes), figsize=(4.8 * len(sizes), 5.2), squeeze=False)
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
        ax.set_xticklabels([LABELS[r["impl"]] for r in group], fontsize=8)
        ax.set_yscale("log")
        ax.set_title(f"{n:,} task{'s' if n != 1 else ''} due together", fontsize=10)
        ax.grid(axis="y", which="both", alpha=0.3)
    axes[0][0].set_ylabel("lateness to enqueue, ms (log)")
    load = record.get("load_average_before", [None])[0]
    fig.suptitle(
        f"fire-time lateness to enqueue, {record['mode']} run {record['timestamp']}, "
        f"load average {load:.2f}\nbox p25-p75, line median, whiskers p1-p99, dots: last "
        "fire of each burst; 'alone' = scheduler without job handlers",
        fontsize=10,
    )
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
