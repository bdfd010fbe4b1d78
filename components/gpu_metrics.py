"""GpuMetrics: Amazon Managed Service for Prometheus for a training cluster.

A workspace encrypted with the data key (query and rule logs to an encrypted log group), an
AWS managed scraper in the cluster's subnets that reads the DCGM exporter and
kube-state-metrics (no Prometheus server to run), GPU alert rules, and an Alertmanager
that sends what fires to the environment's alert topic.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_aws as aws
import pulumi_kubernetes as k8s

from components.gpu_metrics_config import (
    SCRAPER_USER,
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
    cluster_name: pulumi.Input[str]
    cluster_arn: pulumi.Input[str]
    cluster_security_group_id: pulumi.Input[str]
    subnet_ids: list[pulumi.Output[str]]
    kubernetes: k8s.Provider
    data_key_arn: pulumi.Input[str]
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
            kms_key_arn=args.data_key_arn,
            logging_configuration={"log_group_arn": log_group.arn.apply(lambda arn: f"{arn}:*")},
            opts=child,
        )
        self.workspace_arn = workspace.arn
        scraper = aws.amp.Scraper(
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
        # The scraper's role reads metrics as a Kubernetes user with read-only RBAC.
        aws.eks.AccessEntry(
            f"{name}-scraper-access",
            cluster_name=args.cluster_name,
            principal_arn=scraper.role_arn,
            type="STANDARD",
            user_name=SCRAPER_USER,
            opts=child,
        )
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
