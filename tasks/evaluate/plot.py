"""A bar chart of exact match per model with 95 % intervals: what a reviewer looks at first."""

from __future__ import annotations

from pathlib import Path

from tasks.evaluate.intervals import wilson_interval


def plot_scores(scores: dict[str, list[float]], path: Path, title: str) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = list(scores)
    means = [sum(s) / len(s) for s in scores.values()]
    bounds = [wilson_interval(int(sum(s)), len(s)) if s else (0.0, 0.0) for s in scores.values()]
    errors = [[m - lo for m, (lo, _) in zip(means, bounds)], [hi - m for m, (_, hi) in zip(means, bounds)]]
    fig, ax = plt.subplots(figsize=(5, 3.2), dpi=110)
    colours = {"candidate": "#2a9d8f", "champion": "#e9c46a", "base": "#8d99ae"}
    ax.bar(labels, means, yerr=errors, capsize=6, color=[colours.get(label, "#577590") for label in labels])
    for x, m in enumerate(means):
        ax.text(x, m + 0.02, f"{m:.2f}", ha="center", va="bottom", fontsize=9)
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("exact match (95% CI)")
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path
