"""S3 and ECR rules: E2, E3, E9, A1, A2, A3, R1, R2.

pulumi-aws v7 configures a bucket through separate resources (encryption, versioning, ...);
each is tied to its bucket through the property dependency of its `bucket` input, which is
known even in a preview, when the bucket's name may not be.
"""

from __future__ import annotations

from collections.abc import Iterator

from . import types as t
from .model import Resource, StackView, statements_of
from .registry import Finding, rule

PUBLIC_ACCESS_FLAGS = (
    "blockPublicAcls",
    "blockPublicPolicy",
    "ignorePublicAcls",
    "restrictPublicBuckets",
)


def _parts(view: StackView, bucket: Resource, type_: str) -> list[Resource]:
    return view.dependents(bucket, "bucket", type_)


def _is_access_log_destination(view: StackView, bucket: Resource) -> bool:
    return bool(view.dependents(bucket, "targetBucket", t.BUCKET_LOGGING))


@rule(
    "E2",
    "s3-sse-kms",
    "S3 buckets encrypt by default with SSE-KMS and a bucket key; a server access log "
    "destination with SSE-S3",
)
def s3_sse_kms(view: StackView) -> Iterator[Finding]:
    for bucket in view.of_type(t.BUCKET):
        configs = _parts(view, bucket, t.BUCKET_SSE)
        if not configs:
            yield bucket, "bucket has no server-side encryption configuration"
        # S3 server access logging delivers only to buckets whose default encryption is
        # SSE-S3 ("SSE-KMS is not supported", S3 User Guide, enable-server-access-logging).
        log_destination = _is_access_log_destination(view, bucket)
        for config in configs:
            for rule_ in config.props.get("rules") or []:
                default = rule_.get("applyServerSideEncryptionByDefault") or {}
                algorithm = default.get("sseAlgorithm")
                if log_destination:
                    if algorithm != "AES256":
                        yield (
                            bucket,
                            f"server access log destination encrypts with {algorithm}: S3 "
                            "delivers access logs only with SSE-S3 (AES256)",
                        )
                    continue
                if algorithm not in ("aws:kms", "aws:kms:dsse"):
                    yield bucket, f"default encryption is {algorithm}, not SSE-KMS"
                elif not default.get("kmsMasterKeyId"):
                    yield bucket, "SSE-KMS without a customer-managed key (uses aws/s3)"
                if rule_.get("bucketKeyEnabled") is not True:
                    yield bucket, "S3 bucket key is not enabled"


@rule("E3", "ecr-kms", "ECR repositories encrypt images with a KMS key")
def ecr_kms(view: StackView) -> Iterator[Finding]:
    for repo in view.of_type(t.ECR_REPOSITORY):
        configs = repo.props.get("encryptionConfigurations") or []
        if not any(c.get("encryptionType") == "KMS" and c.get("kmsKey") for c in configs):
            yield repo, "repository is not encrypted with a customer-managed KMS key"


@rule("E9", "s3-tls-only", "S3 bucket policies deny requests without TLS")
def s3_tls_only(view: StackView) -> Iterator[Finding]:
    for bucket in view.of_type(t.BUCKET):
        policies = _parts(view, bucket, t.BUCKET_POLICY)
        if not policies:
            yield bucket, "bucket has no bucket policy denying non-TLS requests"
        for policy in policies:
            document = policy.json_prop("policy")
            if document is None:
                continue  # computed during a preview: checked after the update
            if not any(
                s.get("Effect") == "Deny"
                and (s.get("Condition") or {}).get("Bool", {}).get("aws:SecureTransport")
                in ("false", False)
                for s in statements_of(document)
            ):
                yield bucket, "bucket policy does not deny aws:SecureTransport=false"


@rule("A1", "s3-public-access-block", "Every bucket blocks public access with all four flags")
def s3_public_access_block(view: StackView) -> Iterator[Finding]:
    for bucket in view.of_type(t.BUCKET):
        blocks = _parts(view, bucket, t.BUCKET_PUBLIC_ACCESS)
        if not blocks:
            yield bucket, "bucket has no public access block"
        for block in blocks:
            off = [f for f in PUBLIC_ACCESS_FLAGS if block.props.get(f) is not True]
            if off:
                yield bucket, f"public access block flags not set: {', '.join(off)}"


