"""One drift check: read both sides, embed them, compute every statistic, and decide.

The decision is the config's (`configs.schema.DriftConfig`): the set is flagged when any check
breaches its threshold. The embedding check has two rows, the centroid distance (how far the
average meaning moved) and the MMD p-value (whether that is more than sampling noise); it counts
only when both are breached, so neither a small sample's noisy distance nor a large sample's
significant but negligible shift raises an alarm alone. The result carries every threshold used,
so a stored verdict can be read without the config that made it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from configs.schema import DriftConfig
from core.errors import UserError
from tasks.data.language import detect_language
from tasks.drift import stats
from tasks.drift.texts import TextSet, read_texts
from tasks.evaluate.embed import MODEL_NAME, embed_cached

ROWS_PER_LENGTH_BIN = 20  # keeps the length PSI's own noise, about (bins - 1) / n, near 0.05


@dataclass
class Check:
    name: str
    label: str
    value: float
    threshold: float
    rule: str  # "above" breaches when value > threshold, "below" when value < threshold
    breached: bool


@dataclass
class DriftResult:
    reference: dict[str, Any]
    current: dict[str, Any]
    checks: list[Check]
    flagged: bool
    reasons: list[str]
    thresholds: dict[str, Any]
    details: dict[str, Any] = field(default_factory=dict)

    def metrics(self) -> dict[str, float]:
        """Flat numbers for a tracking store, one per statistic, plus the verdict as 0/1."""
        out = {f"drift.{c.name}": c.value for c in self.checks}
        out |= {
            "drift.flagged": float(self.flagged),
            "drift.mmd2": self.details["mmd"]["mmd2"],
            "drift.rows_reference": float(self.reference["used"]),
            "drift.rows_current": float(self.current["used"]),
        }
        return out

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def table(self) -> str:
        width = max(len(c.label) for c in self.checks)
        lines = [f"{'statistic':<{width}}  {'value':>8}  {'threshold':>10}  result"]
        for c in self.checks:
            sign = ">" if c.rule == "above" else "<"
            lines.append(
                f"{c.label:<{width}}  {c.value:>8.4f}  {sign + ' ' + format(c.threshold, '.4f'):>10}  "
                f"{'BREACHED' if c.breached else 'ok'}"
            )
        lines.append("(the embedding shift counts only when both its distance and its MMD p-value are breached)")
        verdict = "DRIFT: " + ", ".join(self.reasons) if self.flagged else "no drift"
        lines.append(f"verdict: {verdict}")
        return "\n".join(lines)


def _languages(texts: list[str]) -> list[str]:
    return [detect_language(t)[0] for t in texts]


def compare(
    reference: TextSet, current: TextSet, cfg: DriftConfig, cache_dir: str | Path | None = None
) -> tuple[DriftResult, dict[str, Any]]:
    """(the result, the arrays a plot needs) for two sets of prompt texts."""
    if len(current.texts) < cfg.min_rows or len(reference.texts) < cfg.min_rows:
        side = current if len(current.texts) < cfg.min_rows else reference
        raise UserError(
            f"{side.name} {', '.join(side.paths)}",
            f"has {len(side.texts)} usable rows "
            f"(read {side.read}, dropped {side.dropped or 'none'}); drift needs at least {cfg.min_rows}",
            "collect more inputs, or lower drift.min_rows (fewer rows make every statistic noisier)",
        )
    ref_emb = embed_cached(reference.texts, cfg.batch_size, cache_dir)
    cur_emb = embed_cached(current.texts, cfg.batch_size, cache_dir)
    distance = stats.centroid_distance(ref_emb, cur_emb)
    mmd = stats.mmd_permutation_test(ref_emb, cur_emb, cfg.permutations, cfg.permutation_rows, cfg.seed)
    bins = max(2, min(cfg.length_bins, len(current.texts) // ROWS_PER_LENGTH_BIN))
    ref_len, cur_len = [len(t) for t in reference.texts], [len(t) for t in current.texts]
    lengths = stats.length_psi(ref_len, cur_len, bins)
    languages = stats.category_psi(_languages(reference.texts), _languages(current.texts))
    far = stats.far_share(ref_emb, cur_emb, cfg.clusters, cfg.far_quantile, seed=cfg.seed)

    significant = mmd["p_value"] < cfg.alpha
    moved = distance > cfg.max_centroid_distance
    checks = [
        Check("centroid_distance", "embedding centroid distance", distance, cfg.max_centroid_distance, "above", moved),
        Check("mmd_p_value", "embedding MMD p-value", mmd["p_value"], cfg.alpha, "below", significant),
        Check(
            "length_psi", "length PSI", lengths["psi"], cfg.max_length_psi, "above", lengths["psi"] > cfg.max_length_psi
        ),
        Check(
            "language_psi",
            "language PSI",
            languages["psi"],
            cfg.max_language_psi,
            "above",
            languages["psi"] > cfg.max_language_psi,
        ),
        Check(
            "far_share",
            "share far from training",
            far["share"],
            cfg.max_far_share,
            "above",
            far["share"] > cfg.max_far_share,
        ),
    ]
    reasons = ["embedding shift"] if moved and significant else []
    reasons += [c.label for c in checks[2:] if c.breached]
    details = {
        "embedding_model": MODEL_NAME,
        "mmd": {k: v for k, v in mmd.items()},
        "length": lengths | {"bins": bins},
        "language": languages,
        "far": {k: far[k] for k in ("radius", "clusters", "expected", "share")},
    }
    result = DriftResult(
        reference=reference.summary(),
        current=current.summary(),
        checks=checks,
        flagged=bool(reasons),
        reasons=reasons,
        thresholds=cfg.model_dump(),
        details=details,
    )
    arrays = {
        "reference": ref_emb,
        "current": cur_emb,
        "reference_lengths": ref_len,
        "current_lengths": cur_len,
        "unseen_distances": far["unseen"],
        "current_distances": far["distances"],
    }
    return result, arrays


def check_drift(
    reference: str,
    current: str,
    cfg: DriftConfig,
    curated_root: Path | None = None,
    cache_dir: str | Path | None = None,
) -> tuple[DriftResult, dict[str, Any]]:
    """Reads `reference` (a dataset, its hash, `latest`, or a file) and `current` (a file), then compares them."""
    ref = read_texts(reference, cfg.max_rows, cfg.seed, curated_root, what="reference")
    cur = read_texts(current, cfg.max_rows, cfg.seed, curated_root=None, what="current")
    return compare(ref, cur, cfg, cache_dir)
