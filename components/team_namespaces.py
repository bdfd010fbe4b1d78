"""TeamNamespaces: one namespace per team on a training cluster, and the team's AWS identity.

Each namespace gets a ResourceQuota (GPUs, CPU, memory), container defaults, a default-deny
NetworkPolicy with the traffic training needs allowed back, and a `training` service account
that EKS Pod Identity maps to a role reading and writing only `teams/<team>/` of this
environment's artifact buckets and completing callback steps of its pipelines. Works the
same on the environment's own cluster and on a shared one (another stack's), which is all an
on-demand environment creates there.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_aws as aws
import pulumi_kubernetes as k8s

from components.aws_context import AwsContext
from components.cluster_policies import pod_identity_trust_policy, team_artifact_policy
from components.cluster_training_policies import callback_statement
from components.kubernetes_objects import create_object
from components.mlflow_actions import MLFLOW_ACTIONS
from components.naming import Names
from components.team_manifests import TRAINING_SERVICE_ACCOUNT, team_manifests
from stacks.cluster_settings import TeamSettings


@dataclass
class TeamNamespacesArgs:
    teams: dict[str, TeamSettings]
    # team -> namespace name (the team's name on its own cluster; suffixed on a shared one)
    namespaces: dict[str, str]
    context: AwsContext
    names: Names
    cluster_name: pulumi.Input[str]
    kubernetes: k8s.Provider
    bucket_arns: list[pulumi.Output[str]]
    data_key_arn: pulumi.Input[str]
    # The environment's MLflow tracking server: train.py logs to it from the cluster too.
    tracking_server_arn: pulumi.Input[str]


class TeamNamespaces(pulumi.ComponentResource):
    namespaces: dict[str, str]
    role_arns: dict[str, pulumi.Output[str]]

    def __init__(
        self, name: str, args: TeamNamespacesArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("mlops:cluster:TeamNamespaces", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.namespaces = args.namespaces
        self.role_arns = {}
        for team, settings in sorted(args.teams.items()):
            namespace = args.namespaces[team]
            in_cluster = pulumi.ResourceOptions(parent=self, provider=args.kubernetes)
            objects = team_manifests(namespace, team, settings)
            created_namespace = create_object(f"{name}-{team}-namespace", objects[0], in_cluster)
            in_namespace = pulumi.ResourceOptions.merge(
                in_cluster, pulumi.ResourceOptions(depends_on=[created_namespace])
            )
            for manifest in objects[1:]:
                object_name = manifest["metadata"]["name"]
                create_object(
                    f"{name}-{team}-{manifest['kind'].lower()}-{object_name}",
                    manifest,
                    in_namespace,
                )
            role = aws.iam.Role(
                f"{name}-{team}-role",
                name=args.names.team_role(team),
                assume_role_policy=pulumi.Output.from_input(args.cluster_name).apply(
                    functools.partial(_trust_policy_json, args.context, namespace)
                ),
                description=f"Jobs of team {team} in namespace {namespace}",
                opts=child,
            )
            aws.iam.RolePolicy(
                f"{name}-{team}-artifacts",
                role=role.id,
                policy=pulumi.Output.all(args.data_key_arn, *args.bucket_arns).apply(
                    functools.partial(_artifact_policy_json, team)
                ),
                opts=child,
            )
            # A cluster-backed Train step's Job reports its result to its pipeline itself.
            aws.iam.RolePolicy(
                f"{name}-{team}-callbacks",
                role=role.id,
                policy=json.dumps(
                    {
                        "Version": "2012-10-17",
                        "Statement": [callback_statement(args.context, args.names)],
                    }
                ),
                opts=child,
            )
            aws.iam.RolePolicy(
                f"{name}-{team}-tracking",
                role=role.id,
                policy=pulumi.Output.from_input(args.tracking_server_arn).apply(
                    _tracking_policy_json
                ),
                opts=child,
            )
            aws.eks.PodIdentityAssociation(
                f"{name}-{team}-identity",
                cluster_name=args.cluster_name,
                namespace=namespace,
                service_account=TRAINING_SERVICE_ACCOUNT,
                role_arn=role.arn,
                opts=child,
            )
            self.role_arns[team] = role.arn
        self.register_outputs({"namespaces": self.namespaces})


def _artifact_policy_json(team: str, values: list[Any]) -> str:
    key_arn, *bucket_arns = values
    return json.dumps(team_artifact_policy(team, key_arn=key_arn, bucket_arns=bucket_arns))


def _tracking_policy_json(server_arn: str) -> str:
    """The MLflow calls train.py makes (components/mlflow_actions.py), on this server only."""
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Sid": "TrackExperiments",
                    "Effect": "Allow",
                    "Action": MLFLOW_ACTIONS,
                    "Resource": server_arn,
                }
            ],
        }
    )


def _trust_policy_json(ctx: AwsContext, namespace: str, cluster_name: str) -> str:
    return json.dumps(
        pod_identity_trust_policy(ctx, cluster_name, namespace, TRAINING_SERVICE_ACCOUNT)
    )