@rule("A2", "s3-no-acls", "S3 ACLs are disabled (BucketOwnerEnforced) and never granted")
def s3_no_acls(view: StackView) -> Iterator[Finding]:
    for bucket in view.of_type(t.BUCKET):
        owners = _parts(view, bucket, t.BUCKET_OWNERSHIP)
        if not any(o.prop("rule", "objectOwnership") == "BucketOwnerEnforced" for o in owners):
            yield bucket, "object ownership is not BucketOwnerEnforced (ACLs stay enabled)"
        if _parts(view, bucket, t.BUCKET_ACL) or bucket.props.get("acl"):
            yield bucket, "bucket sets an ACL"


@rule("A2", "s3-access-logging", "Buckets log access to a log bucket (log buckets excepted)")
def s3_access_logging(view: StackView) -> Iterator[Finding]:
    log_targets = {
        urn
        for logging in view.of_type(t.BUCKET_LOGGING)
        for urn in logging.property_dependencies.get("targetBucket", ())
    }
    for bucket in view.of_type(t.BUCKET):
        if bucket.urn not in log_targets and not _parts(view, bucket, t.BUCKET_LOGGING):
            yield bucket, "server access logging is off"


@rule("A3", "ecr-immutable-scanned-private", "ECR: immutable tags, scan on push, never public")
def ecr_locked_down(view: StackView) -> Iterator[Finding]:
    for repo in view.of_type(t.ECR_REPOSITORY):
        if repo.props.get("imageTagMutability") != "IMMUTABLE":
            yield repo, "image tags are mutable"
        if repo.prop("imageScanningConfiguration", "scanOnPush") is not True:
            yield repo, "images are not scanned on push"
    for policy in view.of_type(t.ECR_REPOSITORY_POLICY):
        for statement in statements_of(policy.json_prop("policy")):
            principal = statement.get("Principal")
            if statement.get("Effect") == "Allow" and principal in ("*", {"AWS": "*"}):
                yield policy, "repository policy allows any principal"


@rule("R1", "s3-versioning", "Every bucket keeps object versions")
def s3_versioning(view: StackView) -> Iterator[Finding]:
    for bucket in view.of_type(t.BUCKET):
        versions = _parts(view, bucket, t.BUCKET_VERSIONING)
        if not any(v.prop("versioningConfiguration", "status") == "Enabled" for v in versions):
            yield bucket, "versioning is not enabled"


@rule("R1", "s3-object-lock-models-prod", "Prod model-artifact buckets use Object Lock")
def s3_object_lock_models(view: StackView) -> Iterator[Finding]:
    if not view.is_prod:
        return
    for bucket in view.of_type(t.BUCKET):
        if bucket.prop("tags", "purpose") != "models":
            continue
        if bucket.props.get("objectLockEnabled") is not True:
            yield bucket, "prod model-artifact bucket without Object Lock"
        elif not _parts(view, bucket, t.BUCKET_OBJECT_LOCK):
            yield bucket, "Object Lock enabled but no default retention configured"


@rule("R2", "s3-lifecycle", "Lifecycle expires noncurrent versions and aborts stuck uploads")
def s3_lifecycle(view: StackView) -> Iterator[Finding]:
    for bucket in view.of_type(t.BUCKET):
        rules = [
            r
            for config in _parts(view, bucket, t.BUCKET_LIFECYCLE)
            for r in config.props.get("rules") or []
            if r.get("status") == "Enabled"
        ]
        if not any(r.get("noncurrentVersionExpiration") for r in rules):
            yield bucket, "no enabled lifecycle rule expires noncurrent versions"
        if not any(r.get("abortIncompleteMultipartUpload") for r in rules):
            yield bucket, "no enabled lifecycle rule aborts incomplete multipart uploads"
