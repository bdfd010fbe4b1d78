"""FeatureStore: a feature group per model from its spec in code, encrypted online and
offline stores, a scoped role, and protection against replacement in prod."""

from __future__ import annotations

import json

from pipelines.features import FEATURE_SPECS, replacement_fingerprint
from stacks import outputs
from stacks.offline import StackRecording, evaluate_config
from tests.conftest import stack_config

GROUP = "aws:sagemaker/featureGroup:FeatureGroup"


def test_one_group_per_model_from_the_spec(recording: StackRecording) -> None:
    (group,) = recording.of_type(GROUP)
    spec = FEATURE_SPECS["digits"]
    assert group.inputs["featureGroupName"] == f"mlops-{recording.stack}-digits-features"
    assert group.inputs["recordIdentifierFeatureName"] == spec.record_identifier
    assert group.inputs["eventTimeFeatureName"] == spec.event_time
    assert [(d["featureName"], d["featureType"]) for d in group.inputs["featureDefinitions"]] == [
        (d["FeatureName"], d["FeatureType"]) for d in spec.aws_feature_definitions()
    ]
    assert recording.outputs[outputs.FEATURE_GROUPS] == {"digits": group.inputs["featureGroupName"]}
    # Which schema version is deployed, visible on the group itself.
    assert group.inputs["tags"] == {"spec-fingerprint": replacement_fingerprint(spec)[:16]}


def test_stores_are_encrypted_and_the_offline_store_is_catalogued(
    recording: StackRecording,
) -> None:
    (group,) = recording.of_type(GROUP)
    key = recording.outputs[outputs.DATA_KEY_ARN]
    online = group.inputs["onlineStoreConfig"]
    assert online["enableOnlineStore"] is True
    assert online["securityConfig"] == {"kmsKeyId": key}
    offline = group.inputs["offlineStoreConfig"]
    datasets = recording.outputs[outputs.BUCKET_NAMES]["datasets"]
    assert offline["s3StorageConfig"] == {
        "s3Uri": f"s3://{datasets}/feature-store/",
        "kmsKeyId": key,
    }
    assert offline["disableGlueTableCreation"] is False


def test_online_ttl_follows_settings(dev: StackRecording, prod: StackRecording) -> None:
    (dev_group,) = dev.of_type(GROUP)
    assert dev_group.inputs["onlineStoreConfig"]["ttlDuration"] == {"unit": "Hours", "value": 168}
    (prod_group,) = prod.of_type(GROUP)
    assert "ttlDuration" not in prod_group.inputs["onlineStoreConfig"]


def test_role_is_scoped_to_the_offline_store(recording: StackRecording) -> None:
    group = recording.of_type(GROUP)[0]
    role = recording.named("mlops-features-role")
    assert group.inputs["roleArn"] == role.outputs["arn"]
    policy = json.loads(recording.named("mlops-features-access").inputs["policy"])
    statements = {s["Sid"]: s for s in policy["Statement"]}
    datasets = recording.outputs[outputs.BUCKET_NAMES]["datasets"]
    assert statements["OfflineStoreObjects"]["Resource"] == (
        f"arn:aws:s3:::{datasets}/feature-store/*"
    )
    # What AmazonSageMakerFeatureStoreAccess grants the offline store's writer.
    assert set(statements["OfflineStoreObjects"]["Action"]) == {
        "s3:PutObject",
        "s3:GetObject",
        "s3:PutObjectAcl",
    }
    assert statements["OfflineStoreBucket"]["Action"] == "s3:GetBucketAcl"
    assert (
        statements["OfflineStoreEncryption"]["Resource"]
        == (recording.outputs[outputs.DATA_KEY_ARN])
    )


def test_preprocess_ingests_into_the_group(recording: StackRecording) -> None:
    pipeline = recording.named("mlops-pipelines-digits")  # the training pipeline
    steps = {s["Name"]: s for s in json.loads(pipeline.inputs["pipelineDefinition"])["Steps"]}
    environment = steps["Preprocess"]["Arguments"]["Environment"]
    assert environment["MLOPS_FEATURE_GROUP_NAME"] == f"mlops-{recording.stack}-digits-features"
    policy = json.loads(recording.named("mlops-pipelines-execution-access").inputs["policy"])
    ingest = next(s for s in policy["Statement"] if s["Sid"] == "IngestFeatures")
    assert ingest["Action"] == "sagemaker:PutRecord"
    assert ingest["Resource"].endswith(f":feature-group/mlops-{recording.stack}-*")


def test_prod_refuses_replacement_unless_settings_allow_it(prod: StackRecording) -> None:
    (group,) = prod.of_type(GROUP)
    # A protected resource cannot be replaced: Pulumi stops the update and names it.
    assert group.protect and group.retain_on_delete
    config = stack_config("prod")
    config["mlops-platform:feature_store"] = {"allow_replacement": True}
    (allowed,) = evaluate_config("prod", config).of_type(GROUP)
    assert not allowed.protect and allowed.retain_on_delete
