"""ClusterTraining: what lets a pipeline's Train step run as a Job on the GPU cluster.

A cluster-backed Train step is a SageMaker CallbackStep: it puts its request on this
component's queue (encrypted with the data key, readable by the launcher only) and waits.
The launcher Lambda (pipelines/steps/launcher.py), in the VPC in its own security group
(HTTPS out only), which the cluster security group admits on 443 to the private API
endpoint and nothing else (not the kubelets, not the pods), turns each request into a Job
in the model's team namespace, where its EKS access entry lets it create Jobs and nothing
else; requests it cannot start fail their step with the reason. Every few minutes the same
Lambda sweeps the namespaces for Jobs that died without reporting (deadline, back-off
limit) and fails their steps, so no execution waits forever. Messages that keep failing land
in a dead-letter queue, whose depth alarms on the environment's alert topic.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_aws as aws
import pulumi_kubernetes as k8s

from components.alert_sources import AlertSources
from components.aws_context import AwsContext
from components.cluster_training_policies import (
    EDIT_ACCESS_POLICY,
    LAUNCHER_GROUP,
    launcher_policy,
    pytorch_job_rbac,
    queue_policy,
    send_requests_policy,
)
from components.kubernetes_objects import create_object
from components.lambda_package import (
    RUNTIME,
    code_archive,
    function_logs_and_role,
    package_files,
)
from components.naming import Names
from components.queues import DeadLetterArgs, dead_letter_queue, redrive_to
from pipelines.context import CLUSTER_TRAINING_QUEUE
from pipelines.environment_variables import (
    MLOPS_CLUSTER_CA,
    MLOPS_CLUSTER_ENDPOINT,
    MLOPS_CLUSTER_NAME,
    MLOPS_GPU_ACCELERATORS,
    MLOPS_TEAM_GPUS,
    MLOPS_TEAM_NAMESPACES,
    MLOPS_TRAINING_OPERATOR,
)
from pipelines.steps.cluster_request import MAX_RECEIVES

# The launcher's code: its modules and what they import, as a package.
LAUNCHER_FILES = package_files(
    "aws_calls",
    "cluster_request",
    "cluster_run",
    "cluster_job",
    "eks_api",
    "launcher",
    "stage_code",
)
LAUNCHER_HANDLER = "pipelines.steps.launcher.handler"
LAUNCHER_TIMEOUT_SECONDS = 120
# SQS hides a message this long while the launcher works on it (AWS: >= 6x the timeout).
VISIBILITY_TIMEOUT_SECONDS = 6 * LAUNCHER_TIMEOUT_SECONDS
SWEEP_SCHEDULE = "rate(5 minutes)"
HTTPS = 443
SWEEP_EVENT = {"sweep": True}


@dataclass
class ClusterAccess:
    """How to reach a training cluster: its own or a shared one."""

    name: pulumi.Input[str]
    endpoint: pulumi.Input[str]
    certificate_authority: pulumi.Input[str]
    security_group_id: pulumi.Input[str]
    kubernetes: k8s.Provider


@dataclass
class ClusterTrainingArgs:
    context: AwsContext
    names: Names
    cluster: ClusterAccess
    # team -> namespace and GPU quota, for the teams cluster-backed models train in
    namespaces: dict[str, str]
    team_gpus: dict[str, int]
    # GPU labels the cluster's pools offer (empty: unknown, a shared cluster)
    accelerators: list[str]
    training_operator: bool
    vpc_id: pulumi.Input[str]
    subnet_ids: list[pulumi.Output[str]]
    pipeline_role_name: pulumi.Input[str]
    pipeline_role_arn: pulumi.Input[str]
    models_bucket_arn: pulumi.Input[str]
    data_key_arn: pulumi.Input[str]
    logs_key_arn: pulumi.Input[str]
    log_retention_days: int
    alert_topic_arn: pulumi.Input[str]


class ClusterTraining(pulumi.ComponentResource):
    queue_url: pulumi.Output[str]
    launcher_role_arn: pulumi.Output[str]

    def __init__(
        self, name: str, args: ClusterTrainingArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("mlops:training:ClusterTraining", name, None, opts)
        self._name, self._args = name, args
        self.alert_sources = AlertSources()
        child = pulumi.ResourceOptions(parent=self)
        queue = self._queues(child)
        function, role = self._launcher(queue, child)
        aws.lambda_.EventSourceMapping(
            f"{name}-requests",
            event_source_arn=queue.arn,
            function_name=function.arn,
            batch_size=5,
            # The launcher reports which messages to retry; the others are done.
            function_response_types=["ReportBatchItemFailures"],
            opts=child,
        )
        self._sweeps(function, child)
        self._cluster_access(role, child)
        self.queue_url = queue.url
        self.launcher_role_arn = role.arn
        self.register_outputs({"queueUrl": self.queue_url})

    def _queues(self, child: pulumi.ResourceOptions) -> aws.sqs.Queue:
        name, args = self._name, self._args
        dead_letters, alarm = dead_letter_queue(
            f"{name}-dead-letters",
            DeadLetterArgs(
                queue_name=args.names.queue(f"{CLUSTER_TRAINING_QUEUE}-dlq"),
                key_arn=args.data_key_arn,
                alarm_name=f"{args.names.queue(CLUSTER_TRAINING_QUEUE)}-dead-letters",
                alarm_description=(
                    "Training requests the launcher gave up on without failing their steps "
                    "(it could not reach SageMaker either): those executions wait until "
                    "stopped; see the launcher's logs"
                ),
                alert_topic_arn=args.alert_topic_arn,
            ),
            child,
        )
        self.alert_sources.alarms.append(alarm.arn)
        queue = aws.sqs.Queue(
            f"{name}-queue",
            name=args.names.queue(CLUSTER_TRAINING_QUEUE),
            kms_master_key_id=args.data_key_arn,
            visibility_timeout_seconds=VISIBILITY_TIMEOUT_SECONDS,
            redrive_policy=redrive_to(dead_letters, MAX_RECEIVES),
            opts=child,
        )
        aws.sqs.QueuePolicy(
            f"{name}-queue-policy",
            queue_url=queue.url,
            policy=_policy_json(queue_policy, queue.arn, args.pipeline_role_arn),
            opts=child,
        )
        aws.iam.RolePolicy(
            f"{name}-send-requests",
            role=args.pipeline_role_name,
            policy=_policy_json(send_requests_policy, queue.arn, args.data_key_arn),
            opts=child,
        )
        return queue

    def _launcher(
        self, queue: aws.sqs.Queue, child: pulumi.ResourceOptions
    ) -> tuple[aws.lambda_.Function, aws.iam.Role]:
        name, args = self._name, self._args
        security_group, api_ingress = self._launcher_network(child)
        function_name = args.names.function("cluster-launcher")
        logs, role = function_logs_and_role(
            function_name,
            logs_resource=f"{name}-logs",
            role_resource=f"{name}-launcher-role",
            description="Turns cluster training requests into Jobs in the team namespaces",
            context=args.context,
            logs_key_arn=args.logs_key_arn,
            retention_days=args.log_retention_days,
            opts=child,
        )
        access = aws.iam.RolePolicy(
            f"{name}-launcher-access",
            role=role.id,
            policy=pulumi.Output.all(
                queue.arn,
                args.data_key_arn,
                args.models_bucket_arn,
                logs.arn,
                security_group.id,
                *args.subnet_ids,
            ).apply(self._launcher_policy_json),
            opts=child,
        )
        function = aws.lambda_.Function(
            f"{name}-launcher",
            name=function_name,
            description="Starts cluster-backed Train steps as Kubernetes Jobs; sweeps dead ones",
            role=role.arn,
            runtime=RUNTIME,
            handler=LAUNCHER_HANDLER,
            code=code_archive(LAUNCHER_FILES),
            timeout=LAUNCHER_TIMEOUT_SECONDS,
            kms_key_arn=args.data_key_arn,
            # In the VPC: the API endpoint is private.
            vpc_config={"subnet_ids": args.subnet_ids, "security_group_ids": [security_group.id]},
            environment={"variables": self._environment()},
            logging_config={"log_format": "Text", "log_group": logs.name},
            opts=pulumi.ResourceOptions(parent=self, depends_on=[logs, access, api_ingress]),
        )
        return function, role

    def _launcher_network(
        self, child: pulumi.ResourceOptions
    ) -> tuple[aws.ec2.SecurityGroup, aws.vpc.SecurityGroupIngressRule]:
        """The launcher's own security group, and the cluster's rule admitting it to the API."""
        name, args = self._name, self._args
        group = aws.ec2.SecurityGroup(
            f"{name}-launcher-sg",
            vpc_id=args.vpc_id,
            description="Cluster launcher Lambda: HTTPS out, nothing in",
            opts=child,
        )
        # Without NAT, HTTPS reaches only the VPC endpoints, the S3 gateway and the cluster.
        aws.vpc.SecurityGroupEgressRule(
            f"{name}-launcher-https-out",
            security_group_id=group.id,
            ip_protocol="tcp",
            from_port=HTTPS,
            to_port=HTTPS,
            cidr_ipv4="0.0.0.0/0",
            description="HTTPS to the Kubernetes API and AWS APIs",
            opts=child,
        )
        ingress = aws.vpc.SecurityGroupIngressRule(
            f"{name}-api-from-launcher",
            security_group_id=args.cluster.security_group_id,
            ip_protocol="tcp",
            from_port=HTTPS,
            to_port=HTTPS,
            referenced_security_group_id=group.id,
            description="Kubernetes API from the cluster launcher Lambda",
            opts=child,
        )
        return group, ingress

    def _launcher_policy_json(self, values: list[Any]) -> str:
        queue_arn, key_arn, bucket_arn, log_group_arn, security_group, *subnets = values
        args = self._args
        return json.dumps(
            launcher_policy(
                args.context,
                args.names,
                queue_arn=queue_arn,
                key_arn=key_arn,
                models_bucket_arn=bucket_arn,
                log_group_arn=log_group_arn,
                subnet_ids=list(subnets),
                security_group_id=security_group,
            )
        )

    def _environment(self) -> dict[str, pulumi.Input[str]]:
        args = self._args
        return {
            MLOPS_CLUSTER_NAME.name: args.cluster.name,
            MLOPS_CLUSTER_ENDPOINT.name: args.cluster.endpoint,
            MLOPS_CLUSTER_CA.name: args.cluster.certificate_authority,
            MLOPS_TEAM_NAMESPACES.name: json.dumps(args.namespaces, sort_keys=True),
            MLOPS_TEAM_GPUS.name: json.dumps(args.team_gpus, sort_keys=True),
            MLOPS_GPU_ACCELERATORS.name: json.dumps(sorted(args.accelerators)),
            MLOPS_TRAINING_OPERATOR.name: "true" if args.training_operator else "false",
        }

    def _sweeps(self, function: aws.lambda_.Function, child: pulumi.ResourceOptions) -> None:
        """Jobs that died without reporting fail their steps within minutes."""
        name, args = self._name, self._args
        rule = aws.cloudwatch.EventRule(
            f"{name}-sweep",
            name=args.names.event_rule("cluster-sweep"),
            description="Fails the pipeline steps of training Jobs that died without reporting",
            schedule_expression=SWEEP_SCHEDULE,
            opts=child,
        )
        permission = aws.lambda_.Permission(
            f"{name}-sweep-invoke",
            action="lambda:InvokeFunction",
            function=function.name,
            principal=args.context.service_principal("events"),
            source_arn=rule.arn,
            opts=child,
        )
        aws.cloudwatch.EventTarget(
            f"{name}-sweep-target",
            rule=rule.name,
            arn=function.arn,
            input=json.dumps(SWEEP_EVENT),
            opts=pulumi.ResourceOptions(parent=self, depends_on=[permission]),
        )

    def _cluster_access(self, role: aws.iam.Role, child: pulumi.ResourceOptions) -> None:
        """An access entry for the launcher: edit rights in the team namespaces only (and
        PyTorchJobs there, where the training operator runs)."""
        name, args = self._name, self._args
        entry = aws.eks.AccessEntry(
            f"{name}-access-entry",
            cluster_name=args.cluster.name,
            principal_arn=role.arn,
            type="STANDARD",
            kubernetes_groups=[LAUNCHER_GROUP] if args.training_operator else None,
            opts=child,
        )
        if args.training_operator:
            in_cluster = pulumi.ResourceOptions(parent=self, provider=args.cluster.kubernetes)
            for team, namespace in sorted(args.namespaces.items()):
                for manifest in pytorch_job_rbac(namespace):
                    create_object(f"{name}-{team}-{manifest['kind'].lower()}", manifest, in_cluster)
        aws.eks.AccessPolicyAssociation(
            f"{name}-access-policy",
            cluster_name=args.cluster.name,
            principal_arn=role.arn,
            policy_arn=f"arn:{args.context.partition}:eks::aws:cluster-access-policy/"
            f"{EDIT_ACCESS_POLICY}",
            access_scope={"type": "namespace", "namespaces": sorted(args.namespaces.values())},
            opts=pulumi.ResourceOptions(parent=self, depends_on=[entry]),
        )


def _policy_json(build: Callable[..., dict[str, Any]], *inputs: pulumi.Input[str]) -> Any:
    """The JSON of `build(*inputs)` once the inputs are known."""
    return pulumi.Output.all(*inputs).apply(lambda values: json.dumps(build(*values)))
