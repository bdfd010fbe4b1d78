"""IAM documents of the deployment pipelines (pure data): what the deploy step may do to this
environment's endpoints, and what EventBridge may start when a package is approved."""

from __future__ import annotations

from typing import Any

from components.aws_context import AwsContext
from pipelines.steps.deploy import SCALING_TAG, SERVICE_NAMESPACE
from pipelines.steps.monitor import ANALYZER_REPOSITORY

# SageMaker endpoint variants as Application Auto Scaling names them.
AUTOSCALING_SERVICE = "sagemaker.application-autoscaling.amazonaws.com"


# What Application Auto Scaling checks on the caller of its APIs when the target is a
# SageMaker variant: the caller must itself hold these (Application Auto Scaling User Guide,
# "Identity-based policy examples", "Permissions required for API actions on target
# services and CloudWatch"; the service-linked role's AWSApplicationAutoscalingSageMaker-
# EndpointPolicy holds the same set). Target-tracking alarms are named `TargetTracking-<id>`.
# Deregister's entry is unconfirmed: granted because deregistering deletes the alarms.
ON_BEHALF_OF_THE_CALLER = {
    "application-autoscaling:RegisterScalableTarget": (
        "sagemaker:DescribeEndpoint",
        "sagemaker:DescribeEndpointConfig",
        "sagemaker:UpdateEndpointWeightsAndCapacities",
    ),
    "application-autoscaling:PutScalingPolicy": (
        "cloudwatch:DescribeAlarms",
        "cloudwatch:PutMetricAlarm",
        "cloudwatch:DeleteAlarms",
    ),
    "application-autoscaling:DeleteScalingPolicy": (
        "cloudwatch:DescribeAlarms",
        "cloudwatch:DeleteAlarms",
    ),
    "application-autoscaling:DeregisterScalableTarget": (
        "cloudwatch:DescribeAlarms",
        "cloudwatch:DeleteAlarms",
    ),
}


def _on_behalf_statements(ctx: AwsContext, base: str) -> list[dict[str, Any]]:
    """The ON_BEHALF_OF_THE_CALLER actions, on this environment's endpoints and their
    target-tracking alarms (`TargetTracking-endpoint/<endpoint>/variant/...`)."""
    return [
        {
            "Sid": "ScaleThisEnvironmentsVariants",
            "Effect": "Allow",
            "Action": "sagemaker:UpdateEndpointWeightsAndCapacities",
            "Resource": ctx.arn("sagemaker", f"endpoint/{base}-*"),
        },
        {
            "Sid": "TargetTrackingAlarmsOfThisEnvironment",
            "Effect": "Allow",
            "Action": [
                "cloudwatch:DescribeAlarms",
                "cloudwatch:PutMetricAlarm",
                "cloudwatch:DeleteAlarms",
            ],
            "Resource": ctx.arn("cloudwatch", f"alarm:TargetTracking-endpoint/{base}-*"),
        },
    ]


def _scaling_statements(ctx: AwsContext, stack: str) -> list[dict[str, Any]]:
    """Application Auto Scaling of this environment's endpoint variants only. A scalable
    target's ARN ends in a random id, so the writes are scoped to scalable-target ARNs and by
    the environment tag the deploy step puts on each target (Service Authorization
    Reference, Application Auto Scaling: RegisterScalableTarget takes aws:RequestTag and
    depends on TagResource; Deregister, PutScalingPolicy and DeleteScalingPolicy act on a
    ScalableTarget, which carries aws:ResourceTag; all four take
    application-autoscaling:service-namespace). Only Describe* has no resource scope."""
    targets = ctx.arn("application-autoscaling", "scalable-target/*")
    own = {f"aws:ResourceTag/{SCALING_TAG}": stack}
    sagemaker = {"application-autoscaling:service-namespace": SERVICE_NAMESPACE}
    return [
        {
            "Sid": "RegisterOwnScalableTargets",
            "Effect": "Allow",
            "Action": "application-autoscaling:RegisterScalableTarget",
            "Resource": targets,
            "Condition": {
                "StringEquals": {f"aws:RequestTag/{SCALING_TAG}": stack, **sagemaker},
                # A target that exists already must be this environment's.
                "StringEqualsIfExists": own,
            },
        },
        {
            "Sid": "TagOwnScalableTargets",
            "Effect": "Allow",
            "Action": "application-autoscaling:TagResource",
            "Resource": targets,
            "Condition": {
                "StringEquals": {f"aws:RequestTag/{SCALING_TAG}": stack},
                "StringEqualsIfExists": own,
            },
        },
        {
            "Sid": "ScaleOwnScalableTargets",
            "Effect": "Allow",
            "Action": [
                "application-autoscaling:DeregisterScalableTarget",
                "application-autoscaling:PutScalingPolicy",
                "application-autoscaling:DeleteScalingPolicy",
            ],
            "Resource": targets,
            "Condition": {"StringEquals": {**own, **sagemaker}},
        },
        {
            "Sid": "DescribeScaling",
            "Effect": "Allow",
            "Action": "application-autoscaling:Describe*",
            "Resource": "*",
        },
    ]


