"""`llmops nightly`: curate -> train -> evaluate -> promote, as one flow run."""

from __future__ import annotations

from llmops.commands.common import add_config_args, add_launch_args, load, relaunch_on_nodes, tracking_uri


def register(sub) -> None:
    p = sub.add_parser("nightly", help="curate -> train -> evaluate -> promote, as one flow run")
    add_config_args(p)
    add_launch_args(p)
    p.set_defaults(run=run)


def run(args) -> int:
    if args.nnodes > 1:
        return relaunch_on_nodes(args)
    config = load(args)
    from flows.nightly import nightly_flow

    result = nightly_flow(config)
    print("\n" + summary(result, config.gate.primary, tracking_uri()))
    return 0


def summary(result: dict, primary: str, tracking: str) -> str:
    """What a person reads when the nightly ends. A function of the result alone, so that the README's
    sample (docs/samples.py) is this very text, and a test can hold the two together."""
    promoted = result["promote"]
    lines = ["== nightly finished =="]
    moved = result.get("manual_promotion")
    if moved:
        lines.append(
            f"note: v{moved['version']} was made champion outside llmops; recorded as a manual promotion"
            + (f", compared with v{moved['replaced']} (now `previous`):" if moved.get("evaluation") else "")
        )
        if moved.get("evaluation"):
            lines.append(_score_table(moved["evaluation"]))
    lines.append(_score_table(result["evaluate"].summary))
    ci = (
        f" (95% CI [{result['gain_ci_low']:+.3f}, {result['gain_ci_high']:+.3f}])"
        if result.get("gain_ci_low") is not None
        else ""
    )
    lines.append(f"gain over base on {primary}: {result['gain_over_base']:+.3f}{ci}")
    lines.append(f"registry: {promoted['model_name']} v{promoted['version']} -> {promoted['decision']}")
    for name, c in promoted["gate"]["comparisons"].items():
        mde = f", detectable at this size: {c['mde']:.3f}" if c.get("mde") else ""
        lines.append(
            f"  {name}: delta {c['delta']:+.3f} [{c['ci_low']:+.3f}, {c['ci_high']:+.3f}], "
            f"p={c.get('p_adjusted', c['p_value']):.4f}{mde}"
        )
    for check in promoted["gate"]["checks"]:
        if not check["passed"] or check["name"] == "inconclusive":
            lines.append(f"  {check['name']}: {check['detail']}")
    lines.append(f"MLflow parent run: {result['run_id']}  (tracking: {tracking})")
    return "\n".join(lines)


def _score_table(summary: dict) -> str:
    who = list(summary)
    keys = sorted({k for per in summary.values() for k in per})
    width = max(len(k) for k in keys) if keys else 10
    lines = [" " * width + "  " + "".join(f"{w:>11}" for w in who)]
    lines += [
        f"{k:<{width}}  " + "".join(f"{summary[w][k]:>11.3f}" if k in summary[w] else " " * 11 for w in who)
        for k in keys
    ]
    return "\n".join(lines)
