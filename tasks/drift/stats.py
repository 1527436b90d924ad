"""The statistics of input drift, each a plain function of embeddings, lengths or labels.

- `centroid_distance`: cosine distance between the mean embeddings, an effect size a person can
  read (0 = the same average meaning; MiniLM puts unrelated topics about 0.3 to 0.8 apart).
- `mmd_permutation_test`: is the difference more than sampling noise? Maximum mean discrepancy
  with a Gaussian kernel (bandwidth: the median pairwise distance), its p-value from label
  permutations. It sees any difference in distribution, not only a moved mean. Its cost is one
  (n+m)² kernel matrix and one matrix product per batch of permutations, so both sides are
  subsampled (seeded) to a size two CPU cores handle in about a second.
- `psi`: the population stability index over bins or categories, the credit-scoring rule of
  thumb (< 0.1 stable, 0.1-0.25 moderate, > 0.25 a major shift) for lengths and language mix.
- `far_share`: the share of current inputs near no cluster of the reference (k-means). The
  radius is a quantile of the distances that reference rows the clustering did not see keep to
  their nearest centroid (cross-fitted), so on data like the reference about 1 - quantile of
  inputs are far, whatever k is.

Pure numpy; nothing here knows about files, models or thresholds.
"""

from __future__ import annotations

import math
from collections import Counter
from typing import Sequence

import numpy as np

PSI_FLOOR = 1e-4  # share given to an empty bin, so log(0) never appears (the usual PSI convention)


def _unit_mean(x: np.ndarray) -> np.ndarray:
    mean = x.mean(axis=0)
    norm = float(np.linalg.norm(mean))
    return mean / norm if norm > 0 else mean


def centroid_distance(reference: np.ndarray, current: np.ndarray) -> float:
    """1 - cosine similarity of the two sets' mean embeddings."""
    return float(1.0 - np.dot(_unit_mean(reference), _unit_mean(current)))


