"""What `pulumi up` would create for a stack, rendered from an offline recording."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.tree import Tree

from components.schedule_expressions import next_runs
from policy.mlops_rules import Report
from stacks.offline import RecordedResource, StackRecording

# type token -> (label, input key) pairs worth seeing at a glance.
KEY_PROPERTIES: dict[str, tuple[tuple[str, str], ...]] = {
    "pulumi:providers:aws": (("region", "region"), ("accounts", "allowedAccountIds")),
    "aws:ec2/vpc:Vpc": (("cidr", "cidrBlock"),),
    "aws:ec2/subnet:Subnet": (("cidr", "cidrBlock"), ("az", "availabilityZone")),
    "aws:ec2/vpcEndpoint:VpcEndpoint": (
        ("service", "serviceName"),
        ("type", "vpcEndpointType"),
    ),
    "aws:ec2/natGateway:NatGateway": (),
    "aws:ec2/flowLog:FlowLog": (("traffic", "trafficType"),),
    "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule": (
        ("protocol", "ipProtocol"),
        ("ports", "fromPort"),
        ("from", "cidrIpv4"),
    ),
    "aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule": (
        ("protocol", "ipProtocol"),
        ("ports", "fromPort"),
        ("to", "cidrIpv4"),
    ),
    "aws:kms/key:Key": (
        ("rotation", "enableKeyRotation"),
        ("rotation days", "rotationPeriodInDays"),
        ("deletion window", "deletionWindowInDays"),
    ),
    "aws:kms/alias:Alias": (("alias", "name"),),
    "aws:s3/bucket:Bucket": (("bucket", "bucket"), ("object lock", "objectLockEnabled")),
    "aws:s3/bucketObjectLockConfiguration:BucketObjectLockConfiguration": (("rule", "rule"),),
    "aws:ecr/repository:Repository": (
        ("name", "name"),
        ("tags", "imageTagMutability"),
    ),
    "aws:sagemaker/modelPackageGroup:ModelPackageGroup": (("group", "modelPackageGroupName"),),
    "aws:sagemaker/mlflowTrackingServer:MlflowTrackingServer": (
        ("name", "trackingServerName"),
        ("size", "trackingServerSize"),
        ("maintenance", "weeklyMaintenanceWindowStart"),
    ),
    "pulumi:pulumi:StackReference": (("stack", "name"),),
    "aws:sagemaker/pipeline:Pipeline": (("pipeline", "pipelineName"),),
    "aws:scheduler/schedule:Schedule": (
        ("expression", "scheduleExpression"),
        ("timezone", "scheduleExpressionTimezone"),
        ("state", "state"),
    ),
    "aws:cloudwatch/logGroup:LogGroup": (
        ("name", "name"),
        ("retention days", "retentionInDays"),
    ),
    "aws:eks/cluster:Cluster": (("name", "name"), ("version", "version")),
    "aws:eks/nodeGroup:NodeGroup": (
        ("instances", "instanceTypes"),
        ("capacity", "capacityType"),
        ("scaling", "scalingConfig"),
    ),
    "aws:eks/addon:Addon": (("add-on", "addonName"), ("version", "addonVersion")),
    "kubernetes:helm.sh/v3:Release": (("chart", "chart"), ("version", "version")),
}


SCHEDULE = "aws:scheduler/schedule:Schedule"
SSE_CONFIGURATION = (
    "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration"
)


def properties(resource: RecordedResource) -> dict[str, Any]:
    shown = {}
    for label, key in KEY_PROPERTIES.get(resource.type, ()):
        value = resource.inputs.get(key)
        if value not in (None, "", [], {}):
            shown[label] = value
    if resource.type == SCHEDULE and resource.inputs.get("state") == "ENABLED":
        runs = next_runs(
            resource.inputs["scheduleExpression"],
            resource.inputs["scheduleExpressionTimezone"],
            datetime.now(UTC),
        )
        shown["next runs"] = [run.isoformat(timespec="minutes") for run in runs]
    if resource.type == SSE_CONFIGURATION:
        default = resource.inputs["rules"][0]["applyServerSideEncryptionByDefault"]
        shown["sse"] = default["sseAlgorithm"]
        shown["key"] = default.get("kmsMasterKeyId")
    return shown


def as_json(recording: StackRecording, report: Report) -> dict[str, Any]:
    return {
        "stack": recording.stack,
        "environment": recording.settings.environment,
        "resource_count": len(recording.custom_resources),
        "counts_by_type": dict(sorted(recording.count_by_type().items())),
        "resources": [
            {
                "type": r.type,
                "name": r.name,
                "parent": r.parent_name,
                "protect": r.protect,
                "retain_on_delete": r.retain_on_delete,
                "properties": properties(r),
            }
            for r in recording.resources
        ],
        "outputs": recording.outputs,
        "policy": {
            "rules_run": report.rules_run,
            "mandatory_violations": [vars(v) for v in report.mandatory],
            "advisory_violations": [vars(v) for v in report.advisory],
        },
    }


def _label(resource: RecordedResource) -> str:
    kind = resource.type.rsplit(":", 1)[-1]
    flags = "".join(
        f" [bold yellow]{flag}[/]"
        for flag, on in (("protected", resource.protect), ("retained", resource.retain_on_delete))
        if on
    )
    if not resource.custom:
        return f"[bold cyan]{resource.name}[/] [dim]({resource.type})[/]"
    props = ", ".join(f"{k}={v}" for k, v in properties(resource).items())
    return f"[green]{kind}[/] {resource.name}{flags}" + (f" [dim]{props}[/]" if props else "")


def render(recording: StackRecording, report: Report, console: Console) -> None:
    settings = recording.settings
    tree = Tree(
        f"[bold]stack {recording.stack}[/] ({settings.environment}, "
        f"{settings.aws.region}, account {settings.aws.account_id})"
    )
    nodes: dict[str | None, Tree] = {None: tree}
    for resource in recording.resources:
        parent = nodes.get(resource.parent, tree)
        nodes[resource.urn] = parent.add(_label(resource))
    console.print(tree)

    counts = Table(title=f"{len(recording.custom_resources)} resources to create")
    counts.add_column("type")
    counts.add_column("count", justify="right")
    for resource_type, count in sorted(recording.count_by_type().items()):
        counts.add_row(resource_type, str(count))
    console.print(counts)
    _render_policy(recording, report, console)


def _render_policy(recording: StackRecording, report: Report, console: Console) -> None:
    names = {r.urn: r.name for r in recording.resources}
    found = [("mandatory", v) for v in report.mandatory] + [
        ("advisory", v) for v in report.advisory
    ]
    if not found:
        console.print(f"[bold green]policy: {report.rules_run} rules, all passed[/]")
        return
    table = Table(title=f"policy: {report.rules_run} rules, {len(found)} violations")
    for column in ("level", "rule", "resource", "violation"):
        table.add_column(column)
    for level, violation in found:
        style = "red" if level == "mandatory" else "yellow"
        resource = names.get(violation.urn or "", "(stack)")
        table.add_row(f"[{style}]{level}[/]", violation.rule, resource, violation.message)
    console.print(table)
