"""Rule E1 key-use: every resource encrypted with a customer managed key can use it, as the
service that encrypts it calls KMS.

A mock accepts any key policy; KMS refuses a call its key policy does not allow, and the
service fails (a log group cannot be created, an alarm's notification is dropped, a job
cannot read its input). The table says, per resource type and the input property naming
its key, which callers reach KMS and what they send, with the source for each; the rule
builds those requests and evaluates them against the key's policy (iam_eval).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

from . import types as t
from .iam_eval import Request, allows
from .model import Resource, StackView, statements_of
from .registry import Finding, rule

KMS_KEY = "aws:kms/key:Key"
EVENT_TARGET = "aws:cloudwatch/eventTarget:EventTarget"
METRIC_ALARM = "aws:cloudwatch/metricAlarm:MetricAlarm"
BUDGET = "aws:budgets/budget:Budget"
ALERTMANAGER = "aws:amp/alertManagerDefinition:AlertManagerDefinition"
DATA_KEY = ["kms:GenerateDataKey", "kms:Decrypt"]
# A role of the account standing for "the caller" (a job's or the deployer's role).
CALLER_ROLE = "role/mlops-key-use-check"


@dataclass(frozen=True)
class Use:
    """One kind of caller of the key for a resource: `who` is "via:<service>" (an IAM
    principal of the account, through that service: kms:ViaService), "grant:<service>" (the
    same, creating a grant for the AWS resource) or "service:<principal>" (the service
    itself, with the context `context` builds from the resource)."""

    who: str
    actions: tuple[str, ...]
    source: str
    context: Callable[[Resource, str, str], dict[str, str]] | None = None


def _named_arn(service: str, form: str) -> Callable[[Resource, str, str], dict[str, str]]:
    """The encryption context key naming the resource's ARN (`form` after the account)."""

    def build(resource: Resource, region: str, account: str) -> dict[str, str]:
        name = resource.props.get("name") or ""
        key, resource_form = form.split("=", 1)
        arn = f"arn:aws:{service}:{region}:{account}:{resource_form.format(name=name)}"
        return {key: arn}

    return build


def _source_account(_resource: Resource, _region: str, account: str) -> dict[str, str]:
    return {"aws:SourceAccount": account}


VIA = "Key use through the service with the caller's permissions (the service's KMS page)"
GRANT = "The service holds a grant on the key for the resource (its KMS page)"
# Resource type -> (input property naming the key, uses). Sources:
#   S3 User Guide "Using server-side encryption with AWS KMS keys"; SQS Developer Guide
#   "Key management"; SNS Developer Guide "Key management" (CloudWatch alarms, Budgets and
#   AMP publish as their service principals with aws:SourceAccount; EventBridge without
#   it, so with the topic ARN in the encryption context); CloudWatch Logs User Guide
#   "Encrypt log data in CloudWatch Logs using AWS KMS" (logs.<region> principal, context
#   aws:logs:arn); EventBridge User Guide "Amazon SQS queue target" (GenerateDataKey and
#   Decrypt on an encrypted queue); EventBridge Scheduler User Guide "Encryption at rest"
#   (the creator through Scheduler; the execution role decrypts with aws:scheduler:schedule:
#   arn); EKS, ECR, EBS and Lambda KMS pages (grants / kms:ViaService).
TABLE: dict[str, tuple[str, tuple[Use, ...]]] = {
    t.BUCKET_SSE: ("rules", (Use("via:s3", tuple(DATA_KEY), VIA),)),
    "aws:s3/bucketObjectv2:BucketObjectv2": ("kmsKeyId", (Use("via:s3", tuple(DATA_KEY), VIA),)),
    "aws:sqs/queue:Queue": ("kmsMasterKeyId", (Use("via:sqs", tuple(DATA_KEY), VIA),)),
    "aws:sns/topic:Topic": ("kmsMasterKeyId", (Use("via:sns", tuple(DATA_KEY), VIA),)),
    t.LOG_GROUP: (
        "kmsKeyId",
        (
            Use(
                "service:logs",
                ("kms:Encrypt", "kms:Decrypt", "kms:GenerateDataKey", "kms:DescribeKey"),
                "CloudWatch Logs encrypts with the log group's ARN as the context",
                _named_arn("logs", "kms:EncryptionContext:aws:logs:arn=log-group:{name}"),
            ),
        ),
    ),
    t.ECR_REPOSITORY: (
        "encryptionConfigurations",
        (Use("via:ecr", tuple(DATA_KEY), VIA), Use("grant:ecr", ("kms:CreateGrant",), GRANT)),
    ),
    "aws:eks/cluster:Cluster": (
        "encryptionConfig",
        (Use("via:eks", tuple(DATA_KEY), VIA), Use("grant:eks", ("kms:CreateGrant",), GRANT)),
    ),
    "aws:ec2/launchTemplate:LaunchTemplate": (
        "blockDeviceMappings",
        (Use("grant:ec2", ("kms:CreateGrant",), GRANT),),
    ),
    "aws:lambda/function:Function": ("kmsKeyArn", (Use("via:lambda", tuple(DATA_KEY), VIA),)),
    "aws:sagemaker/featureGroup:FeatureGroup": (
        "onlineStoreConfig",
        (
            Use("via:sagemaker", tuple(DATA_KEY), VIA),
            Use("grant:sagemaker", ("kms:CreateGrant",), GRANT),
        ),
    ),
    "aws:sagemaker/pipeline:Pipeline": (
        "pipelineDefinition",
        (
            Use("via:sagemaker", tuple(DATA_KEY), VIA),
            Use("grant:sagemaker", ("kms:CreateGrant",), GRANT),
        ),
    ),
    "aws:scheduler/schedule:Schedule": (
        "kmsKeyArn",
        (
            Use("via:scheduler", ("kms:GenerateDataKey", "kms:Decrypt", "kms:DescribeKey"), VIA),
            Use(
                "role:decrypt",
                ("kms:Decrypt",),
                "The schedule's execution role decrypts the payload when it fires",
                _named_arn(
                    "scheduler",
                    "kms:EncryptionContext:aws:scheduler:schedule:arn=schedule/default/{name}",
                ),
            ),
        ),
    ),
}

