"""Where a model version came from, as one type that converts to and from its MLflow tags.

The train flow writes it on the version it registers (`lineage.<field>` tags); evaluation reads the
prompt, the eval split and the base back from it; the model card prints it. One type, so a field
is spelled once and a missing one reads as empty rather than as a KeyError three stages later.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

PREFIX = "lineage."


@dataclass(frozen=True)
class Lineage:
    dataset_hash: str = ""
    eval_hash: str = ""
    curate_run_id: str = ""
    config_hash: str = ""
    git_commit: str = ""
    train_run_id: str = ""
    prompt: str = ""  # the prompt version trained with: NAME/VERSION
    base_model: str = ""  # a hub name, or the folder of the base on the machine that trained
    method: str = ""  # lora, qlora or full
    stages: str = ""  # the training stages run, e.g. sft+dpo
    eval_run_id: str = ""  # set by promote: the evaluation the gate read

    def to_tags(self) -> dict[str, str]:
        """`lineage.<field>` tags for the fields that are set."""
        return {PREFIX + k: str(v) for k, v in asdict(self).items() if v}

    @classmethod
    def from_tags(cls, tags: dict[str, str]) -> Lineage:
        """The lineage a version's tags hold; tags of other kinds and unknown lineage keys are ignored."""
        known = {f.name for f in fields(cls)}
        return cls(
            **{k[len(PREFIX) :]: v for k, v in tags.items() if k.startswith(PREFIX) and k[len(PREFIX) :] in known}
        )

    def as_dict(self) -> dict[str, str]:
        return asdict(self)
