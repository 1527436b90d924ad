"""One training stage as a small plain plan: everything a rank needs, resolved by the rank that leads.

Only the leading rank (rank 0) reads MLflow and Prefect: it resolves the dataset, the prompt and the
base model, then writes each stage down as a `TrainPlan` of paths, text and the two config sections.
The other ranks receive the plan (as a file when the flow launched them, over the launch's control
group when a person did) and run the same library call with it, so every rank trains the same stage
on the same data, and none of them needs a tracking client.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from configs.schema import ModelConfig, TrainConfig
from tasks.train.common import StepSink, finished
from tasks.train.result import StageResult


@dataclass(frozen=True)
class TrainPlan:
    stage: str  # "sft", or the preference method: "dpo", "orpo", "kto"
    start: str  # the base model (SFT), or the folder preference tuning continues from
    data_path: str  # the stage's JSONL rows
    template: str  # the prompt template around each user turn
    train: TrainConfig
    model: ModelConfig
    out_dir: str  # the run's folder: checkpoints, the trained folder, the stage's summary

    def to_dict(self) -> dict[str, Any]:
        return {
            "stage": self.stage,
            "start": self.start,
            "data_path": self.data_path,
            "template": self.template,
            "train": self.train.model_dump(),
            "model": self.model.model_dump(),
            "out_dir": self.out_dir,
        }

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> TrainPlan:
        train, model = TrainConfig.model_validate(raw["train"]), ModelConfig.model_validate(raw["model"])
        sections = {"train": train, "model": model}
        return cls(**raw | sections)

    def write(self, path: Path) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_dict(), indent=1))
        return path

    @classmethod
    def read(cls, path: str | Path) -> TrainPlan:
        return cls.from_dict(json.loads(Path(path).read_text()))

    def done(self) -> StageResult | None:
        """The stage's result when it already finished in this folder: nothing to launch."""
        return finished(Path(self.out_dir), self.stage)

    def problems(self) -> list[str]:
        """What this machine lacks to run the plan: on another node, a folder not shared with rank 0."""
        out = []
        for what, path in (("data", self.data_path), ("start", self.start)):
            local = path.startswith(("/", ".", "~"))  # else a hub name, read from this machine's cache
            if local and not Path(path).expanduser().exists():
                out.append(f"{what} {path} is not on this machine")
        existing = next(p for p in (Path(self.out_dir), *Path(self.out_dir).parents) if p.exists())
        if not (existing.is_dir() and os.access(existing, os.W_OK)):
            out.append(f"the run folder {self.out_dir} cannot be written here")
        return out


def run_plan(plan: TrainPlan, on_log: StepSink | None = None) -> StageResult:
    """Trains the plan's stage in this process (one rank of a launch, or the only one)."""
    if plan.stage == "sft":
        from tasks.train.sft import train_sft

        return train_sft(plan.start, plan.data_path, plan.template, plan.train, plan.out_dir, on_log, plan.model)
    from tasks.train.preference import train_preference

    return train_preference(plan.start, plan.data_path, plan.template, plan.train, plan.out_dir, on_log, plan.model)
