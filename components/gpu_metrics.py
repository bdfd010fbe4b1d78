"""GpuMetrics: Amazon Managed Service for Prometheus for a training cluster.

A workspace (query and rule logs to a log group under the logs key), an AWS managed scraper
in the cluster's subnets that reads the DCGM exporter and kube-state-metrics (no Prometheus
server to run), GPU alert rules, and an Alertmanager that sends what fires to the
environment's alert topic.

The workspace keeps the AWS owned key: "you can't use AWS managed collectors to ingest into
workspaces that use customer managed keys" (AMP User Guide, "Encryption at rest"); metrics
are operational counters, not training data. The scraper gets its EKS access entry from the
service (clusters in API authentication mode, AMP User Guide "Set up managed collectors for
Amazon EKS"); a second entry for the same role fails with a 409, so only its RBAC is here.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_aws as aws
import pulumi_kubernetes as k8s

from components.gpu_metrics_config import (
    alertmanager_definition,
    gpu_alert_rules,
    scrape_configuration,
    scraper_access_manifests,
)
from components.kubernetes_objects import create_object
from components.naming import Names


@dataclass
class GpuMetricsArgs:
    names: Names
    region: str
    cluster_arn: pulumi.Input[str]
    cluster_security_group_id: pulumi.Input[str]
    subnet_ids: list[pulumi.Output[str]]
    kubernetes: k8s.Provider
    logs_key_arn: pulumi.Input[str]
    log_retention_days: int
    alert_topic_arn: pulumi.Input[str]


class GpuMetrics(pulumi.ComponentResource):
    workspace_arn: pulumi.Output[str]

    def __init__(
        self, name: str, args: GpuMetricsArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("mlops:monitoring:GpuMetrics", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        log_group = aws.cloudwatch.LogGroup(
            f"{name}-logs",
            name=args.names.log_group("prometheus"),
            kms_key_id=args.logs_key_arn,
            retention_in_days=args.log_retention_days,
            opts=child,
        )
        workspace = aws.amp.Workspace(
            f"{name}-workspace",
            alias=args.names.base,
            logging_configuration={"log_group_arn": log_group.arn.apply(lambda arn: f"{arn}:*")},
            opts=child,
        )
        self.workspace_arn = workspace.arn
        aws.amp.Scraper(
            f"{name}-scraper",
            alias=f"{args.names.base}-training-cluster",
            source={
                "eks": {
                    "cluster_arn": args.cluster_arn,
                    "subnet_ids": args.subnet_ids,
                    # The cluster security group: nodes accept it, so the exporters are reachable.
                    "security_group_ids": [args.cluster_security_group_id],
                }
            },
            destination={"amp": {"workspace_arn": workspace.arn}},
            scrape_configuration=scrape_configuration(),
            opts=child,
        )
        # The access entry EKS creates for the scraper's role maps it to this Kubernetes user;
        # read-only RBAC for that user is all the cluster needs from this component.
        in_cluster = pulumi.ResourceOptions(parent=self, provider=args.kubernetes)
        for manifest in scraper_access_manifests():
            create_object(f"{name}-{manifest['kind'].lower()}", manifest, in_cluster)
        aws.amp.RuleGroupNamespace(
            f"{name}-gpu-rules",
            name="gpu",
            workspace_id=workspace.id,
            data=gpu_alert_rules(),
            opts=child,
        )
        aws.amp.AlertManagerDefinition(
            f"{name}-alertmanager",
            workspace_id=workspace.id,
            definition=pulumi.Output.from_input(args.alert_topic_arn).apply(
                lambda arn: alertmanager_definition(arn, args.region)
            ),
            opts=child,
        )
        self.register_outputs({"workspaceArn": self.workspace_arn})
