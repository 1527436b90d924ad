"""Registry changes are all-or-nothing: a failure at any step of a promotion leaves versions, aliases,
tags, cards and the audit log exactly as they were; bad references are one clear error."""

from __future__ import annotations

import pytest

from core.errors import UserError

MODEL = "promotion-test"


def snapshot() -> dict:
    from registry import models
    from registry.audit import read_audit
    from registry.tracking import client

    # an absent description and an empty one read the same in MLflow (an update cannot set None back)
    versions = {
        v.version: (
            sorted(v.aliases),
            dict(v.tags),
            client().get_model_version(MODEL, str(v.version)).description or "",
        )
        for v in models.list_versions(MODEL)
    }
    return {"versions": versions, "audit": read_audit(MODEL)}


def register(model: str, folder, tags: dict[str, str] | None = None) -> int:
    """A candidate version of `model`, registered from a train run (in experiment `model`) that logged an
    adapter folder; returns its number."""
    from registry import tracking
    from registry.artifacts import log_trained_folder
    from registry.promotion import register_candidate

    (folder / "adapter_config.json").write_text("{}")
    with tracking.stage_run(model, "train") as run_id:
        source = log_trained_folder(run_id, str(folder))
    return register_candidate(model, source, run_id, {"lineage.train_run_id": run_id} | (tags or {})).version


@pytest.fixture(scope="module")
def registry_with_champion(tmp_path_factory) -> dict:
    """v1 champion (promoted through the routine), v2 the challenger."""
    from registry.promotion import apply_decision

    folder = tmp_path_factory.mktemp("adapter")
    versions = [register(MODEL, folder) for _ in range(2)]
    apply_decision(MODEL, versions[0], "promote", "gate", "first model", tags={"gate.decision": "promote"})
    return {"v1": versions[0], "v2": versions[1]}


def fail_on(monkeypatch, module, name: str, when=lambda *a, **k: True):
    original = getattr(module, name)

    def broken(*args, **kwargs):
        if when(*args, **kwargs):
            raise RuntimeError(f"injected failure in {name}")
        return original(*args, **kwargs)

    monkeypatch.setattr(module, name, broken)


STEPS = {
    "tags": ("registry.models", "tag_version", lambda *a, **k: True),
    "card": ("registry.models", "describe_version", lambda *a, **k: True),
    "audit": ("registry.promotion", "record_decision", lambda *a, **k: True),
    "alias previous": ("registry.models", "set_alias", lambda name, alias, version: alias == "previous"),
    "alias champion": ("registry.models", "set_alias", lambda name, alias, version: alias == "champion"),
}


@pytest.mark.parametrize("step", list(STEPS))
def test_a_failure_at_any_step_of_a_promotion_changes_nothing(registry_with_champion, monkeypatch, step):
    import importlib

    from registry.promotion import apply_decision

    before = snapshot()
    module, name, when = STEPS[step]
    fail_on(monkeypatch, importlib.import_module(module), name, when)
    with pytest.raises(RuntimeError, match="injected failure"):
        apply_decision(
            MODEL,
            registry_with_champion["v2"],
            "promote",
            "gate",
            "better",
            evidence_run_id=None,
            tags={"gate.decision": "promote", "gate.x.delta": "0.1"},
            card="# card of v2",
        )
    monkeypatch.undo()
    assert snapshot() == before


def test_the_same_promotion_without_a_failure_moves_both_aliases(registry_with_champion):
    from registry import models
    from registry.promotion import apply_decision, rollback

    v1, v2 = registry_with_champion["v1"], registry_with_champion["v2"]
    assert apply_decision(MODEL, v2, "promote", "gate", "better", tags={"gate.decision": "promote"}, card="# v2") == v1
    assert models.aliases_of(MODEL) == {"champion": v2, "challenger": v2, "previous": v1}
    assert models.get_version(MODEL, v2).tags["gate.decision"] == "promote"
    assert rollback(MODEL, "user:rm", "worse in production") == (v2, v1)
    assert models.aliases_of(MODEL) == {"champion": v1, "challenger": v2}


def test_promoting_a_version_that_does_not_exist_changes_nothing(registry_with_champion):
    from registry.promotion import promote_by_hand

    before = snapshot()
    with pytest.raises(UserError, match=r"promotion-test has no version 999 \(it has v2.*v1"):
        promote_by_hand(MODEL, 999, "user:rm", "typo")
    assert snapshot() == before


