"""The MLflow calls the step code makes are granted to the roles that make them.

The step code runs against a real MLflow server on 127.0.0.1 while every REST call its
client sends is recorded; each call maps to its `sagemaker-mlflow:` action
(components/mlflow_actions.py, from AWS's authorization reference), and each action must be
granted to the pipelines' execution role (SageMaker jobs) and to the team roles (the same
train.py on the training cluster). A call the client starts making in a new MLflow release
fails here, named, instead of failing the first real job with AccessDenied."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import mlflow
import pytest
from mlflow.utils import rest_utils

from components.mlflow_actions import MLFLOW_ACTIONS, action_for
from pipelines.data import write_raw_dataset
from pipelines.mlflow_server import MlflowServer
from pipelines.steps import evaluate, preprocess, train
from policy.mlops_rules.iam_eval import Request, allows
from stacks.offline import StackRecording, evaluate_config
from tests.conftest import recorded, stack_config


@pytest.fixture(scope="module")
def calls(
    mlflow_server: MlflowServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[set[tuple[str, str]]]:
    """(method, endpoint) of every REST call the three steps' MLflow client makes."""
    seen: set[tuple[str, str]] = set()
    original = rest_utils.http_request
    work = tmp_path_factory.mktemp("mlflow-calls")

    def recording(host_creds: Any, endpoint: str, method: str, *args: Any, **kwargs: Any) -> Any:
        seen.add((method.upper(), endpoint))
        return original(host_creds, endpoint, method, *args, **kwargs)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(rest_utils, "http_request", recording)
        patch.setenv("MLFLOW_TRACKING_URI", mlflow_server.url)
        patch.setenv("MLFLOW_EXPERIMENT_NAME", "permissions")
        patch.setenv("MLOPS_PIPELINE_EXECUTION_ID", "exec-permissions")
        raw = write_raw_dataset(work / "raw")
        preprocess.run(raw.parent, work / "splits")
        train.run(
            work / "splits" / "train",
            work / "splits" / "validation",
            work / "model",
            {"num_boost_round": 10, "nthread": 1},
        )
        evaluate.run(work / "model", work / "splits" / "test", work / "evaluation")
        mlflow.set_tracking_uri(None)  # type: ignore[arg-type]
    yield seen


def _tracking_calls(calls: set[tuple[str, str]]) -> set[tuple[str, str]]:
    """The tracking API's calls; artifacts go to S3 in SageMaker (S3 permissions)."""
    return {(m, e) for m, e in calls if "/mlflow/" in e and "mlflow-artifacts" not in e}


def test_every_call_maps_to_an_action(calls: set[tuple[str, str]]) -> None:
    tracking = _tracking_calls(calls)
    assert tracking, "the steps made no MLflow call"
    unknown = sorted(call for call in tracking if action_for(*call) is None)
    assert unknown == [], "add these endpoints to components/mlflow_actions.py"
    # MLflow 3 logs models as LoggedModels: the table must have caught those calls.
    actions = {action_for(*call) for call in tracking}
    assert "sagemaker-mlflow:CreateLoggedModel" in actions
    assert "sagemaker-mlflow:FinalizeLoggedModel" in actions


def _statements(recording: StackRecording, policy: str) -> list[dict[str, Any]]:
    return list(json.loads(recording.named(policy).inputs["policy"])["Statement"])


def _server_arn(recording: StackRecording) -> str:
    return str(recording.outputs["mlflow_tracking_server_arn"])


def test_the_execution_role_may_make_every_call(calls: set[tuple[str, str]]) -> None:
    stack = recorded("prod")
    statements = _statements(stack, "mlops-pipelines-execution-access")
    server = _server_arn(stack)
    needed = sorted({action_for(*call) or "" for call in _tracking_calls(calls)})
    missing = [a for a in needed if not allows(statements, Request(a, server))]
    assert missing == []
    assert set(needed) <= set(MLFLOW_ACTIONS)


def test_team_roles_may_make_every_call(calls: set[tuple[str, str]]) -> None:
    """train.py on the cluster runs as the team's role: it needs the same actions."""
    config = stack_config("dev")
    config["mlops-platform:models"]["digits"]["training"] = {
        "instance_type": "ml.g5.2xlarge",
        "use_spot": False,
        "backend": "cluster",
        "cluster": {"team": "research", "cpu": "4", "memory": "16Gi"},
    }
    stack = evaluate_config("dev", config)
    statements = _statements(stack, "mlops-teams-research-tracking")
    server = _server_arn(stack)
    for call in sorted(_tracking_calls(calls)):
        action = action_for(*call)
        assert action is not None and allows(statements, Request(action, server)), call


def test_the_table_reads_mlflow_routes() -> None:
    assert action_for("POST", "/api/2.0/mlflow/runs/log-batch") == "sagemaker-mlflow:LogBatch"
    assert (
        action_for("PATCH", "/api/2.0/mlflow/logged-models/m-0a1b2c")
        == "sagemaker-mlflow:FinalizeLoggedModel"
    )
    assert action_for("GET", "/api/2.0/mlflow/logged-models/m-0a1b2c") == (
        "sagemaker-mlflow:GetLoggedModel"
    )
    assert action_for("POST", "/api/2.0/mlflow/not-a-route") is None
