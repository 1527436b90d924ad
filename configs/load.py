"""Reading a run config: YAML file, then `--set a.b=c` overrides, then every check at once.

A bad config stops here, before anything is written anywhere, with one message that lists each
problem by its dotted field path and says what is allowed.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from configs.check import check_machine
from configs.consistency import cross_section_problems
from configs.schema import RunConfig

DEFAULT_CONFIG = Path(__file__).parent / "nightly.yaml"
# A config file that replaces the bundled one wherever no config is given: commands without --config,
# the deployments' forms, and the runs a schedule starts with no parameters (a team's worker sets it).
CONFIG_VAR = "LLMOPS_CONFIG"


def default_config_path() -> Path:
    return Path(os.environ.get(CONFIG_VAR) or DEFAULT_CONFIG)


class ConfigError(ValueError):
    def __init__(self, source: str, problems: list[str]):
        self.problems = problems
        listing = "\n".join(f"  - {p}" for p in problems)
        super().__init__(
            f"config {source} is not valid ({len(problems)} problem{'s' if len(problems) > 1 else ''}):\n{listing}"
        )


def apply_override(raw: dict[str, Any], assignment: str) -> None:
    """`train.sft.max_steps=20` sets that key; the value is read as YAML (numbers, booleans, lists),
    or taken as text when it is not YAML."""
    if "=" not in assignment:
        raise ConfigError("override", [f"'{assignment}' is not KEY=VALUE (example: train.sft.max_steps=20)"])
    key, value = assignment.split("=", 1)
    node = raw
    parts = key.strip().split(".")
    for part in parts[:-1]:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise ConfigError("override", [f"{key}: '{part}' is not a section"])
    try:
        node[parts[-1]] = yaml.safe_load(value)
    except yaml.YAMLError:  # not YAML (a template with braces, say): the text as written
        node[parts[-1]] = value


def format_validation_error(err: ValidationError) -> list[str]:
    problems = []
    for e in err.errors():
        where = ".".join(str(p) for p in e["loc"]) or "(top level)"
        message = e["msg"]
        if e["type"] == "extra_forbidden":
            message = "unknown key (check the spelling; see configs/schema.py for the fields)"
        problems.append(f"{where}: {message}")
    return problems


def load_config(path: str | Path | None = None, overrides: list[str] | None = None, check: bool = True) -> RunConfig:
    source = str(path or default_config_path())
    try:
        raw = yaml.safe_load(Path(source).read_text(encoding="utf-8")) or {}
    except FileNotFoundError:
        named_by = f", named by {CONFIG_VAR}" if not path and os.environ.get(CONFIG_VAR) else ""
        raise ConfigError(
            source, [f"file not found{named_by} (the bundled configs are in {DEFAULT_CONFIG.parent})"]
        ) from None
    except yaml.YAMLError as exc:
        raise ConfigError(source, [f"not valid YAML: {exc}"]) from None
    if not isinstance(raw, dict):
        raise ConfigError(source, ["the top level must be a mapping of sections (data, curate, model, train, ...)"])
    for assignment in overrides or []:
        apply_override(raw, assignment)
    try:
        config = RunConfig.model_validate(raw)
    except ValidationError as err:
        raise ConfigError(source, format_validation_error(err)) from None
    problems = cross_section_problems(config) + check_machine(config) if check else []
    if problems:
        raise ConfigError(source, problems)
    return config


def check_run_config(config: RunConfig, source: str = "the run's config") -> RunConfig:
    """What `load_config` checks beyond the schema, for a config that arrived another way (a
    deployment's form): every cross-section and machine problem at once, before any work."""
    problems = cross_section_problems(config) + check_machine(config)
    if problems:
        raise ConfigError(source, problems)
    return config


def default_config() -> RunConfig:
    """The bundled nightly config (or $LLMOPS_CONFIG), schema-checked only: what a deployment's form
    starts from, and what a scheduled run gets."""
    return load_config(default_config_path(), check=False)
