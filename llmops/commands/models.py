"""`llmops models`: versions and aliases, or one model's decision history."""

from __future__ import annotations

import sys


def register(sub) -> None:
    import argparse

    p = sub.add_parser(
        "models",
        help="list registered models and aliases, or one model's decision history",
        epilog="llmops models                  all models, versions, aliases\n"
        "llmops models history NAME     every promote / reject / rollback, who and why",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("what", nargs="?", default="list", metavar="list|history|NAME")
    p.add_argument("name", nargs="?", help="a registered model (default for list: all)")
    p.set_defaults(run=run)


def run(args) -> int:
    if args.what not in ("list", "history"):  # `llmops models NAME` lists that model
        args.what, args.name = "list", args.what
    from registry.models import list_versions, registered_names
    from registry.promotion import reconcile_champion

    if args.what == "history":
        if not args.name:
            print("error: `llmops models history NAME` needs a model name", file=sys.stderr)
            return 2
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
        print(f"{name}")
        for v in list_versions(name):
            aliases = ",".join(v.aliases) or "-"
            decision = v.tags.get("gate.decision", "-")
            print(
                f"  v{v.version:<4} aliases={aliases:<22} gate={decision:<16} "
                f"dataset={v.lineage.dataset_hash[:12]}"
                f" train_run={v.run_id}"
            )
    return 0


def _notice(name: str, moved: dict | None) -> None:
    if moved:
        print(
            f"note: {name} v{moved['version']} was made champion outside llmops; recorded as a manual promotion "
            f"(was v{moved['replaced']}, now `previous`). Compare them: "
            f"llmops evaluate --model {name}@champion --against previous"
        )
