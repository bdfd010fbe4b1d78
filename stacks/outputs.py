"""Stack outputs: their names (constants the tests and users' scripts import) and values."""

from __future__ import annotations

import pulumi

from components.environment import MlopsEnvironment
from components.model_registry import TRACKING_SERVER_OUTPUT
from components.network import PRIVATE_SUBNETS_OUTPUT, VPC_ID_OUTPUT
from components.shared_cluster import (
    CLUSTER_CA_OUTPUT,
    CLUSTER_ENDPOINT_OUTPUT,
    CLUSTER_NAME_OUTPUT,
    CLUSTER_SECURITY_GROUP_OUTPUT,
)

VPC_ID = VPC_ID_OUTPUT  # what a stack with `network.shared_stack` reads
PRIVATE_SUBNET_IDS = PRIVATE_SUBNETS_OUTPUT
SAGEMAKER_SECURITY_GROUP_ID = "sagemaker_security_group_id"
DATA_KEY_ARN = "data_key_arn"
LOGS_KEY_ARN = "logs_key_arn"
# {"datasets": ..., "models": ..., "pipeline": ..., "access-logs": ...}
BUCKET_NAMES = "bucket_names"
REPOSITORY_URLS = "repository_urls"  # {"training": ..., "inference": ...}
MODEL_PACKAGE_GROUPS = "model_package_groups"  # {model: group name}
MLFLOW_TRACKING_SERVER_ARN = TRACKING_SERVER_OUTPUT  # what a `shared` environment reads
PIPELINE_ARNS = "pipeline_arns"  # {model: SageMaker pipeline ARN}
FEATURE_GROUPS = "feature_groups"  # {model: feature group name}
ALERT_TOPIC_ARN = "alert_topic_arn"
# The training cluster (managed mode): what `shared` environments and kubectl users read.
TRAINING_CLUSTER_NAME = CLUSTER_NAME_OUTPUT
TRAINING_CLUSTER_ENDPOINT = CLUSTER_ENDPOINT_OUTPUT
TRAINING_CLUSTER_CA = CLUSTER_CA_OUTPUT
TRAINING_CLUSTER_SECURITY_GROUP = CLUSTER_SECURITY_GROUP_OUTPUT
TEAM_NAMESPACES = "team_namespaces"  # {team: namespace}
TEAM_ROLE_ARNS = "team_role_arns"  # {team: IAM role its jobs run as}

ALL = (
    VPC_ID,
    PRIVATE_SUBNET_IDS,
    SAGEMAKER_SECURITY_GROUP_ID,
    DATA_KEY_ARN,
    LOGS_KEY_ARN,
    BUCKET_NAMES,
    REPOSITORY_URLS,
    MODEL_PACKAGE_GROUPS,
    MLFLOW_TRACKING_SERVER_ARN,
    FEATURE_GROUPS,
    PIPELINE_ARNS,
    ALERT_TOPIC_ARN,
    TRAINING_CLUSTER_NAME,
    TRAINING_CLUSTER_ENDPOINT,
    TRAINING_CLUSTER_CA,
    TRAINING_CLUSTER_SECURITY_GROUP,
    TEAM_NAMESPACES,
    TEAM_ROLE_ARNS,
)


def export_outputs(env: MlopsEnvironment) -> None:
    pulumi.export(VPC_ID, env.network.vpc_id)
    pulumi.export(PRIVATE_SUBNET_IDS, env.network.private_subnet_ids)
    pulumi.export(SAGEMAKER_SECURITY_GROUP_ID, env.network.sagemaker_security_group_id)
    pulumi.export(DATA_KEY_ARN, env.encryption.data_key_arn)
    pulumi.export(LOGS_KEY_ARN, env.encryption.logs_key_arn)
    pulumi.export(
        BUCKET_NAMES,
        {purpose: bucket.bucket_name for purpose, bucket in env.artifact_store.buckets.items()},
    )
    pulumi.export(REPOSITORY_URLS, env.artifact_store.repository_urls)
    pulumi.export(MODEL_PACKAGE_GROUPS, env.registry.group_names)
    pulumi.export(MLFLOW_TRACKING_SERVER_ARN, env.registry.tracking_server_arn)
    pulumi.export(FEATURE_GROUPS, env.features.group_names)
    if env.pipelines is not None:
        pulumi.export(PIPELINE_ARNS, env.pipelines.pipeline_arns)
    pulumi.export(ALERT_TOPIC_ARN, env.monitoring.alert_topic_arn)
    if env.cluster is not None:
        pulumi.export(TRAINING_CLUSTER_NAME, env.cluster.cluster_name)
        pulumi.export(TRAINING_CLUSTER_ENDPOINT, env.cluster.endpoint)
        pulumi.export(TRAINING_CLUSTER_CA, env.cluster.certificate_authority)
        pulumi.export(TRAINING_CLUSTER_SECURITY_GROUP, env.cluster.cluster_security_group_id)
    if env.teams is not None:
        pulumi.export(TEAM_NAMESPACES, env.teams.namespaces)
        pulumi.export(TEAM_ROLE_ARNS, env.teams.role_arns)
