"""Run: MLFLOW_TRACKING_URI=http://mlflow-host:5000 MLFLOW_TRACKING_USERNAME=admin MLFLOW_TRACKING_PASSWORD=... \
    NEW_USER_PASSWORD=... python infra/mlflow_user.py NAME

Creates an account on an MLflow server that runs the basic-auth app (`--app-name basic-auth`),
as the admin named by MLFLOW_TRACKING_USERNAME/PASSWORD. An existing account is left as it is,
so the compose file can run this at every start. The password comes from the environment so
that it appears in no process list and no shell history.
"""

from __future__ import annotations

import os
import sys


def main(argv: list[str]) -> int:
    from mlflow.exceptions import MlflowException
    from mlflow.server.auth.client import AuthServiceClient

    if len(argv) != 1 or not os.environ.get("NEW_USER_PASSWORD"):
        print(__doc__.split("\n\n")[0], file=sys.stderr)
        return 2
    name = argv[0]
    client = AuthServiceClient(os.environ["MLFLOW_TRACKING_URI"])
    try:
        client.get_user(name)
        print(f"MLflow account {name} exists")
    except MlflowException as err:
        if err.error_code != "RESOURCE_DOES_NOT_EXIST":
            raise
        client.create_user(name, os.environ["NEW_USER_PASSWORD"])
        print(f"MLflow account {name} created")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
