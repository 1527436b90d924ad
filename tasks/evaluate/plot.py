"""A bar chart of the gate's primary metric per model, with 95 % intervals: what a reviewer looks at first."""

from __future__ import annotations

from pathlib import Path

from tasks.evaluate.intervals import metric_interval


def plot_scores(scores: dict[str, list[float]], path: Path, metric: str, title: str) -> Path:
    """One bar per model: the mean of `metric` (0-1) with its interval (Wilson for 0/1 scores, bootstrap otherwise)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = list(scores)
    summaries = [metric_interval(s, metric) for s in scores.values()]
    means = [s["mean"] for s in summaries]
    lows = [s["ci_low"] if s["ci_low"] is not None else s["mean"] for s in summaries]
    highs = [s["ci_high"] if s["ci_high"] is not None else s["mean"] for s in summaries]
    errors = [[m - lo for m, lo in zip(means, lows)], [hi - m for m, hi in zip(means, highs)]]
    fig, ax = plt.subplots(figsize=(5, 3.2), dpi=110)
    colours = {"candidate": "#2a9d8f", "champion": "#e9c46a", "base": "#8d99ae"}
    ax.bar(labels, means, yerr=errors, capsize=6, color=[colours.get(label, "#577590") for label in labels])
    for x, m in enumerate(means):
        ax.text(x, m + 0.02, f"{m:.2f}", ha="center", va="bottom", fontsize=9)
    ax.set_ylim(0, 1.05)
    ax.set_ylabel(f"{metric} (95% CI)")
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path