def deploy_policy(
    ctx: AwsContext, *, base: str, stack: str, group_prefix: str, analyzer_registry: str
) -> dict[str, Any]:
    """Create and update this environment's models, endpoint configs and endpoints (all
    named `<base>-*`) from this environment's approved packages, scale them, and put them
    under Model Monitor (baselining jobs, job definitions, schedules, also `<base>-*`);
    `analyzer_registry` is the account of the region's Model Monitor analyzer image."""
    named = [
        ctx.arn("sagemaker", f"{kind}/{base}-*")
        for kind in ("model", "endpoint-config", "endpoint")
    ]
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "ReadThisEnvironmentsPackages",
                "Effect": "Allow",
                "Action": "sagemaker:DescribeModelPackage",
                "Resource": ctx.arn("sagemaker", f"model-package/{group_prefix}*"),
            },
            {
                "Sid": "DeployThisEnvironmentsEndpoints",
                "Effect": "Allow",
                "Action": [
                    "sagemaker:CreateModel",
                    "sagemaker:DescribeModel",
                    "sagemaker:CreateEndpointConfig",
                    "sagemaker:DescribeEndpointConfig",
                    "sagemaker:CreateEndpoint",
                    "sagemaker:UpdateEndpoint",
                    "sagemaker:DescribeEndpoint",
                    "sagemaker:AddTags",
                ],
                "Resource": named,
            },
            {
                "Sid": "MonitorThisEnvironmentsEndpoints",
                "Effect": "Allow",
                "Action": [
                    "sagemaker:CreateProcessingJob",
                    "sagemaker:DescribeProcessingJob",
                    "sagemaker:CreateDataQualityJobDefinition",
                    "sagemaker:DescribeDataQualityJobDefinition",
                    "sagemaker:CreateMonitoringSchedule",
                    "sagemaker:DescribeMonitoringSchedule",
                    "sagemaker:UpdateMonitoringSchedule",
                ],
                "Resource": [
                    ctx.arn("sagemaker", f"{kind}/{base}-*")
                    for kind in (
                        "processing-job",
                        "data-quality-job-definition",
                        "monitoring-schedule",
                    )
                ],
            },
            {
                # The baselining and monitoring jobs run AWS's analyzer image.
                "Sid": "PullModelMonitorAnalyzer",
                "Effect": "Allow",
                "Action": [
                    "ecr:BatchGetImage",
                    "ecr:GetDownloadUrlForLayer",
                    "ecr:BatchCheckLayerAvailability",
                ],
                "Resource": AwsContext(analyzer_registry, ctx.region).arn(
                    "ecr", f"repository/{ANALYZER_REPOSITORY}"
                ),
            },
            {
                # Blue/green rollback alarms are checked when the update starts.
                "Sid": "ReadRollbackAlarms",
                "Effect": "Allow",
                "Action": "cloudwatch:DescribeAlarms",
                "Resource": ctx.arn("cloudwatch", f"alarm:{base}-*"),
            },
            *_scaling_statements(ctx, stack),
            *_on_behalf_statements(ctx, base),
            {
                "Sid": "AutoscalingServiceLinkedRole",
                "Effect": "Allow",
                "Action": "iam:CreateServiceLinkedRole",
                "Resource": ctx.arn(
                    "iam",
                    f"role/aws-service-role/{AUTOSCALING_SERVICE}/"
                    "AWSServiceRoleForApplicationAutoScaling_SageMakerEndpoint",
                    regional=False,
                ),
                "Condition": {"StringLike": {"iam:AWSServiceName": AUTOSCALING_SERVICE}},
            },
        ],
    }


def approval_events_pattern(group_name: str) -> dict[str, Any]:
    """A package of this group changed to Approved (by a person, or auto-approval in dev)."""
    return {
        "source": ["aws.sagemaker"],
        "detail-type": ["SageMaker Model Package State Change"],
        "detail": {"ModelPackageGroupName": [group_name], "ModelApprovalStatus": ["Approved"]},
    }


def start_pipelines_policy(pipeline_arns: list[str]) -> dict[str, Any]:
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "StartDeploymentPipelines",
                "Effect": "Allow",
                "Action": "sagemaker:StartPipelineExecution",
                "Resource": pipeline_arns,
            }
        ],
    }
