"""SecureBucket: one S3 bucket with every SECURITY.md control on it.

SSE-KMS with a bucket key and the environment's key (SSE-S3 for the server access log
bucket: S3 server access logging does not deliver to SSE-KMS destinations), versioning, all
four public-access blocks, ACLs disabled, TLS-only and this-key-only policy, lifecycle
housekeeping, access logging to the log bucket, and Object Lock where asked. Every bucket the
platform creates is one of these, so a control added here reaches all of them.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_aws as aws

from components.bucket_policies import bucket_policy
from components.lifecycle_rules import bucket_lifecycle_rules
from components.protection import stateful
from stacks.settings import LifecycleSettings, ObjectLockSettings, ProtectionSettings

# (bucket ARN, key ARN or None) -> policy document; the default is TLS-only + this key only.
PolicyBuilder = Callable[[str, str | None], dict[str, Any]]


@dataclass
class SecureBucketArgs:
    bucket_name: str
    # What the bucket holds (datasets, models, ...): its `purpose` tag, which rules read.
    purpose: str
    # None: SSE-S3 (AES256), for the server access log destination only (SECURITY.md E2).
    key_arn: pulumi.Input[str] | None
    protection: ProtectionSettings
    lifecycle: LifecycleSettings
    # Objects (current versions) older than this are deleted; None keeps them.
    expire_after_days: int | None = None
    # Bucket that receives this bucket's server access logs; None for the log bucket itself.
    access_log_bucket: pulumi.Input[str] | None = None
    object_lock: ObjectLockSettings | None = None
    force_destroy: bool = False
    policy: PolicyBuilder = bucket_policy


class SecureBucket(pulumi.ComponentResource):
    bucket_name: pulumi.Output[str]
    arn: pulumi.Output[str]

    def __init__(
        self, name: str, args: SecureBucketArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("mlops:storage:SecureBucket", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        bucket = aws.s3.Bucket(
            name,
            bucket=args.bucket_name,
            object_lock_enabled=args.object_lock is not None,
            force_destroy=args.force_destroy,
            tags={"purpose": args.purpose},
            opts=stateful(self, args.protection),
        )
        ownership = aws.s3.BucketOwnershipControls(
            f"{name}-ownership",
            bucket=bucket.id,
            rule={"object_ownership": "BucketOwnerEnforced"},
            opts=child,
        )
        public_access = aws.s3.BucketPublicAccessBlock(
            f"{name}-public-access",
            bucket=bucket.id,
            block_public_acls=True,
            block_public_policy=True,
            ignore_public_acls=True,
            restrict_public_buckets=True,
            opts=child,
        )
        aws.s3.BucketServerSideEncryptionConfiguration(
            f"{name}-encryption",
            bucket=bucket.id,
            rules=[_encryption_rule(args.key_arn)],
            opts=child,
        )
        versioning = aws.s3.BucketVersioning(
            f"{name}-versioning",
            bucket=bucket.id,
            versioning_configuration={"status": "Enabled"},
            opts=child,
        )
        aws.s3.BucketLifecycleConfiguration(
            f"{name}-lifecycle",
            bucket=bucket.id,
            rules=bucket_lifecycle_rules(
                args.lifecycle.noncurrent_version_expiry_days,
                args.lifecycle.abort_incomplete_multipart_days,
                args.expire_after_days,
            ),
            # S3 rejects noncurrent-version rules until versioning is on.
            opts=pulumi.ResourceOptions(parent=self, depends_on=[versioning]),
        )
        aws.s3.BucketPolicy(
            f"{name}-policy",
            bucket=bucket.id,
            policy=pulumi.Output.all(bucket.arn, args.key_arn).apply(
                lambda arns: json.dumps(args.policy(arns[0], arns[1]))
            ),
            # Concurrent policy and public-access-block writes conflict in S3.
            opts=pulumi.ResourceOptions(parent=self, depends_on=[public_access, ownership]),
        )
        if args.access_log_bucket is not None:
            aws.s3.BucketLogging(
                f"{name}-access-logs",
                bucket=bucket.id,
                target_bucket=args.access_log_bucket,
                target_prefix=f"{args.bucket_name}/",
                # Date-partitioned keys keep Athena queries over the logs cheap.
                target_object_key_format={
                    "partitioned_prefix": {"partition_date_source": "EventTime"}
                },
                opts=child,
            )
        if args.object_lock is not None:
            aws.s3.BucketObjectLockConfiguration(
                f"{name}-object-lock",
                bucket=bucket.id,
                rule={
                    "default_retention": {
                        "mode": args.object_lock.mode,
                        "days": args.object_lock.retention_days,
                    }
                },
                opts=pulumi.ResourceOptions(parent=self, depends_on=[versioning]),
            )
        self.bucket_name = bucket.bucket
        self.arn = bucket.arn
        self.register_outputs({"bucket_name": self.bucket_name, "arn": self.arn})


def _encryption_rule(key_arn: pulumi.Input[str] | None) -> Any:
    if key_arn is None:
        return {"apply_server_side_encryption_by_default": {"sse_algorithm": "AES256"}}
    return {
        "apply_server_side_encryption_by_default": {
            "sse_algorithm": "aws:kms",
            "kms_master_key_id": key_arn,
        },
        # One data key per bucket instead of a KMS call per object.
        "bucket_key_enabled": True,
    }
