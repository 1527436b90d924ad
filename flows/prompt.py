"""Prompt CI: a prompt change is gated like a model change, on a fixed model.

    llmops promote --prompt arith-qa --version 3               gate v3 on the champion; move @production if it passes
    llmops evaluate --model tiny-arith@champion --prompt prompts:/arith-qa@candidate     the comparison alone

The candidate prompt and the live one (`production`, else the version the model was trained with)
run on the same model and the same items; the promotion gate judges them with the same paired
statistics, Holm correction and margins as a model (registry/gate.py), plus the prompt's token
budget (`prompt.max_tokens`). The evidence is written as tags on the prompt version and in the
audit log (under `prompt:<name>`); `production` moves only if the gate passes, or by a release
manager with a reason. The champion's card then names the live prompt version.
"""

from __future__ import annotations

from dataclasses import dataclass

from prefect import flow, get_run_logger

from configs.load import check_run_config, default_config
from configs.schema import RunConfig
from core.errors import UserError
from core.paths import llmops_home
from flows.evaluate import run_evaluation
from flows.train import resolve_base
from registry import models, prompts
from registry.audit import actor
from registry.contenders import Contender, base_for, eval_split, version_prompt
from registry.gate import Check, decide
from registry.promotion import apply_prompt_decision
from tasks.prompts import render_prompt


def template_tokens(folder: str, template: str) -> int:
    """Tokens the template adds around a question, counted by the model's own tokenizer."""
    from tasks.model.load import load_tokenizer

    return len(load_tokenizer(folder)(render_prompt(template, ""), add_special_tokens=False)["input_ids"])


def candidate_prompt(config: RunConfig, prompt: str) -> prompts.PromptVersion:
    """The prompt to try: a reference, or the config's template (registered once, aliased `candidate`)."""
    if prompt:
        return prompts.load_prompt(prompt if "/" in prompt or "@" in prompt else f"{config.prompt.name}@{prompt}")
    found = prompts.resolve_prompt(config.prompt.name, config.prompt.template)
    prompts.set_prompt_alias(found.name, "candidate", found.version)
    return found


def budget_check(config: RunConfig, folder: str, template: str) -> Check | None:
    if config.prompt.max_tokens is None:
        return None
    n = template_tokens(folder, template)
    return Check(
        "prompt.max_tokens",
        n <= config.prompt.max_tokens,
        f"{n} tokens around the question vs budget {config.prompt.max_tokens}",
        value=float(n),
    )


def compare_prompts(config: RunConfig, model: str, prompt: str, dataset: str = "", parent_run_id: str | None = None):
    """Runs the champion (or `model`) with the candidate and the live prompt; returns both and the gate."""
    version = models.resolve_version(model or f"{config.registry.model_name}@champion")
    _, folder = models.resolve_model(f"{version.name}/{version.version}", llmops_home() / "cache" / "models")
    candidate = candidate_prompt(config, prompt)
    live = prompts.live_prompt(candidate.name) or version_prompt(version, config)
    if live.ref == candidate.ref:
        raise UserError(
            f"prompt {candidate.ref}", "is already the live prompt", "change prompt.template, or name another version"
        )
    base = base_for(version, lambda: resolve_base(config))
    who = {"candidate": Contender(folder, candidate, version, base), "champion": Contender(folder, live, version, base)}
    tags = {
        "llmops.model_name": version.name,
        "llmops.model_version": str(version.version),
        "llmops.prompt_candidate": candidate.ref,
        "llmops.prompt_live": live.ref,
    }
    evaluated = run_evaluation(config, who, eval_split(dataset, version, config), tags, parent_run_id)
    gate = decide(config.gate, evaluated.results)
    check = budget_check(config, folder, candidate.template)
    if check is not None:
        gate.checks.append(check)
        if not check.passed:
            gate.decision = "reject"
    return version, candidate, live, evaluated, gate


@flow(name="prompt")
def prompt_flow(
    prompt: str = "",
    model: str = "",
    dataset: str = "",
    apply: bool = True,
    config: RunConfig = default_config(),
    parent_run_id: str | None = None,
) -> dict:
    """Gate a prompt version on a fixed model, with the model gate's statistics; move `production` if it passes.

    Args:
        prompt: the candidate: NAME/VERSION, NAME@ALIAS or prompts:/...; empty = the config's prompt.template
            (registered as a new version when its text is new).
        model: the model both prompts run on; empty = the champion of registry.model_name.
        dataset: eval items (hash, `latest` or a JSONL file); empty = the split the model was trained with.
        apply: move the `production` alias when the gate passes (false: compare only).
        config: the run config; `prompt`, `gate` and `eval` are what this stage reads.
        parent_run_id: MLflow run to nest this run under (leave empty).
    """
    check_run_config(config)
    logger = get_run_logger()
    version, candidate, live, evaluated, gate = compare_prompts(config, model, prompt, dataset, parent_run_id)
    if apply:
        apply_prompt_decision(
            version,
            candidate,
            live,
            gate.decision,
            "gate",
            "; ".join(gate.reasons()) or "all gate checks passed",
            evaluated.run_id,
            gate,
        )
    logger.info(f"prompt {candidate.ref} vs live {live.ref} on {version.name} v{version.version}: {gate.decision}")
    return {
        "decision": gate.decision,
        "candidate": candidate.ref,
        "live": live.ref,
        "gate": gate.to_dict(),
        "evaluation": evaluated.run_id,
        "summary": evaluated.summary,
        "model_version": version.version,
    }


@dataclass(frozen=True)
class HandPromotion:
    """A prompt made live by a release manager, and what was live before it."""

    candidate: prompts.PromptVersion
    before: prompts.PromptVersion | None  # the version @production had; None when none had it
    champion_prompt: prompts.PromptVersion  # what the champion served before: @production, else its own


def promote_prompt_by_hand(config: RunConfig, name: str, number: int, reason: str) -> HandPromotion:
    """`production` to `name`/`number` on the champion, recorded with the reason, without the gate."""
    candidate = prompts.load_prompt(f"{name}/{number}")
    version = models.resolve_version(f"{config.registry.model_name}@champion")
    aliased = prompts.live_prompt(name)
    live = aliased or version_prompt(version, config)
    apply_prompt_decision(version, candidate, live, "promote", actor(), reason, None, None)
    return HandPromotion(candidate, aliased, live)
