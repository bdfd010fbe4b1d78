"""What the MLflow client's REST calls are in IAM: a table from MLflow's tracking REST routes to
the `sagemaker-mlflow:` actions a SageMaker managed tracking server authorizes them with.

The plugin signs each REST call and the server checks the action named after the MLflow
operation (Service Authorization Reference, "Actions, resources, and condition keys for
Amazon SageMaker with MLflow"; MLflow's REST API reference for the routes). The pipelines'
execution role and the team roles are granted MLFLOW_ACTIONS on the environment's tracking
server; tests/pipelines/test_mlflow_permissions.py records the calls the step code really
makes and fails on one the table does not know or the roles are not granted.
"""

from __future__ import annotations

import re

_PREFIX = r"/api/[23]\.0/mlflow"
_ID = r"[^/]+"
# (method, route pattern after /api/2.0/mlflow) -> action. Unconfirmed in AWS's text: the
# LoggedModel write actions (CreateLoggedModel, FinalizeLoggedModel, SetLoggedModelTags,
# LogLoggedModelParams, LogOutputs) follow the reference's naming of the read ones
# (GetLoggedModel, SearchLoggedModels, ListLoggedModelArtifacts).
ROUTES: tuple[tuple[str, str, str], ...] = (
    ("POST", "/experiments/create", "CreateExperiment"),
    ("GET", "/experiments/get", "GetExperiment"),
    ("GET", "/experiments/get-by-name", "GetExperimentByName"),
    ("POST", "/experiments/search", "SearchExperiments"),
    ("POST", "/experiments/set-experiment-tag", "SetExperimentTag"),
    ("POST", "/runs/create", "CreateRun"),
    ("POST", "/runs/update", "UpdateRun"),
    ("POST", "/runs/delete", "DeleteRun"),
    ("GET", "/runs/get", "GetRun"),
    ("POST", "/runs/search", "SearchRuns"),
    ("POST", "/runs/log-metric", "LogMetric"),
    ("POST", "/runs/log-parameter", "LogParam"),
    ("POST", "/runs/log-batch", "LogBatch"),
    ("POST", "/runs/log-model", "LogModel"),
    ("POST", "/runs/log-inputs", "LogInputs"),
    ("POST", "/runs/outputs", "LogOutputs"),
    ("POST", "/runs/set-tag", "SetTag"),
    ("POST", "/runs/delete-tag", "DeleteTag"),
    ("GET", "/metrics/get-history", "GetMetricHistory"),
    ("POST", "/logged-models", "CreateLoggedModel"),
    ("POST", "/logged-models/search", "SearchLoggedModels"),
    ("GET", f"/logged-models/{_ID}", "GetLoggedModel"),
    ("PATCH", f"/logged-models/{_ID}", "FinalizeLoggedModel"),
    ("PATCH", f"/logged-models/{_ID}/tags", "SetLoggedModelTags"),
    ("POST", f"/logged-models/{_ID}/params", "LogLoggedModelParams"),
    ("POST", "/registered-models/create", "CreateRegisteredModel"),
    ("POST", "/model-versions/create", "CreateModelVersion"),
)
_COMPILED = tuple(
    (method, re.compile(f"{_PREFIX}{route}"), f"sagemaker-mlflow:{action}")
    for method, route, action in ROUTES
)

# What the jobs' and the team pods' roles are granted: every action of the table, plus the UI.
MLFLOW_ACTIONS = sorted({action for _, _, action in _COMPILED} | {"sagemaker-mlflow:AccessUI"})


def action_for(method: str, endpoint: str) -> str | None:
    """The action a REST call needs, or None for a route the table does not know."""
    path = endpoint.split("?", 1)[0]
    for route_method, pattern, action in _COMPILED:
        if route_method == method.upper() and pattern.fullmatch(path):
            return action
    return None
