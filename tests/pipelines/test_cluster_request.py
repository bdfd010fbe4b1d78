"""The cluster-backed Train step's message contract: what parses, what is refused and why."""

from __future__ import annotations

import json
from typing import Any

import pytest

from pipelines.steps.cluster_request import (
    ARGUMENTS,
    FAILURE_REASON_LIMIT,
    METRICS,
    MODEL_ARTIFACTS,
    RequestError,
    failure_reason,
    parse_message,
    parse_token,
    success_parameters,
)

EXECUTION = (
    "arn:aws:sagemaker:eu-west-1:111111111111:pipeline/mlops-dev-digits-training/"
    "execution/k3x9q2m7w1ab"
)
GOOD_ARGUMENTS = {
    "model": "digits",
    "team": "research",
    "image": "111111111111.dkr.ecr.eu-west-1.amazonaws.com/mlops-dev/training:2026.11.1",
    "gpusPerNode": "1",
    "nodes": "2.0",  # SageMaker renders an integer parameter either way
    "accelerator": "",
    "cpu": "500m",
    "memory": "16Gi",
    "trainUri": "s3://pipe/teams/research/x/Preprocess/train",
    "validationUri": "s3://pipe/teams/research/x/Preprocess/validation",
    "codeUri": "s3://models/code/abc/pipelines/",
    "outputUri": "s3://models/teams/research/digits/k3x9q2m7w1ab/",
    "hyperparameters": json.dumps({"max_depth": "6", "eval_metric": ["mlogloss"]}),
    "maxRuntimeSeconds": "1800",
    "mlflowTrackingUri": "arn:aws:sagemaker:eu-west-1:111111111111:mlflow-tracking-server/x",
    "mlflowExperimentName": "mlops-dev-digits",
}


def body(token: Any = "Ab3dEf7hIj", **changes: Any) -> str:
    arguments = {**GOOD_ARGUMENTS, **changes}
    arguments = {k: v for k, v in arguments.items() if v is not None}
    return json.dumps(
        {
            "token": token,
            "pipelineExecutionArn": EXECUTION,
            "status": "Executing",
            "arguments": arguments,
        }
    )


def test_a_good_message_parses_into_the_request() -> None:
    request = parse_message(body())
    assert request.token == "Ab3dEf7hIj"
    assert request.execution_id == "k3x9q2m7w1ab"
    assert (request.gpus_per_node, request.nodes, request.gpus) == (1, 2, 2)
    assert request.accelerator is None
    assert request.hyperparameters == {"max_depth": "6", "eval_metric": '["mlogloss"]'}
    assert request.max_runtime_seconds == 1800
    assert success_parameters(request.output_uri) == [
        {"Name": MODEL_ARTIFACTS, "Value": f"{GOOD_ARGUMENTS['outputUri']}model.tar.gz"},
        {"Name": METRICS, "Value": f"{GOOD_ARGUMENTS['outputUri']}metrics.json"},
    ]
    assert set(GOOD_ARGUMENTS) == set(ARGUMENTS)


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("not json", "the message is not JSON"),
        ("[1, 2]", "the message is not a JSON object"),
        (body(token="short"), "the message has no callback token"),
        (body(token=None), "the message has no callback token"),
        (body(outputUri=None, team=None), "the request lacks team, outputUri"),
        (body(trainUri="/local/train"), "trainUri '/local/train' is not an S3 URI"),
        (body(codeUri="s3://models/code"), "codeUri 's3://models/code' must be a prefix"),
        (body(memory="lots"), "memory 'lots' is not a Kubernetes quantity"),
        (body(nodes="two"), "nodes 'two' is not a number"),
        (body(gpusPerNode="0"), "gpusPerNode must be at least 1 (got 0)"),
        (body(hyperparameters="[1]"), "hyperparameters is not a JSON object"),
        (body(hyperparameters="{bad"), "hyperparameters is not a JSON object: '{bad'"),
    ],
)
def test_a_bad_message_is_refused_with_what_is_wrong(text: str, reason: str) -> None:
    with pytest.raises(RequestError) as refused:
        parse_message(text)
    assert str(refused.value).startswith(reason)


def test_a_message_without_an_execution_arn_is_refused() -> None:
    message = json.loads(body())
    message["pipelineExecutionArn"] = "arn:aws:sagemaker:eu-west-1:1:pipeline/x"
    with pytest.raises(RequestError, match="no pipelineExecutionArn"):
        parse_message(json.dumps(message))


def test_the_token_of_an_otherwise_unusable_message_is_still_found() -> None:
    """So the launcher can fail the step instead of leaving it waiting."""
    assert parse_token(body(trainUri="/x", nodes="two")) == "Ab3dEf7hIj"
    assert parse_token(body(token="has space!")) is None
    assert parse_token("{") is None
    assert parse_token("[]") is None


def test_failure_reasons_fit_the_api_and_keep_their_start() -> None:
    assert failure_reason("train:   out of\\nmemory") == "train: out of\\nmemory"
    long = failure_reason("download: " + "x" * 500)
    assert len(long) == FAILURE_REASON_LIMIT
    assert long.startswith("download: x") and long.endswith("...")
