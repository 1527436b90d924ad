"""`llmops models`: versions, aliases and the decision on each, or one model's decision history.

Read-only: a model that does not exist is one line and exit code 2, and nothing is created for it
(no lock, no audit run, no store). The one write is deliberate: a `champion` alias moved outside
llmops is recorded as a manual promotion when it is first seen (registry/promotion.py).
"""

from __future__ import annotations


def register(sub) -> None:
    import argparse

    p = sub.add_parser(
        "models",
        help="list registered models and aliases, or one model's decision history",
        epilog="llmops models                  all models, versions, aliases, the decision on each\n"
        "llmops models NAME             one model\n"
        "llmops models history NAME     every promote / reject / rollback, who and why",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("what", nargs="?", default="list", metavar="list|history|NAME")
    p.add_argument("name", nargs="?", help="a registered model (default for list: all)")
    p.set_defaults(run=run)


def run(args) -> int:
    from core.errors import UserError
    from registry.models import registered_names, require_model
    from registry.promotion import reconcile_champion

    if args.what not in ("list", "history"):  # `llmops models NAME` lists that model
        args.what, args.name = "list", args.what
    if args.what == "history" and not args.name:
        raise UserError("llmops models history", "needs a model name", "e.g. llmops models history tiny-arith")
    if args.name:
        require_model(args.name)
    if args.what == "history":
        from registry.audit import read_audit

        _notice(args.name, reconcile_champion(args.name))
        entries = read_audit(args.name)
        if not entries:
            print(f"no decisions recorded for {args.name}")
        for e in entries:
            version = f"v{e['version']}" if e.get("version") is not None else "-"
            print(
                f"{e['time']}  {e['action']:<16} {version:<5} by {e['by']:<24} {e['why']}"
                + (f"  (evidence run {e['evidence_run_id']})" if e.get("evidence_run_id") else "")
            )
        return 0
    names = [args.name] if args.name else registered_names()
    if not names:
        print("no registered models yet: run `llmops nightly` first")
    for name in names:
        _notice(name, reconcile_champion(name))
        print(name)
        for line in version_lines(name):
            print(line)
    return 0


def version_lines(name: str) -> list[str]:
    """Each version: aliases, the decision that stands and, when a person made it, who, why and the
    gate's own verdict beside it."""
    from registry.decision import Decision
    from registry.models import list_versions

    lines = []
    for v in list_versions(name):
        record = Decision.from_tags(v.tags)
        decision = record.action if record else "-"
        lines.append(
            f"  v{v.version:<4} aliases={','.join(v.aliases) or '-':<22} decision={decision:<16} "
            f"dataset={v.lineage.dataset_hash[:12]} train_run={v.run_id}"
        )
        if record is not None and record.by_a_person:
            verdict = f"gate verdict {record.verdict}" if record.verdict else "not gated"
            lines.append(f"        by {record.by} ({verdict}): {record.reason}")
    return lines


def _notice(name: str, moved: dict | None) -> None:
    if moved:
        print(
            f"note: {name} v{moved['version']} was made champion outside llmops; recorded as a manual promotion "
            f"(was v{moved['replaced']}, now `previous`). Compare them: "
            f"llmops evaluate --model {name}@champion --against previous"
        )
