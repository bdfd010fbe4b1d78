"""ArtifactStore: where ML data lives. S3 buckets for datasets, model artifacts and pipeline
outputs (plus the access-log bucket they log to) and ECR repositories for training and
inference images, all encrypted with the environment's keys.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import pulumi
import pulumi_aws as aws

from components.aws_context import AwsContext
from components.bucket_policies import access_log_bucket_policy
from components.lifecycle_rules import ecr_lifecycle_policy
from components.naming import Names
from components.protection import stateful
from components.secure_bucket import SecureBucket, SecureBucketArgs
from stacks.settings import ArtifactStoreSettings, ProtectionSettings

DATA_BUCKETS = ("datasets", "models", "pipeline")
ACCESS_LOGS = "access-logs"


@dataclass
class ArtifactStoreArgs:
    settings: ArtifactStoreSettings
    protection: ProtectionSettings
    context: AwsContext
    names: Names
    data_key_arn: pulumi.Input[str]


class ArtifactStore(pulumi.ComponentResource):
    buckets: dict[str, SecureBucket]
    repository_urls: dict[str, pulumi.Output[str]]
    repository_arns: dict[str, pulumi.Output[str]]

    def __init__(
        self, name: str, args: ArtifactStoreArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("mlops:storage:ArtifactStore", name, None, opts)
        settings, names = args.settings, args.names
        log_bucket = SecureBucket(
            f"{name}-{ACCESS_LOGS}",
            SecureBucketArgs(
                bucket_name=names.bucket(ACCESS_LOGS),
                purpose=ACCESS_LOGS,
                # SSE-S3: S3 server access logging does not deliver to SSE-KMS buckets.
                key_arn=None,
                expire_after_days=settings.lifecycle.access_log_expiry_days,
                policy=partial(
                    access_log_bucket_policy,
                    args.context,
                    source_bucket_arns=[
                        f"arn:{args.context.partition}:s3:::{names.bucket(p)}" for p in DATA_BUCKETS
                    ],
                ),
                protection=args.protection,
                lifecycle=settings.lifecycle,
                force_destroy=settings.force_destroy,
            ),
            opts=pulumi.ResourceOptions(parent=self),
        )
        expiry = {"pipeline": settings.lifecycle.pipeline_output_expiry_days}
        self.buckets = {ACCESS_LOGS: log_bucket}
        for purpose in DATA_BUCKETS:
            self.buckets[purpose] = SecureBucket(
                f"{name}-{purpose}",
                SecureBucketArgs(
                    bucket_name=names.bucket(purpose),
                    purpose=purpose,
                    key_arn=args.data_key_arn,
                    expire_after_days=expiry.get(purpose),
                    access_log_bucket=log_bucket.bucket_name,
                    # Model artifacts are the audit trail of what was deployed.
                    object_lock=settings.object_lock if purpose == "models" else None,
                    protection=args.protection,
                    lifecycle=settings.lifecycle,
                    force_destroy=settings.force_destroy,
                ),
                opts=pulumi.ResourceOptions(parent=self),
            )

        self.repository_urls = {}
        self.repository_arns = {}
        for image in settings.ecr.repositories:
            repository = aws.ecr.Repository(
                f"{name}-{image}-repo",
                name=names.repository(image),
                image_tag_mutability="IMMUTABLE",
                image_scanning_configuration={"scan_on_push": True},
                encryption_configurations=[
                    {"encryption_type": "KMS", "kms_key": args.data_key_arn}
                ],
                force_delete=settings.force_destroy,
                opts=stateful(self, args.protection),
            )
            aws.ecr.LifecyclePolicy(
                f"{name}-{image}-repo-lifecycle",
                repository=repository.name,
                policy=ecr_lifecycle_policy(
                    settings.ecr.keep_last_images, settings.ecr.untagged_expiry_days
                ),
                opts=pulumi.ResourceOptions(parent=self),
            )
            self.repository_urls[image] = repository.repository_url
            self.repository_arns[image] = repository.arn

        self.register_outputs(
            {
                "bucket_names": {k: b.bucket_name for k, b in self.buckets.items()},
                "repository_urls": self.repository_urls,
            }
        )
