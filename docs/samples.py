"""The README's `make run` sample, regenerated from a real run so that it cannot drift from the code.

    .venv/bin/python docs/samples.py               # run the nightly on a fresh home, rewrite the README block
    .venv/bin/python docs/samples.py --check       # the same run; exit 1 if the README's block differs
    .venv/bin/python docs/samples.py --from OUT    # rewrite from a `llmops nightly` stdout already captured

The block is the fenced one after the line "`make run` ends like this:". It is what `llmops nightly
--config configs/nightly.yaml` prints at its end on an empty LLMOPS_HOME (llmops/commands/nightly.py,
`summary`), with the two things that differ per run written as `…`: the parent run's id and the
home's path (as `…/.llmops`, the default home of `make run`). The scores are deterministic: two runs
on two fresh homes print the same block. The run takes about 3 minutes of CPU on 2 cores, and stops
the Prefect server it started on its temporary home.

tests/flows/test_nightly.py holds the README block against what the printer makes of the test
suite's own (smaller) nightly: the same lines, metrics and columns, digits aside (`shape`). A changed
printer, metric or gate line thus fails the suite; changed scores are caught by `--check`.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
MARKER = "`make run` ends like this:"
FIRST = "== nightly finished =="


def summary_of(stdout: str) -> str:
    """The nightly's closing summary out of everything it printed."""
    if FIRST not in stdout:
        raise SystemExit(f"no {FIRST!r} in the output: the nightly did not finish")
    return FIRST + stdout.split(FIRST, 1)[1].rstrip("\n")


def normalise(text: str, home: str | Path) -> str:
    """The run's id and its home's path written as `…`, the way the README shows them."""
    text = re.sub(r"(MLflow parent run: )[0-9a-f]{32}", r"\1…", text)
    return text.replace(str(Path(home).resolve()), "…/.llmops").replace(str(home), "…/.llmops")


def shape(text: str) -> str:
    """The text with every digit and sign of a number made alike: what stays is the printer's layout,
    the metric names and the gate's lines, which a smaller run of the same code prints the same."""
    return re.sub(r"\d", "9", re.sub(r"[+-](?=\d)", "±", text))


def _fence(readme: str) -> tuple[int, int]:
    """Start and end (character offsets) of the sample's body inside the README."""
    at = readme.find(MARKER)
    if at < 0:
        raise SystemExit(f"README.md has no line with {MARKER!r}")
    start = readme.index("```\n", at) + len("```\n")
    return start, readme.index("\n```", start)


def readme_block(readme: str) -> str:
    start, end = _fence(readme)
    return readme[start:end]


def with_block(readme: str, block: str) -> str:
    start, end = _fence(readme)
    return readme[:start] + block + readme[end:]


def run_nightly(home: Path) -> str:
    """`make run`'s command on `home`; returns its stdout. Its Prefect server is stopped after."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "MLFLOW_", "LLMOPS_"))}
    env["LLMOPS_HOME"] = str(home)
    cli = [sys.executable, "-m", "llmops.cli"]
    try:
        done = subprocess.run(
            [*cli, "nightly", "--config", "configs/nightly.yaml"], cwd=ROOT, env=env, capture_output=True, text=True
        )
    finally:
        subprocess.run([*cli, "stop", "--force"], cwd=ROOT, env=env, capture_output=True)
    if done.returncode != 0:
        raise SystemExit(f"llmops nightly failed (exit {done.returncode}):\n{done.stderr[-3000:]}")
    return done.stdout


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare only; exit 1 when the README differs")
    parser.add_argument("--from", dest="source", type=Path, help="stdout of a `llmops nightly` run, already captured")
    parser.add_argument("--home", type=Path, help="the LLMOPS_HOME that run used (with --from), or one to run on")
    args = parser.parse_args()
    if args.source:
        if not args.home:
            parser.error("--from needs --home: the LLMOPS_HOME of that run, to write it as …")
        stdout, home = args.source.read_text(), args.home
    else:
        home = args.home or Path(tempfile.mkdtemp(prefix="llmops-readme-sample-")) / "home"
        if home.exists() and any(home.iterdir()):
            raise SystemExit(f"{home} is not empty: the sample is the run of an empty home")
        print(f"running the nightly on {home} ...", file=sys.stderr)
        stdout = run_nightly(home)
    block = normalise(summary_of(stdout), home)
    readme = README.read_text()
    if readme_block(readme) == block:
        print("README.md: the `make run` sample is up to date")
        return 0
    if args.check:
        print(f"README.md: the `make run` sample differs; the run printed:\n{block}")
        return 1
    README.write_text(with_block(readme, block))
    print(f"README.md: rewrote the `make run` sample:\n{block}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
