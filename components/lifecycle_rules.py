"""Lifecycle rules (pure data): what S3 and ECR delete on their own, and when."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pulumi_aws.s3 import BucketLifecycleConfigurationRuleArgsDict


def bucket_lifecycle_rules(
    noncurrent_version_expiry_days: int,
    abort_incomplete_multipart_days: int,
    current_version_expiry_days: int | None,
) -> list[BucketLifecycleConfigurationRuleArgsDict]:
    """One rule for the whole bucket: old versions, stuck uploads, and (optionally) objects."""
    expiration: Any = (
        {"days": current_version_expiry_days}
        if current_version_expiry_days is not None
        # Without an age limit, still clean delete markers left once old versions expire.
        else {"expired_object_delete_marker": True}
    )
    return [
        {
            "id": "housekeeping",
            "status": "Enabled",
            "filter": {"prefix": ""},
            "noncurrent_version_expiration": {"noncurrent_days": noncurrent_version_expiry_days},
            "abort_incomplete_multipart_upload": {
                "days_after_initiation": abort_incomplete_multipart_days
            },
            "expiration": expiration,
        }
    ]


def ecr_lifecycle_policy(keep_last_images: int, untagged_expiry_days: int) -> str:
    return json.dumps(
        {
            "rules": [
                {
                    "rulePriority": 1,
                    "description": "Expire untagged images (failed or superseded pushes)",
                    "selection": {
                        "tagStatus": "untagged",
                        "countType": "sinceImagePushed",
                        "countUnit": "days",
                        "countNumber": untagged_expiry_days,
                    },
                    "action": {"type": "expire"},
                },
                {
                    "rulePriority": 2,
                    "description": f"Keep the last {keep_last_images} images",
                    "selection": {
                        "tagStatus": "any",
                        "countType": "imageCountMoreThan",
                        "countNumber": keep_last_images,
                    },
                    "action": {"type": "expire"},
                },
            ]
        }
    )
