"""Figures for the tracking run: where the current inputs sit against the reference, and the checks over time.

`plot_drift` has four panels, each the picture behind one statistic: both sets' embeddings
projected on the reference's first two principal components (the centroid distance and MMD), the
distance of each input to its nearest reference cluster against the radius (the far share), the
length bins (the length PSI), and the checks against their thresholds (the verdict).
`plot_history` draws each statistic across the past checks of the same reference.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from tasks.drift.check import DriftResult

REFERENCE_COLOUR, CURRENT_COLOUR = "#8d99ae", "#e76f51"


def _projection(reference: np.ndarray, current: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    centre = reference.mean(axis=0)
    _, _, vt = np.linalg.svd(reference - centre, full_matrices=False)
    axes = vt[:2].T
    return (reference - centre) @ axes, (current - centre) @ axes


def plot_drift(result: DriftResult, arrays: dict[str, Any], path: Path, title: str = "") -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ((ax_pca, ax_far), (ax_len, ax_checks)) = plt.subplots(2, 2, figsize=(10, 7.4), dpi=110)
    ref2, cur2 = _projection(arrays["reference"], arrays["current"])
    ax_pca.scatter(ref2[:, 0], ref2[:, 1], s=6, alpha=0.35, color=REFERENCE_COLOUR, label=f"reference ({len(ref2)})")
    ax_pca.scatter(cur2[:, 0], cur2[:, 1], s=8, alpha=0.6, color=CURRENT_COLOUR, label=f"current ({len(cur2)})")
    ax_pca.set_title("embeddings on the reference's first two principal components", fontsize=9)
    ax_pca.legend(fontsize=8, loc="best")

    radius = result.details["far"]["radius"]
    bins = np.linspace(0.0, max(1.0, float(np.max(arrays["current_distances"], initial=0.0))), 40)
    ax_far.hist(
        arrays["unseen_distances"],
        bins=bins,
        density=True,
        alpha=0.6,
        color=REFERENCE_COLOUR,
        label="reference rows unseen by the clustering",
    )
    ax_far.hist(arrays["current_distances"], bins=bins, density=True, alpha=0.6, color=CURRENT_COLOUR, label="current")
    ax_far.axvline(radius, color="black", linestyle="--", linewidth=1)
    ax_far.text(radius, ax_far.get_ylim()[1] * 0.92, f" radius {radius:.2f}", fontsize=8)
    ax_far.set_xlabel("cosine distance to the nearest reference cluster", fontsize=8)
    ax_far.set_title(f"far from training: {result.details['far']['share']:.1%} of current inputs", fontsize=9)
    ax_far.legend(fontsize=7)

    length = result.details["length"]
    edges = [0, *[round(e) for e in length["edges"]]]
    labels = [f"{lo}-{hi}" for lo, hi in zip(edges, edges[1:])] + [f">{edges[-1]}"]
    x = np.arange(len(labels))
    ax_len.bar(x - 0.2, length["reference"], 0.4, color=REFERENCE_COLOUR, label="reference")
    ax_len.bar(x + 0.2, length["current"], 0.4, color=CURRENT_COLOUR, label="current")
    ax_len.set_xticks(x, labels, rotation=45, ha="right", fontsize=7)
    ax_len.set_ylabel("share of rows", fontsize=8)
    ax_len.set_title(f"prompt length in characters (PSI {length['psi']:.3f})", fontsize=9)
    ax_len.legend(fontsize=8)

    names = [c.label for c in result.checks]
    # Each statistic as a multiple of its threshold, on a log scale: 1 is the line a check must not cross.
    ratios = [
        max(c.value, 1e-6) / c.threshold if c.rule == "above" else c.threshold / max(c.value, 1e-6)
        for c in result.checks
    ]
    colours = [CURRENT_COLOUR if c.breached else "#2a9d8f" for c in result.checks]
    ax_checks.barh(names, ratios, color=colours)
    ax_checks.axvline(1.0, color="black", linestyle="--", linewidth=1)
    ax_checks.set_xscale("log")
    ax_checks.invert_yaxis()
    for i, c in enumerate(result.checks):
        ax_checks.text(ratios[i], i, f" {c.value:.3g}", va="center", fontsize=7)
    ax_checks.tick_params(axis="y", labelsize=8)
    ax_checks.set_xlabel("statistic / threshold (p-value: threshold / p); right of the line = breached", fontsize=8)
    verdict = "DRIFT: " + ", ".join(result.reasons) if result.flagged else "no drift"
    ax_checks.set_title(verdict, fontsize=9, color=CURRENT_COLOUR if result.flagged else "#2a9d8f")

    fig.suptitle(title or "input drift against the training reference", fontsize=11)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path


def plot_history(history: list[dict[str, Any]], checks: list, path: Path, title: str = "") -> Path:
    """Each statistic over the past checks, with its threshold: the time series a daily schedule builds.

    `history` holds one {"time": datetime, "metrics": {name: value}} per earlier check, oldest
    first; `checks` are the latest result's, which name the statistics and carry the thresholds.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(checks), 1, figsize=(8, 1.7 * len(checks)), dpi=110, sharex=True)
    times = [h["time"] for h in history]
    for ax, check in zip(axes, checks):
        values = [h["metrics"].get(f"drift.{check.name}", np.nan) for h in history]
        ax.plot(times, values, marker="o", markersize=3, color="#264653", linewidth=1)
        breached = [
            (t, v)
            for t, v in zip(times, values)
            if (v > check.threshold if check.rule == "above" else v < check.threshold)
        ]
        if breached:
            ax.scatter(*zip(*breached), color=CURRENT_COLOUR, zorder=3, s=18)
        ax.axhline(check.threshold, color="black", linestyle="--", linewidth=1)
        if check.name == "mmd_p_value":
            ax.set_yscale("log")
        ax.set_ylabel(check.label.replace("embedding ", ""), fontsize=7)
        ax.tick_params(labelsize=7)
    axes[-1].set_xlabel("check time (red: breached; dashed: threshold)", fontsize=8)
    fig.autofmt_xdate()
    fig.suptitle(title or f"input drift over {len(history)} checks", fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path
