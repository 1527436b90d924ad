"""A bar chart of exact match per model with 95 % intervals: what a reviewer looks at first."""

from __future__ import annotations

import math
from pathlib import Path


def wilson_interval(successes: float, n: int) -> tuple[float, float]:
    if n == 0:
        return 0.0, 0.0
    p, z = successes / n, 1.96
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def plot_scores(scores: dict[str, list[float]], path: Path, title: str) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = list(scores)
    means = [sum(s) / len(s) for s in scores.values()]
    bounds = [wilson_interval(sum(s), len(s)) for s in scores.values()]
    errors = [[m - lo for m, (lo, _) in zip(means, bounds)], [hi - m for m, (_, hi) in zip(means, bounds)]]
    fig, ax = plt.subplots(figsize=(5, 3.2), dpi=110)
    colours = {"candidate": "#2a9d8f", "champion": "#e9c46a", "base": "#8d99ae"}
    ax.bar(labels, means, yerr=errors, capsize=6, color=[colours.get(l, "#577590") for l in labels])
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
