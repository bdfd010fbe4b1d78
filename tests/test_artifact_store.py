"""ArtifactStore: every bucket carries every S3 control; ECR repositories are locked down."""

from __future__ import annotations

import json

import pytest

from components.artifact_store import ACCESS_LOGS, DATA_BUCKETS
from components.aws_context import AwsContext
from components.bucket_policies import access_log_bucket_policy, bucket_policy
from components.naming import InvalidName, Names
from stacks.offline import RecordedResource, StackRecording

BUCKET = "aws:s3/bucket:Bucket"


def _bucket_parts(recording: StackRecording) -> dict[str, dict[str, RecordedResource]]:
    """purpose -> {resource kind -> resource} for each SecureBucket."""
    parts = {}
    for component in recording.of_type("mlops:storage:SecureBucket"):
        purpose = component.name.removeprefix("mlops-artifacts-")
        parts[purpose] = {r.type.rsplit(":", 1)[-1]: r for r in recording.children(component)}
    return parts


def test_four_buckets_named_after_stack_account_and_region(recording: StackRecording) -> None:
    settings = recording.settings
    names = sorted(b.inputs["bucket"] for b in recording.of_type(BUCKET))
    expected = sorted(
        f"mlops-{recording.stack}-{purpose}-{settings.aws.account_id}-{settings.aws.region}"
        for purpose in (*DATA_BUCKETS, ACCESS_LOGS)
    )
    assert names == expected


def test_every_bucket_blocks_all_public_access(recording: StackRecording) -> None:
    for purpose, parts in _bucket_parts(recording).items():
        block = parts["BucketPublicAccessBlock"].inputs
        flags = (
            "blockPublicAcls",
            "blockPublicPolicy",
            "ignorePublicAcls",
            "restrictPublicBuckets",
        )
        assert all(block[f] is True for f in flags), purpose
        ownership = parts["BucketOwnershipControls"].inputs["rule"]["objectOwnership"]
        assert ownership == "BucketOwnerEnforced"


def test_data_buckets_sse_kms_with_the_environment_key(recording: StackRecording) -> None:
    for purpose, parts in _bucket_parts(recording).items():
        (rule,) = parts["BucketServerSideEncryptionConfiguration"].inputs["rules"]
        default = rule["applyServerSideEncryptionByDefault"]
        if purpose == ACCESS_LOGS:
            # S3 server access logging delivers only to SSE-S3 destinations.
            assert default == {"sseAlgorithm": "AES256"}
            continue
        key = recording.outputs["data_key_arn"]
        assert default == {"sseAlgorithm": "aws:kms", "kmsMasterKeyId": key}
        assert rule["bucketKeyEnabled"] is True


def test_every_bucket_versioned_with_housekeeping(recording: StackRecording) -> None:
    lifecycle = recording.settings.artifact_store.lifecycle
    expiry = {
        "pipeline": lifecycle.pipeline_output_expiry_days,
        "access-logs": lifecycle.access_log_expiry_days,
    }
    for purpose, parts in _bucket_parts(recording).items():
        versioning = parts["BucketVersioning"]
        assert versioning.inputs["versioningConfiguration"]["status"] == "Enabled"
        config = parts["BucketLifecycleConfiguration"]
        assert versioning.urn in config.depends_on
        (rule,) = config.inputs["rules"]
        assert rule["status"] == "Enabled"
        assert rule["noncurrentVersionExpiration"]["noncurrentDays"] == (
            lifecycle.noncurrent_version_expiry_days
        )
        assert rule["abortIncompleteMultipartUpload"]["daysAfterInitiation"] == (
            lifecycle.abort_incomplete_multipart_days
        )
        if purpose in expiry:
            assert rule["expiration"] == {"days": expiry[purpose]}
        else:  # datasets and models never expire on their own
            assert rule["expiration"] == {"expiredObjectDeleteMarker": True}


