"""The command line: a --help that teaches, answered without importing the heavy stack."""

from __future__ import annotations

import subprocess
import sys


def test_help_lists_every_command_fast():
    out = subprocess.run(
        [sys.executable, "-c", "import sys; from llmops.cli import main; main(['--help'])"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    for command in ("nightly", "curate", "train", "evaluate", "promote", "models", "serve", "drift"):
        assert command in out.stdout
    assert "examples:" in out.stdout and "LLMOPS_HOME" in out.stdout


def test_help_does_not_import_torch_or_prefect():
    code = (
        "import sys\nfrom llmops.cli import build_parser\nbuild_parser()\n"
        "print(sorted(m for m in ('torch','prefect','mlflow','trl') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "[]"


def test_serve_without_server_says_what_to_do(tmp_path):
    """With the home's own server turned off, there is no server the UI could share with it."""
    env = {"LLMOPS_HOME": str(tmp_path), "PATH": "/usr/bin:/bin", "LLMOPS_PREFECT_SERVER": "ephemeral"}
    out = subprocess.run(
        [sys.executable, "-m", "llmops.cli", "serve"], capture_output=True, text=True, env=env, timeout=60
    )
    assert out.returncode == 2 and "PREFECT_API_URL" in out.stderr
