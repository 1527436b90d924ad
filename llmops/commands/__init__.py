"""One module per `llmops` verb: each has `register(subparsers)` and the function that runs it."""

VERBS = ["nightly", "curate", "train", "evaluate", "promote", "models", "drift", "serve", "worker", "stop"]