def test_every_bucket_policy_denies_plain_http_and_other_keys(recording: StackRecording) -> None:
    for purpose, parts in _bucket_parts(recording).items():
        bucket = parts["Bucket"]
        policy = json.loads(parts["BucketPolicy"].inputs["policy"])
        statements = {s["Sid"]: s for s in policy["Statement"]}
        tls = statements["DenyInsecureTransport"]
        assert tls["Effect"] == "Deny"
        assert tls["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
        assert tls["Resource"] == [bucket.outputs["arn"], f"{bucket.outputs['arn']}/*"]
        default = parts["BucketServerSideEncryptionConfiguration"].inputs["rules"][0][
            "applyServerSideEncryptionByDefault"
        ]
        if purpose == ACCESS_LOGS:
            assert "DenyOtherKmsKeys" not in statements
        else:
            wrong_key = statements["DenyOtherKmsKeys"]["Condition"]["StringNotEqualsIfExists"]
            key = default["kmsMasterKeyId"]
            assert wrong_key == {"s3:x-amz-server-side-encryption-aws-kms-key-id": key}
            assert statements["DenyOtherEncryptionAlgorithms"]["Effect"] == "Deny"
        # Policy and public access block are never written concurrently.
        assert parts["BucketPublicAccessBlock"].urn in parts["BucketPolicy"].depends_on, purpose


def test_data_buckets_log_to_the_log_bucket(recording: StackRecording) -> None:
    parts = _bucket_parts(recording)
    log_bucket = parts[ACCESS_LOGS]["Bucket"].inputs["bucket"]
    assert "BucketLogging" not in parts[ACCESS_LOGS]
    for purpose in DATA_BUCKETS:
        logging = parts[purpose]["BucketLogging"].inputs
        assert logging["targetBucket"] == log_bucket
        assert logging["targetPrefix"] == f"{parts[purpose]['Bucket'].inputs['bucket']}/"


def test_log_bucket_accepts_delivery_only_from_this_stacks_buckets(
    recording: StackRecording,
) -> None:
    parts = _bucket_parts(recording)
    policy = json.loads(parts[ACCESS_LOGS]["BucketPolicy"].inputs["policy"])
    delivery = next(s for s in policy["Statement"] if s["Sid"] == "S3ServerAccessLogDelivery")
    assert delivery["Principal"] == {"Service": "logging.s3.amazonaws.com"}
    sources = delivery["Condition"]["ArnLike"]["aws:SourceArn"]
    assert sorted(sources) == sorted(parts[p]["Bucket"].outputs["arn"] for p in DATA_BUCKETS)
    assert delivery["Condition"]["StringEquals"] == {
        "aws:SourceAccount": recording.settings.aws.account_id
    }


def test_object_lock_on_prod_model_artifacts_only(dev, test_stack, prod) -> None:
    parts = _bucket_parts(prod)
    assert parts["models"]["Bucket"].inputs["objectLockEnabled"] is True
    rule = parts["models"]["BucketObjectLockConfiguration"].inputs["rule"]
    assert rule == {"defaultRetention": {"mode": "GOVERNANCE", "days": 365}}
    others = [r for r in prod.of_type(BUCKET) if r.name != "mlops-artifacts-models"]
    assert not any(r.inputs["objectLockEnabled"] for r in others)
    for recording in (dev, test_stack):
        assert (
            recording.of_type("aws:s3/bucketObjectLockConfiguration:BucketObjectLockConfiguration")
            == []
        )


def test_force_destroy_only_in_dev(dev, test_stack, prod) -> None:
    assert all(b.inputs["forceDestroy"] for b in dev.of_type(BUCKET))
    for recording in (test_stack, prod):
        assert not any(b.inputs["forceDestroy"] for b in recording.of_type(BUCKET))
        repos = recording.of_type("aws:ecr/repository:Repository")
        assert not any(r.inputs["forceDelete"] for r in repos)


def test_repositories_immutable_scanned_kms(recording: StackRecording) -> None:
    repos = {r.inputs["name"]: r for r in recording.of_type("aws:ecr/repository:Repository")}
    stack = recording.stack
    assert set(repos) == {f"mlops-{stack}/training", f"mlops-{stack}/inference"}
    for repo in repos.values():
        assert repo.inputs["imageTagMutability"] == "IMMUTABLE"
        assert repo.inputs["imageScanningConfiguration"] == {"scanOnPush": True}
        assert repo.inputs["encryptionConfigurations"] == [
            {"encryptionType": "KMS", "kmsKey": recording.outputs["data_key_arn"]}
        ]


def test_repository_lifecycle_keeps_the_last_n_images(recording: StackRecording) -> None:
    ecr = recording.settings.artifact_store.ecr
    for policy in recording.of_type("aws:ecr/lifecyclePolicy:LifecyclePolicy"):
        rules = json.loads(policy.inputs["policy"])["rules"]
        keep = next(r for r in rules if r["selection"]["tagStatus"] == "any")
        assert keep["selection"] == {
            "tagStatus": "any",
            "countType": "imageCountMoreThan",
            "countNumber": ecr.keep_last_images,
        }
        untagged = next(r for r in rules if r["selection"]["tagStatus"] == "untagged")
        assert untagged["selection"]["countNumber"] == ecr.untagged_expiry_days
        # ECR evaluates lower priorities first; untagged must go first.
        assert untagged["rulePriority"] < keep["rulePriority"]


def test_keep_last_images_differs_by_environment(dev, prod) -> None:
    def kept(recording: StackRecording) -> int:
        policy = recording.of_type("aws:ecr/lifecyclePolicy:LifecyclePolicy")[0]
        return json.loads(policy.inputs["policy"])["rules"][1]["selection"]["countNumber"]

    assert (kept(dev), kept(prod)) == (10, 100)


def test_policy_documents_scope_statements() -> None:
    ctx = AwsContext("123456789012", "eu-west-1")
    arn, key = "arn:aws:s3:::b", "arn:aws:kms:eu-west-1:123456789012:key/k"
    assert [s["Effect"] for s in bucket_policy(arn, key)["Statement"]] == ["Deny"] * 3
    log_policy = access_log_bucket_policy(ctx, arn, key, source_bucket_arns=["arn:aws:s3:::x"])
    allows = [s for s in log_policy["Statement"] if s["Effect"] == "Allow"]
    assert [a["Action"] for a in allows] == ["s3:PutObject"]


def test_bucket_names_too_long_are_refused_with_the_stack_named() -> None:
    names = Names(
        stack="dev-a-very-long-feature-branch-name",
        context=AwsContext("123456789012", "ap-southeast-2"),
    )
    with pytest.raises(InvalidName, match="use a shorter stack name"):
        names.bucket("access-logs")


def test_team_names_too_long_are_refused_with_the_stack_named() -> None:
    names = Names(stack="dev-" + "x" * 30, context=AwsContext("123456789012", "eu-west-1"))
    with pytest.raises(InvalidName, match=r"IAM role name .* over the limit of 64"):
        names.team_role("computer-vision-research")
    with pytest.raises(InvalidName, match=r"namespace .* over the limit of 63"):
        Names(stack="dev-" + "x" * 50, context=names.context).shared_namespace("forecasting-team")
    assert names.team_role("cv") == f"mlops-{names.stack}-team-cv"


@pytest.mark.parametrize("stack", ["Dev", "dev_1", "-dev", "dev-"])
def test_stack_names_must_be_dns_friendly(stack: str) -> None:
    with pytest.raises(InvalidName, match="lowercase letters and digits"):
        Names(stack=stack, context=AwsContext("123456789012", "eu-west-1"))
