"""`llmops promote` and `llmops rollback`: the gate, and a release manager's hand on the aliases."""

from __future__ import annotations

from llmops.commands.common import add_config_args, load


def register(sub) -> None:
    import argparse

    p = sub.add_parser(
        "promote",
        help="gate a trained version, or (release managers) promote a version or prompt by hand",
        epilog="examples:\n"
        "  llmops promote --train-run RUN_ID                      gate the version that run registered\n"
        "  llmops promote --model tiny-arith --version 4 --reason 'approved after review'\n"
        "  llmops promote --prompt arith-qa --version 3            gate prompt v3 on the champion;\n"
        "                                                          moves @production if it passes\n"
        "  llmops promote --prompt arith-qa --version 3 --reason '...'   a release manager's prompt promotion",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_config_args(p)
    p.add_argument(
        "--train-run", metavar="RUN_ID", help="MLflow run id of a `train` run: gate the version it registered"
    )
    p.add_argument(
        "--evaluation", metavar="RUN_ID", default="", help="with --train-run: the evaluate run to use as evidence"
    )
    p.add_argument("--model", metavar="NAME", help="registered model name (with --version: promote by hand)")
    p.add_argument(
        "--prompt",
        metavar="NAME",
        help="a registered prompt (with --version: gate that version, or promote by hand with --reason)",
    )
    p.add_argument("--version", type=int, metavar="N", help="the model or prompt version")
    p.add_argument("--reason", default="", help="why (recorded in the audit log and on the version)")
    p.set_defaults(run=run)
    p = sub.add_parser(
        "rollback",
        help="move `champion` back to the `previous` version and record why",
        description="Moves `champion` back to the version holding `previous`, and records who and why.\n"
        "When the model's prompt has a `production` alias, it moves back too, to the prompt the\n"
        "restored version served. Rolling back consumes `previous`: a second one in a row is refused.",
        epilog="examples:\n"
        "  llmops rollback --model tiny-arith --reason 'bad answers in production'\n"
        "  llmops models history tiny-arith      what was done, by whom, and why",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--model", metavar="NAME", required=True, help="the registered model (see `llmops models`)")
    p.add_argument("--reason", required=True, help="why (recorded in the audit log and on the version)")
    p.set_defaults(run=run_rollback)


def run(args) -> int:
    from core.errors import UserError

    if args.prompt:
        if args.version is None:
            raise UserError(
                "--prompt", "needs --version N (the prompt version to promote)", "see `llmops promote --help`"
            )
        return promote_prompt(load(args), args.prompt, args.version, args.reason)
    if args.model or args.version is not None:
        return _promote_by_hand(args)
    if not args.train_run:
        raise UserError(
            "llmops promote",
            "says nothing to promote",
            "give --train-run RUN_ID, --model NAME --version N --reason TEXT, or --prompt NAME --version N",
        )
    config = load(args)
    from flows.promote import promote_flow

    p = promote_flow(config=config, train_run=args.train_run, evaluation=args.evaluation)
    print(
        f"{p['model_name']} v{p['version']}: {p['decision']}  (evidence: evaluate run {p['evaluation']}; "
        f"MLflow run {p['run_id']})"
    )
    if p["decided_by"] != "gate":
        print(f"  decided by {p['decided_by']} (gate verdict {p['verdict']}): {p['reason']}")
    for check in p["gate"]["checks"]:
        if not check["passed"] or check["name"] == "inconclusive":
            print(f"  {check['name']}: {check['detail']}")
    return 0


def promote_prompt(config, name: str, number: int, reason: str) -> int:
    """`llmops promote --prompt NAME --version N [--reason TEXT]`: by hand with a reason, else gated."""
    from registry.prompts import LIVE_ALIAS

    if reason.strip():
        from flows.prompt import promote_prompt_by_hand

        done = promote_prompt_by_hand(config, name, number, reason)
        # With no version @production yet, the champion served its own prompt: say so rather than
        # naming that version as if it had held the alias.
        before = done.before.ref if done.before else f"none (the champion used its own, {done.champion_prompt.ref})"
        print(f"prompt {done.candidate.ref} is live (@{LIVE_ALIAS}), promoted by hand; @{LIVE_ALIAS} before: {before}")
        return 0
    from flows.prompt import prompt_flow

    print_prompt_result(prompt_flow(config=config, prompt=f"{name}/{number}"))
    return 0


def prompt_ab(config, model: str, prompt: str, dataset: str) -> int:
    """`llmops evaluate --model M --prompt P`: the comparison, with no alias moved."""
    from flows.prompt import prompt_flow

    print_prompt_result(prompt_flow(config=config, prompt=prompt, model=model, dataset=dataset, apply=False))
    return 0


def print_prompt_result(result: dict) -> None:
    print(
        f"prompt {result['candidate']} vs live {result['live']} "
        f"(model v{result['model_version']}): {result['decision']}"
    )
    for name, c in result["gate"]["comparisons"].items():
        print(
            f"  {name}: delta {c['delta']:+.3f} [{c['ci_low']:+.3f}, {c['ci_high']:+.3f}], "
            f"p={c.get('p_adjusted', c['p_value']):.4f}"
        )
    for check in result["gate"]["checks"]:
        if not check["passed"] or check["name"] in ("inconclusive", "prompt.max_tokens"):
            print(f"  {check['name']}: {check['detail']}")
    print(f"evidence: evaluate run {result['evaluation']}")


def _promote_by_hand(args) -> int:
    from core.errors import UserError
    from registry.audit import actor
    from registry.promotion import promote_by_hand

    if not (args.model and args.version is not None):
        raise UserError("llmops promote", "promoting by hand needs --model NAME and --version N", "and --reason TEXT")
    replaced = promote_by_hand(args.model, args.version, actor(), args.reason)
    print(f"{args.model} v{args.version} is champion" + (f"; v{replaced} kept as `previous`" if replaced else ""))
    return 0


def run_rollback(args) -> int:
    from registry import models, prompts
    from registry.audit import actor
    from registry.promotion import rollback, served_prompt

    demoted, restored = rollback(args.model, actor(), args.reason)
    print(f"{args.model}: champion moved back from v{demoted} to v{restored}")
    served = served_prompt(models.get_version(args.model, restored))
    live = prompts.live_prompt(served[0]) if served else None
    if live is not None:
        print(f"prompt {live.name} @{prompts.LIVE_ALIAS}: v{live.version}, the prompt v{restored} served")
    return 0
