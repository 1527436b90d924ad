"""The ground floor: what every layer may use, and which imports nothing of the project.

Errors a person can act on (`core.errors`), file locks (`core.locks`), where a home keeps its
state and the environment every entry point sets (`core.paths`), and telling live processes from
dead ones (`core.process`). Layers import strictly downward:

    core -> configs -> tasks -> registry -> flows -> llmops (the CLI) -> bench

`tests/unit/test_layers.py` walks the import graph and fails on any import that points up.
"""
