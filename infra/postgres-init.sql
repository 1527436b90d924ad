-- Run once by the postgres image, on the first start of an empty data volume
-- (mounted at /docker-entrypoint-initdb.d/ by infra/docker-compose.yaml).
-- One database per server: MLflow's and Prefect's migrations each own their schema, and
-- dropping or restoring one never touches the other. All belong to $POSTGRES_USER.
-- `mlflow_auth` holds the MLflow basic-auth app's accounts and permissions.
-- To re-run it, remove the volume: docker compose -f infra/docker-compose.yaml down -v
CREATE DATABASE mlflow;
CREATE DATABASE mlflow_auth;
CREATE DATABASE prefect;