def test_rollback_with_nowhere_to_go_is_refused(registry_with_champion):
    from registry.promotion import rollback

    with pytest.raises(UserError, match="no previous version to roll back to"):
        rollback(MODEL, "user:rm", "again")
    with pytest.raises(UserError, match="no registered model named 'nope'"):
        rollback("nope", "user:rm", "x")


def test_bad_model_references_are_one_clear_line(registry_with_champion, capsys):
    from llmops.cli import main

    before = snapshot()
    assert main(["promote", "--model", MODEL, "--version", "999", "--reason", "typo"]) == 2
    assert main(["evaluate", "--model", f"models:/{MODEL}/999"]) == 2
    assert main(["evaluate", "--model", "no-such-model@champion"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 3 and all(line.startswith("error: model") for line in err)
    assert "has no version 999" in err[0] and "no registered model named 'no-such-model'" in err[2]
    assert "Traceback" not in "\n".join(err)
    assert snapshot() == before


def test_a_champion_moved_in_the_mlflow_ui_is_recorded_as_a_manual_promotion(registry_with_champion, capsys):
    from llmops.cli import main
    from registry import models
    from registry.audit import read_audit
    from registry.promotion import reconcile_champion
    from registry.tracking import client

    v1, v2 = registry_with_champion["v1"], registry_with_champion["v2"]
    assert reconcile_champion(MODEL) is None  # the alias is where the log says
    client().set_registered_model_alias(MODEL, "champion", str(v2))  # what the MLflow UI does
    assert main(["models", MODEL]) == 0
    out = capsys.readouterr().out
    assert (
        f"{MODEL} v{v2} was made champion outside llmops" in out
        and f"--model {MODEL}@champion --against previous" in out
    )
    last = read_audit(MODEL)[-1]
    assert (last["action"], last["version"], last["metrics"]["replaced"]) == ("manual-promotion", v2, v1)
    assert (
        models.aliases_of(MODEL)["previous"] == v1
        and models.get_version(MODEL, v2).tags["gate.decision"] == "manual-promotion"
    )
    assert reconcile_champion(MODEL) is None  # recorded once


ROLLED = "rollback-prompt-test"


@pytest.fixture()
def champion_with_a_newer_prompt(tmp_path) -> dict:
    """v1 trained with prompt /1; v2 promoted over it, then the prompt gate made /2 live on v2."""
    from registry import models, prompts
    from registry.promotion import apply_decision, apply_prompt_decision

    prompt = f"{ROLLED}-{tmp_path.name}"
    first = prompts.register_prompt_template(prompt, "Q: {{question}}\nA:")
    second = prompts.register_prompt_template(prompt, "Answer with the number only. {{question}}")
    versions = [register(ROLLED, tmp_path, {"lineage.prompt": f"{prompt}/{first}"}) for _ in range(2)]
    for v in versions:
        apply_decision(ROLLED, v, "promote", "gate", "better", tags={"gate.decision": "promote"})
    champion = models.get_version(ROLLED, versions[1])
    apply_prompt_decision(
        champion,
        prompts.load_prompt(f"{prompt}/{second}"),
        prompts.load_prompt(f"{prompt}/{first}"),
        "promote",
        "gate",
        "shorter answers",
        None,
        None,
    )
    return {"prompt": prompt, "first": first, "second": second, "v1": versions[0], "v2": versions[1]}


def test_a_rollback_takes_the_live_prompt_back_with_the_model(champion_with_a_newer_prompt, capsys):
    from llmops.cli import main
    from registry import models, prompts
    from registry.audit import read_audit

    c = champion_with_a_newer_prompt
    assert prompts.live_prompt(c["prompt"]).version == c["second"]
    assert main(["rollback", "--model", ROLLED, "--reason", "worse in production"]) == 0
    assert models.aliases_of(ROLLED)["champion"] == c["v1"]
    assert prompts.live_prompt(c["prompt"]).version == c["first"]  # the prompt v1 served, not the one gated on v2
    out = capsys.readouterr().out
    assert f"prompt {c['prompt']} @production: v{c['first']}, the prompt v{c['v1']} served" in out
    last = read_audit(f"prompt:{c['prompt']}")[-1]
    assert (last["action"], last["version"], last["metrics"]["replaced"]) == ("rollback", c["first"], c["second"])


def test_a_rollback_that_fails_at_the_prompt_leaves_model_and_prompt_as_they_were(
    champion_with_a_newer_prompt, monkeypatch
):
    from registry import models, prompts
    from registry.audit import read_audit
    from registry.promotion import rollback

    c = champion_with_a_newer_prompt
    aliases, audit = models.aliases_of(ROLLED), read_audit(ROLLED)
    fail_on(monkeypatch, prompts, "set_prompt_alias", lambda name, alias, version: version == c["first"])
    with pytest.raises(RuntimeError, match="injected failure"):
        rollback(ROLLED, "user:rm", "worse in production")
    monkeypatch.undo()
    assert models.aliases_of(ROLLED) == aliases and read_audit(ROLLED) == audit
    assert prompts.live_prompt(c["prompt"]).version == c["second"]


def test_a_promoted_version_takes_the_live_prompt_to_the_one_it_was_gated_with(champion_with_a_newer_prompt, tmp_path):
    """The gate judged the new version with its own prompt: `production` follows, so no untested pair serves."""
    from registry import prompts
    from registry.audit import read_audit
    from registry.promotion import promote_by_hand

    c = champion_with_a_newer_prompt
    v3 = register(ROLLED, tmp_path, {"lineage.prompt": f"{c['prompt']}/{c['first']}"})
    assert promote_by_hand(ROLLED, v3, "user:rm", "approved after review") == c["v2"]
    assert prompts.live_prompt(c["prompt"]).version == c["first"]
    last = read_audit(f"prompt:{c['prompt']}")[-1]
    assert (last["action"], last["version"], last["by"]) == ("promote", c["first"], "user:rm")
    assert last["why"].startswith(f"{ROLLED} v{v3} promoted: approved")


def test_a_champion_moved_in_the_mlflow_ui_takes_the_live_prompt_along_when_recorded(champion_with_a_newer_prompt):
    from registry import prompts
    from registry.promotion import reconcile_champion
    from registry.tracking import client

    c = champion_with_a_newer_prompt
    client().set_registered_model_alias(ROLLED, "champion", str(c["v1"]))  # what the MLflow UI does
    assert reconcile_champion(ROLLED)["version"] == c["v1"]
    assert prompts.live_prompt(c["prompt"]).version == c["first"]


# ------------------------------------------------------------------------ one decision record

DECIDED = "decision-test"
GATE_CARD = "# {v}\n\n## Intended use\nx\n\n## Evaluation\nGate verdict: **{verdict}**\n"


def card_of(version: int) -> str:
    from registry.models import version_description

    return version_description(DECIDED, version)


@pytest.fixture(scope="module")
def decided_champion(tmp_path_factory) -> int:
    from registry.promotion import apply_decision

    v1 = register(DECIDED, tmp_path_factory.mktemp("decided"))
    apply_decision(DECIDED, v1, "promote", "gate", "all gate checks passed", verdict="promote")
    return v1


def test_an_approval_is_the_decision_and_the_gate_verdict_stays_beside_it(decided_champion, tmp_path, capsys):
    """What the pause form's answer does: while waiting the card says so; after it, tags, card and
    `llmops models` show the final decision with who and why, and the gate's needs-approval beside it."""
    from llmops.cli import main
    from registry import models
    from registry.card import with_decision
    from registry.decision import Decision, pending_markdown
    from registry.promotion import apply_decision, show_pending

    v2 = register(DECIDED, tmp_path)
    card = GATE_CARD.format(v=f"{DECIDED} v{v2}", verdict="needs-approval")
    waiting = Decision("needs-approval", "gate", "waiting for a release manager: x", "needs-approval")
    show_pending(
        DECIDED,
        v2,
        {"gate.x.delta": "0.0000"} | waiting.tags(),
        with_decision(card, "t", pending_markdown(["x"], "a form", "noon")),
    )
    assert "waiting for a release manager (a form) until noon" in card_of(v2)
    assert models.aliases_of(DECIDED)["champion"] == decided_champion  # nothing moved while waiting

    assert (
        apply_decision(
            DECIDED,
            v2,
            "promote",
            "user:rm",
            "checked the items by hand",
            tags={"gate.x.delta": "0.0000"},
            card=card,
            verdict="needs-approval",
        )
        == decided_champion
    )
    tags = models.get_version(DECIDED, v2).tags
    assert {k: tags[k] for k in ("gate.decision", "gate.verdict", "gate.decided_by", "gate.reason")} == {
        "gate.decision": "promote",
        "gate.verdict": "needs-approval",
        "gate.decided_by": "user:rm",
        "gate.reason": "checked the items by hand",
    }
    text = card_of(v2)
    assert text.count("## Decision") == 1 and "waiting" not in text
    decision = text.split("## Decision", 1)[1].split("\n## ", 1)[0]
    assert "**promote**, decided by user:rm" in decision and "Reason: checked the items by hand" in decision
    assert "The gate's own verdict: **needs-approval**" in decision
    assert text.index("## Decision") < text.index("## Intended use") and "Gate verdict: **needs-approval**" in text

    assert main(["models", DECIDED]) == 0
    out = capsys.readouterr().out
    line = next(line for line in out.splitlines() if line.startswith(f"  v{v2} "))
    assert "aliases=challenger,champion" in line and "decision=promote" in line
    assert f"  v{v2} " in out and "by user:rm (gate verdict needs-approval): checked the items by hand" in out


def test_a_hand_promotion_rewrites_the_card_and_keeps_the_gate_verdict(decided_champion, tmp_path):
    from registry import models
    from registry.promotion import apply_decision, promote_by_hand

    v = register(DECIDED, tmp_path)
    apply_decision(
        DECIDED,
        v,
        "reject",
        "gate",
        "gain not shown",
        card=GATE_CARD.format(v=f"{DECIDED} v{v}", verdict="reject"),
        verdict="reject",
    )
    assert "**reject**, decided by gate" in card_of(v)
    promote_by_hand(DECIDED, v, "user:rm2", "a pilot on gsm8k")
    tags = models.get_version(DECIDED, v).tags
    assert (tags["gate.decision"], tags["gate.verdict"], tags["gate.decided_by"]) == ("promote", "reject", "user:rm2")
    text = card_of(v)
    assert text.count("## Decision") == 1 and "**promote**, decided by user:rm2" in text
    assert "Reason: a pilot on gsm8k" in text and "The gate's own verdict: **reject**" in text


def test_a_failed_approval_leaves_the_waiting_card_and_tags(decided_champion, tmp_path, monkeypatch):
    import registry.models
    from registry import models
    from registry.promotion import apply_decision

    v = register(DECIDED, tmp_path)
    apply_decision(DECIDED, v, "needs-approval", "gate", "open", card="# c\n", verdict="needs-approval")
    tags, text, aliases = models.get_version(DECIDED, v).tags, card_of(v), models.aliases_of(DECIDED)
    fail_on(monkeypatch, registry.models, "set_alias", lambda name, alias, version: alias == "champion")
    with pytest.raises(RuntimeError, match="injected failure"):
        apply_decision(DECIDED, v, "promote", "user:rm", "ok", verdict="needs-approval")
    monkeypatch.undo()
    assert (models.get_version(DECIDED, v).tags, card_of(v), models.aliases_of(DECIDED)) == (tags, text, aliases)


# ---------------------------------------------------------------- read-only commands, unknown model


def test_an_unknown_model_is_one_line_and_leaves_nothing_behind(registry_with_champion, llmops_home, capsys):
    from llmops.cli import main
    from registry.tracking import client

    name = "no-such-model"
    for argv in (
        ["models", "history", name],
        ["models", name],
        ["rollback", "--model", name, "--reason", "x"],
        ["promote", "--model", name, "--version", "1", "--reason", "x"],
    ):
        assert main(argv) == 2, argv
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and f"no registered model named '{name}'" in err[0] and MODEL in err[0], (argv, err)
    assert not list((llmops_home / "locks").glob(f"*{name}*"))
    audit = client().get_experiment_by_name("llmops-audit")
    assert not client().search_runs([audit.experiment_id], f"tags.`llmops.audit_model` = '{name}'")


def test_read_only_commands_on_a_fresh_home_create_nothing(tmp_path):
    import os
    import subprocess
    import sys
    from pathlib import Path

    home = tmp_path / "home"
    env = {k: v for k, v in os.environ.items() if k not in ("MLFLOW_TRACKING_URI", "PREFECT_HOME")}
    env["LLMOPS_HOME"] = str(home)
    root = Path(__file__).resolve().parents[2]
    for argv in (["models", "history", "tiny-arith"], ["models", "tiny-arith"]):
        out = subprocess.run(
            [sys.executable, "-m", "llmops.cli", *argv], env=env, cwd=root, capture_output=True, text=True, timeout=120
        )
        assert out.returncode == 2 and out.stderr.splitlines() == [
            "error: model 'tiny-arith': no registered model named 'tiny-arith' (registered: none yet); "
            "see `llmops models`, or run `llmops nightly` to register one"
        ], out.stderr
    listing = subprocess.run(
        [sys.executable, "-m", "llmops.cli", "models"], env=env, cwd=root, capture_output=True, text=True, timeout=120
    )
    assert listing.returncode == 0 and "no registered models yet" in listing.stdout
    assert sorted(p.name for p in home.iterdir()) == []