# Who publishes into an encrypted topic or queue, found from the stack's other resources.
TOPIC_PUBLISHERS = {
    METRIC_ALARM: "cloudwatch",
    BUDGET: "budgets",
    ALERTMANAGER: "aps",
}


def _request(use: Use, resource: Resource, region: str, account: str, action: str) -> Request:
    kind, _, service = use.who.partition(":")
    caller = {"AWS": f"arn:aws:iam::{account}:{CALLER_ROLE}"}
    context: dict[str, str] = {"kms:CallerAccount": account}
    if kind in ("via", "grant"):
        context["kms:ViaService"] = f"{service}.{region}.amazonaws.com"
        if kind == "grant":
            context["kms:GrantIsForAWSResource"] = "true"
        return Request(action, "*", caller, context)
    if use.context is not None:
        context.update(use.context(resource, region, account))
    if kind == "role":
        return Request(action, "*", caller, context)
    principal = (
        f"{service}.{region}.amazonaws.com" if service == "logs" else f"{service}.amazonaws.com"
    )
    return Request(action, "*", {"Service": principal}, context)


def _publisher_uses(view: StackView, resource: Resource) -> Iterator[Use]:
    """EventBridge rules targeting this topic or queue, alarms, budgets and Alertmanagers
    publishing to it."""
    if resource.type == "aws:sns/topic:Topic":
        if view.dependents(resource, "arn", EVENT_TARGET):
            yield Use(
                "service:events",
                tuple(DATA_KEY),
                "EventBridge delivers with the topic's ARN as the context",
                _named_arn("sns", "kms:EncryptionContext:aws:sns:topicArn={name}"),
            )
        for type_, service in TOPIC_PUBLISHERS.items():
            props = {
                METRIC_ALARM: "alarmActions",
                BUDGET: "notifications",
                ALERTMANAGER: "definition",
            }
            if view.dependents(resource, props[type_], type_):
                yield Use(
                    f"service:{service}", tuple(DATA_KEY), "publishes as itself", _source_account
                )
    if resource.type == "aws:sqs/queue:Queue" and view.dependents(resource, "arn", EVENT_TARGET):
        yield Use(
            "service:events",
            tuple(DATA_KEY),
            "EventBridge delivers with the queue's ARN as the context",
            _named_arn("sqs", "kms:EncryptionContext:aws:sqs:arn={name}"),
        )


@rule("E1", "key-use", "Each encrypted resource's service can use its key (key_use.TABLE)")
def key_use(view: StackView) -> Iterator[Finding]:
    region, account = view.region, view.account_id
    if region is None or account is None:
        return  # not a stack of MlopsEnvironment: nothing says where it runs
    for key in view.of_type(KMS_KEY):
        statements = statements_of(key.json_prop("policy"))
        if not statements:
            continue  # unknown during a preview
        for type_, (prop, uses) in TABLE.items():
            for resource in view.dependents(key, prop, type_):
                for use in (*uses, *_publisher_uses(view, resource)):
                    for action in use.actions:
                        request = _request(use, resource, region, account, action)
                        if not allows(statements, request):
                            yield (
                                resource,
                                f"{key.name} does not let {use.who} call {action} for "
                                f"{resource.name} ({use.source})",
                            )
