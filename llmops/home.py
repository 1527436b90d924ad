"""What the `llmops` command does around every run: prepare the home for flows, and keep library
noise and Prefect's tracebacks of user errors out of the terminal.

Where the home is and the environment every entry point sets first are on the ground floor
(`core/paths.py`); this module is the CLI's own.
"""

from __future__ import annotations

import logging
import re


def prepare_home(start_server: bool = True) -> None:
    """What a command that runs flows needs, once its config has been found good.

    Not part of `setup_environment`: a bad config must fail before anything is started or
    written. Points Prefect at the home's server (llmops/server.py), creates the MLflow store from
    one process, and marks KILLED the runs that processes killed earlier left RUNNING. Without
    `start_server`, a home whose server is not running keeps Prefect's per-process one, which ends
    with the command.
    """
    import sys

    from core.process import is_alive
    from llmops.server import ensure_server
    from registry.tracking import init_store, reap_dead_runs

    ensure_server(start=start_server)
    init_store()
    reaped = reap_dead_runs(is_alive)
    if reaped:
        print(
            f"marked {len(reaped)} MLflow run(s) KILLED that a killed process had left RUNNING: " + ", ".join(reaped),
            file=sys.stderr,
        )


class UserErrorLogFilter:
    """Drops Prefect's own report of a `UserError` raised in a flow or task.

    Prefect 3.9 logs a failing run three ways, each to stderr: "Task run failed with exception"
    and "Encountered exception during execution" with the traceback (exc_info), then "Finished in
    state Failed('... encountered an exception <Type>: <message>')". For a UserError the CLI prints
    the one line that matters itself, so all three are noise; the run's state still records it.
    """

    _STATE = re.compile(r"encountered an exception:? (\w+):")

    def filter(self, record: logging.LogRecord) -> bool:
        from core.errors import UserError

        if record.exc_info and isinstance(record.exc_info[1], UserError):
            return False
        found = self._STATE.search(record.getMessage())
        return not (found and found.group(1) in _names(UserError))


def _names(cls: type) -> set[str]:
    return {cls.__name__}.union(*(_names(sub) for sub in cls.__subclasses__()))


# The loggers Prefect's flow and task engines log through (prefect/logging/logging.yml).
RUN_LOGGERS = ("prefect.flow_runs", "prefect.task_runs")
_USER_ERROR_FILTER = UserErrorLogFilter()


def quiet_libraries(debug: bool = False) -> None:
    """Silences warnings that say nothing actionable about a local run (each was read and judged),
    and Prefect's tracebacks of user errors; `debug` puts those tracebacks back."""
    import warnings

    for name in RUN_LOGGERS:  # a logger's filters survive Prefect's dictConfig; its handlers would not
        if debug:
            logging.getLogger(name).removeFilter(_USER_ERROR_FILTER)
        else:
            logging.getLogger(name).addFilter(_USER_ERROR_FILTER)

    # bitsandbytes on CPU: an optional kernel package is missing; the slower path works.
    logging.getLogger("bitsandbytes.backends.cpu.ops").setLevel(logging.ERROR)
    # MLflow looks for a hub model card and licence for the local model folder.
    logging.getLogger("mlflow.transformers").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", category=FutureWarning, module="transformers")
    warnings.filterwarnings("ignore", category=UserWarning, module="mlflow")
    warnings.filterwarnings("ignore", message=".*tensor.detach.*")
