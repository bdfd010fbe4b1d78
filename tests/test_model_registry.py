"""ModelRegistry: a group per model with a promotion read policy, and the MLflow server."""

from __future__ import annotations

import json

from stacks import outputs
from stacks.offline import StackRecording, evaluate_config
from tests.conftest import stack_config

GROUP = "aws:sagemaker/modelPackageGroup:ModelPackageGroup"
GROUP_POLICY = "aws:sagemaker/modelPackageGroupPolicy:ModelPackageGroupPolicy"
SERVER = "aws:sagemaker/mlflowTrackingServer:MlflowTrackingServer"


def test_one_group_per_model(recording: StackRecording) -> None:
    groups = sorted(g.inputs["modelPackageGroupName"] for g in recording.of_type(GROUP))
    assert groups == [f"mlops-{recording.stack}-{m}" for m in sorted(recording.settings.models)]
    assert recording.outputs[outputs.MODEL_PACKAGE_GROUPS] == {
        m: f"mlops-{recording.stack}-{m}" for m in recording.settings.models
    }


def test_prod_groups_are_readable_by_the_named_accounts(prod: StackRecording, dev) -> None:
    (policy,) = prod.of_type(GROUP_POLICY)
    (statement,) = json.loads(policy.inputs["resourcePolicy"])["Statement"]
    assert statement["Principal"]["AWS"] == [
        "arn:aws:iam::111111111111:root",
        "arn:aws:iam::222222222222:root",
    ]
    assert statement["Resource"] == [
        "arn:aws:sagemaker:eu-west-1:333333333333:model-package-group/mlops-prod-digits",
        "arn:aws:sagemaker:eu-west-1:333333333333:model-package/mlops-prod-digits/*",
    ]
    assert all(a.startswith(("sagemaker:Describe", "sagemaker:List")) for a in statement["Action"])
    assert dev.of_type(GROUP_POLICY) == []  # no reader accounts configured


def test_managed_tracking_server_from_settings(recording: StackRecording) -> None:
    (server,) = recording.of_type(SERVER)
    mlflow = recording.settings.registry.mlflow
    models_bucket = recording.outputs[outputs.BUCKET_NAMES]["models"]
    assert server.inputs["trackingServerName"] == f"mlops-{recording.stack}-mlflow"
    assert server.inputs["trackingServerSize"] == mlflow.size
    assert server.inputs["weeklyMaintenanceWindowStart"] == mlflow.weekly_maintenance_window
    # Pinned to a version of the jobs' client's major version (stacks/mlflow_versions.py).
    assert server.inputs["mlflowVersion"] == mlflow.mlflow_version == "3.0"
    # The Register step creates packages; MLflow's sync would add `<model>-<hash>` groups.
    assert server.inputs["automaticModelRegistration"] is False
    assert server.inputs["artifactStoreUri"] == f"s3://{models_bucket}/mlflow/"
    assert recording.outputs[outputs.MLFLOW_TRACKING_SERVER_ARN] == server.outputs["arn"]


def test_tracking_server_role_is_least_privilege(recording: StackRecording) -> None:
    role = recording.named("mlops-registry-mlflow-role")
    (trust,) = json.loads(role.inputs["assumeRolePolicy"])["Statement"]
    assert trust["Principal"] == {"Service": "sagemaker.amazonaws.com"}
    policy = json.loads(recording.named("mlops-registry-mlflow-access").inputs["policy"])
    statements = {s["Sid"]: s for s in policy["Statement"]}
    models_arn = f"arn:aws:s3:::{recording.outputs[outputs.BUCKET_NAMES]['models']}"
    assert statements["ArtifactObjects"]["Resource"] == f"{models_arn}/mlflow/*"
    assert statements["ArtifactEncryption"]["Resource"] == recording.outputs[outputs.DATA_KEY_ARN]
    # No registry rights at all: automatic model registration is off.
    assert set(statements) == {
        "ArtifactObjects",
        "ArtifactListing",
        "ArtifactBucketLocation",
        "ArtifactEncryption",
    }
    actions = [
        a
        for s in statements.values()
        for a in ([s["Action"]] if isinstance(s["Action"], str) else s["Action"])
    ]
    assert not [a for a in actions if a.startswith("sagemaker:")]


def test_prod_registry_is_protected(prod: StackRecording) -> None:
    for resource in (*prod.of_type(GROUP), *prod.of_type(SERVER)):
        assert resource.protect and resource.retain_on_delete


def test_shared_tracking_server_comes_from_another_stack() -> None:
    config = stack_config("dev")
    config["mlops-platform:registry"] = {
        "mlflow": {"mode": "shared", "shared_stack": "acme/mlops-platform/dev"}
    }
    recording = evaluate_config("dev", config)
    assert recording.of_type(SERVER) == []
    assert "mlops-registry-mlflow-role" not in {r.name for r in recording.resources}
    (reference,) = recording.of_type("pulumi:pulumi:StackReference")
    assert reference.inputs["name"] == "acme/mlops-platform/dev"
    assert recording.outputs[outputs.MLFLOW_TRACKING_SERVER_ARN] == (
        "arn:aws:sagemaker:eu-west-1:000000000000:mlflow-tracking-server/shared"
    )
