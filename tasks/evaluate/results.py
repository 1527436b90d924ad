"""What an evaluation hands the gate, the monitor, the card and the CLI: typed, per model label and suite.

An evaluation scores several models ("candidate", "champion", "base", or "baseline" for the
monitor) on the same items of the same suites. `EvalResults` holds one `SuiteResult` per label and
suite; the gate reads per-item scores from it to pair models item by item, and `BatchTiming`s to
pair their generation times batch by batch. The same shape is written to the evaluate run as
`eval/results.json` and read back from it, so a later promotion judges exactly what was measured.
"""

from __future__ import annotations

import statistics
from dataclasses import asdict, dataclass, field
from typing import Any

from tasks.evaluate.corpus import corpus_bleu


@dataclass
class ProbeTally:
    """Safety probes of one kind: how many passed, of how many."""

    passed: int
    total: int

    @property
    def all_passed(self) -> bool:
        return self.passed == self.total


@dataclass
class BatchTiming:
    """One batch generated and timed in this evaluation: the unit operational figures are paired on.

    Items share their batch's wall time, so a batch, not an item, is one observation. `index` is the
    batch's place in the suite's fixed partition into `eval.batch_size` items, so the candidate's
    batch 3 and the champion's batch 3 hold the same items; `ids` lets a reader check that.
    """

    index: int
    ids: list[str]
    seconds: float
    cost_usd: float


@dataclass
class SuiteResult:
    """One model on one suite: per-item scores aligned with `ids`, and how it was produced.

    `model_key` names the weights, prompt and number format that produced the answers (two models
    with the same key give the same answers). `batches` are the batches timed in the run named by
    `timed_in`; `cached_items` answers came from an earlier run and carry no timing of this one.
    """

    version: str
    ids: list[str]
    scores: dict[str, list[float]]
    model_key: str = ""
    groups: list[str] | None = None
    outputs: list[str] = field(default_factory=list)
    ops: dict[str, float] = field(default_factory=dict)
    probes: dict[str, ProbeTally] = field(default_factory=dict)
    bleu_stats: list[list[float]] | None = None
    batches: list[BatchTiming] = field(default_factory=list)
    timed_in: str = ""
    cached_items: int = 0

    @property
    def n(self) -> int:
        return len(self.ids)

    @property
    def means(self) -> dict[str, float]:
        """Each metric's mean over the items; corpus BLEU (0-1) where the items carry its statistics."""
        out = {metric: statistics.fmean(values) for metric, values in self.scores.items() if values}
        if self.bleu_stats:
            out["bleu"] = corpus_bleu(self.bleu_stats)
        return out

    def to_json(self, outputs: bool = False) -> dict[str, Any]:
        data = asdict(self) | {"n": self.n, "means": self.means}
        if not outputs:
            data.pop("outputs")
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "SuiteResult":
        """Also reads results written before this shape existed (no batches, `resumed_items`)."""
        return cls(
            version=data["version"],
            ids=list(data["ids"]),
            scores=data["scores"],
            model_key=data.get("model_key", ""),
            groups=data.get("groups"),
            outputs=data.get("outputs") or [],
            ops=data.get("ops") or {},
            probes={k: ProbeTally(v["passed"], v["total"]) for k, v in (data.get("probes") or {}).items()},
            bleu_stats=data.get("bleu_stats"),
            batches=[BatchTiming(**b) for b in data.get("batches") or []],
            timed_in=data.get("timed_in", ""),
            cached_items=data.get("cached_items", data.get("resumed_items", 0)),
        )


@dataclass
class EvalResults:
    """Per model label, per suite: what the gate judges and the card shows."""

    models: dict[str, dict[str, SuiteResult]]

    def __contains__(self, label: str) -> bool:
        return label in self.models

    def of(self, label: str) -> dict[str, SuiteResult]:
        return self.models[label]

    def scores(self, label: str, key: str) -> list[float]:
        """Per-item scores of `suite/metric`; a rule on a suite or metric that was not run is named."""
        suite, metric = key.split("/", 1)
        found = self.models.get(label, {}).get(suite)
        if found is None or metric not in found.scores:
            raise ValueError(
                f"gate rule '{key}': no {metric} scores for suite '{suite}' of the {label} "
                f"(suites evaluated: {sorted(self.models.get(label, {}))})"
            )
        return found.scores[metric]

    def summary(self) -> dict[str, dict[str, float]]:
        """label -> `suite/metric` -> mean, the table every report starts from."""
        return {
            label: {f"{suite}/{metric}": value for suite, r in per.items() for metric, value in r.means.items()}
            for label, per in self.models.items()
        }

    def to_json(self, outputs: bool = False) -> dict[str, Any]:
        return {label: {s: r.to_json(outputs) for s, r in per.items()} for label, per in self.models.items()}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "EvalResults":
        return cls({label: {s: SuiteResult.from_json(r) for s, r in per.items()} for label, per in data.items()})


@dataclass
class Evaluation:
    """What the evaluate flow returns: its MLflow run, the results, and what they were measured on."""

    run_id: str
    results: EvalResults
    eval_path: str
    prompts: dict[str, str]
    model_version: int | None = None
    champion_version: int | None = None

    @property
    def summary(self) -> dict[str, dict[str, float]]:
        return self.results.summary()


def summary_markdown(summary: dict[str, dict[str, float]]) -> str:
    """The means of every model side by side, as a Markdown table (a Prefect artifact, the run's log)."""
    who = list(summary)
    keys = sorted({k for per in summary.values() for k in per})
    lines = ["| suite/metric | " + " | ".join(who) + " |", "|---" * (len(who) + 1) + "|"]
    lines += [
        f"| {k} | " + " | ".join(f"{summary[w][k]:.3f}" if k in summary[w] else "" for w in who) + " |" for k in keys
    ]
    return "\n".join(lines)