def _subsample(x: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    return x if len(x) <= k else x[np.sort(rng.choice(len(x), size=k, replace=False))]


def mmd_permutation_test(
    reference: np.ndarray, current: np.ndarray, permutations: int = 1000, max_rows: int = 500, seed: int = 0
) -> dict[str, float]:
    """Biased MMD² (Gaussian kernel) and its permutation p-value, (1 + #{perm >= observed}) / (1 + P).

    Each permutation's statistic comes from the same kernel matrix: with s the 0/1 vector that
    marks the "reference" side, the three block sums are s'Ks, (1-s)'K(1-s) and s'K(1-s), so a
    batch of permutations costs one matrix product.
    """
    rng = np.random.default_rng(seed)
    x, y = _subsample(reference, max_rows, rng), _subsample(current, max_rows, rng)
    n, m = len(x), len(y)
    if n < 2 or m < 2:
        raise ValueError(f"the MMD test needs at least 2 rows on each side (got {n} and {m})")
    z = np.concatenate([x, y]).astype(np.float64)
    sq = np.maximum(np.sum(z * z, axis=1)[:, None] + np.sum(z * z, axis=1)[None, :] - 2.0 * z @ z.T, 0.0)
    upper = sq[np.triu_indices(len(z), k=1)]
    bandwidth = float(np.median(upper[upper > 0])) if np.any(upper > 0) else 1.0
    kernel = np.exp(-sq / bandwidth)
    total = kernel.sum()

    def mmd2(labels: np.ndarray) -> np.ndarray:  # labels: (batch, n+m) of 0/1, n ones per row
        kx = labels @ kernel
        xx = np.sum(kx * labels, axis=1)
        xy = kx.sum(axis=1) - xx
        yy = total - xx - 2.0 * xy
        return xx / n**2 + yy / m**2 - 2.0 * xy / (n * m)

    observed = float(mmd2(np.concatenate([np.ones(n), np.zeros(m)])[None, :])[0])
    exceed, done = 0, 0
    while done < permutations:
        batch = min(200, permutations - done)
        labels = np.zeros((batch, n + m))
        order = np.argsort(rng.random((batch, n + m)), axis=1)[:, :n]
        np.put_along_axis(labels, order, 1.0, axis=1)
        exceed += int(np.sum(mmd2(labels) >= observed - 1e-12))
        done += batch
    return {
        "mmd2": observed,
        "p_value": (1 + exceed) / (1 + permutations),
        "rows_reference": n,
        "rows_current": m,
        "bandwidth": bandwidth,
        "permutations": permutations,
    }


def psi(reference_shares: Sequence[float], current_shares: Sequence[float]) -> float:
    """Σ (c - r) · ln(c / r) over bins, with empty bins floored at PSI_FLOOR."""
    r = np.maximum(np.asarray(reference_shares, dtype=float), PSI_FLOOR)
    c = np.maximum(np.asarray(current_shares, dtype=float), PSI_FLOOR)
    return float(np.sum((c - r) * np.log(c / r)))


def length_psi(reference: Sequence[int], current: Sequence[int], bins: int = 10) -> dict:
    """PSI of text lengths over the reference's quantile bins (ties merge bins, so there may be fewer)."""
    ref, cur = np.asarray(reference, dtype=float), np.asarray(current, dtype=float)
    inner = np.unique(np.quantile(ref, np.linspace(0, 1, bins + 1)[1:-1]))
    edges = [-math.inf, *inner.tolist(), math.inf]
    r = np.histogram(ref, edges)[0] / len(ref)
    c = np.histogram(cur, edges)[0] / len(cur)
    return {"psi": psi(r, c), "edges": inner.tolist(), "reference": r.tolist(), "current": c.tolist()}


def category_psi(reference: Sequence[str], current: Sequence[str], min_share: float = 0.01) -> dict:
    """PSI over categories (languages); those under `min_share` of the reference pool into "other"."""
    ref_counts = Counter(reference)
    keep = sorted((k for k, v in ref_counts.items() if v / len(reference) >= min_share), key=lambda k: -ref_counts[k])
    names = keep + ["other"]

    def shares(labels: Sequence[str]) -> list[float]:
        counts = Counter(label if label in keep else "other" for label in labels)
        return [counts[k] / len(labels) for k in names]

    r, c = shares(reference), shares(current)
    return {"psi": psi(r, c), "categories": names, "reference": r, "current": c}


def kmeans(x: np.ndarray, k: int, seed: int = 0, iterations: int = 50) -> np.ndarray:
    """Centroids of k-means++ then Lloyd's iterations (on unit vectors, the centroids are re-normalised)."""
    rng = np.random.default_rng(seed)
    k = max(1, min(k, len(x)))
    centroids = [x[rng.integers(len(x))]]
    closest = np.sum((x - centroids[0]) ** 2, axis=1)
    for _ in range(1, k):
        weights = closest / closest.sum() if closest.sum() > 0 else np.full(len(x), 1 / len(x))
        centroids.append(x[rng.choice(len(x), p=weights)])
        closest = np.minimum(closest, np.sum((x - centroids[-1]) ** 2, axis=1))
    c = np.asarray(centroids)
    for _ in range(iterations):
        assign = np.argmax(x @ c.T, axis=1)
        moved = c.copy()
        for j in range(k):
            members = x[assign == j]
            if len(members):
                moved[j] = _unit_mean(members)
        if np.allclose(moved, c):
            break
        c = moved
    return c


def nearest_distance(x: np.ndarray, centroids: np.ndarray) -> np.ndarray:
    """Cosine distance of each unit vector to its nearest centroid."""
    return 1.0 - np.max(x @ centroids.T, axis=1)


def far_share(
    reference: np.ndarray,
    current: np.ndarray,
    clusters: int = 16,
    quantile: float = 0.95,
    folds: int = 5,
    seed: int = 0,
) -> dict:
    """Share of current rows farther from every reference centroid than `quantile` of unseen reference rows are.

    The radius is cross-fitted: each fold of the reference is measured against centroids fitted
    without it, so the radius is what rows the clustering has not seen get, as current rows are;
    the current rows are then measured against centroids fitted on the whole reference.
    """
    if len(reference) < max(3, folds):
        raise ValueError(f"far_share needs at least {max(3, folds)} reference rows (got {len(reference)})")
    rng = np.random.default_rng(seed)
    parts = np.array_split(rng.permutation(len(reference)), folds)
    unseen = np.concatenate(
        [
            nearest_distance(reference[part], kmeans(np.delete(reference, part, axis=0), clusters, seed))
            for part in parts
        ]
    )
    radius = float(np.quantile(unseen, quantile))
    centroids = kmeans(reference, clusters, seed)
    distances = nearest_distance(current, centroids)
    return {
        "share": float(np.mean(distances > radius)),
        "radius": radius,
        "clusters": len(centroids),
        "expected": 1.0 - quantile,
        "distances": distances,
        "unseen": unseen,
    }
