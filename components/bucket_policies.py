"""S3 bucket policies (pure data): TLS only, the environment's key only, log delivery."""

from __future__ import annotations

from typing import Any

from components.aws_context import AwsContext


def _deny_insecure_transport(bucket_arn: str) -> dict[str, Any]:
    return {
        "Sid": "DenyInsecureTransport",
        "Effect": "Deny",
        "Principal": "*",
        "Action": "s3:*",
        "Resource": [bucket_arn, f"{bucket_arn}/*"],
        "Condition": {"Bool": {"aws:SecureTransport": "false"}},
    }


def _deny_other_encryption(bucket_arn: str, key_arn: str) -> list[dict[str, Any]]:
    # Uploads that name no encryption get the bucket default (SSE-KMS with our key), so the
    # policy denies only requests that ask for something else: another algorithm or key.
    return [
        {
            "Sid": "DenyOtherEncryptionAlgorithms",
            "Effect": "Deny",
            "Principal": "*",
            "Action": "s3:PutObject",
            "Resource": f"{bucket_arn}/*",
            "Condition": {
                "StringNotEqualsIfExists": {"s3:x-amz-server-side-encryption": "aws:kms"},
                "Null": {"s3:x-amz-server-side-encryption": "false"},
            },
        },
        {
            "Sid": "DenyOtherKmsKeys",
            "Effect": "Deny",
            "Principal": "*",
            "Action": "s3:PutObject",
            "Resource": f"{bucket_arn}/*",
            "Condition": {
                "StringNotEqualsIfExists": {
                    "s3:x-amz-server-side-encryption-aws-kms-key-id": key_arn
                },
                "Null": {"s3:x-amz-server-side-encryption-aws-kms-key-id": "false"},
            },
        },
    ]


def bucket_policy(bucket_arn: str, key_arn: str | None) -> dict[str, Any]:
    if key_arn is None:
        raise ValueError("a data bucket encrypts with a KMS key (SECURITY.md E2)")
    return {
        "Version": "2012-10-17",
        "Statement": [
            _deny_insecure_transport(bucket_arn),
            *_deny_other_encryption(bucket_arn, key_arn),
        ],
    }


def access_log_bucket_policy(
    ctx: AwsContext, bucket_arn: str, _key_arn: str | None, source_bucket_arns: list[str]
) -> dict[str, Any]:
    """The log bucket: the S3 logging service may write, only for this stack's buckets.
    It encrypts with SSE-S3 (the only default encryption server access logging delivers
    to), so the policy demands no KMS key."""
    return {
        "Version": "2012-10-17",
        "Statement": [
            _deny_insecure_transport(bucket_arn),
            {
                "Sid": "S3ServerAccessLogDelivery",
                "Effect": "Allow",
                "Principal": {"Service": ctx.service_principal("logging.s3")},
                "Action": "s3:PutObject",
                "Resource": f"{bucket_arn}/*",
                "Condition": {
                    "ArnLike": {"aws:SourceArn": source_bucket_arns},
                    "StringEquals": {"aws:SourceAccount": ctx.account_id},
                },
            },
        ],
    }


# parliament findings accepted for bucket policies (tests/test_iam_lint.py), and why.
PARLIAMENT_ACCEPTED = {
    "MISMATCHED_TYPE_BUT_USABLE": (
        "s3:x-amz-server-side-encryption-aws-kms-key-id is a string condition key whose value "
        "is the key ARN; comparing it with StringNotEqualsIfExists is what AWS documents"
    ),
}
