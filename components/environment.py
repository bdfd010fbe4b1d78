"""MlopsEnvironment: one environment's platform, composed from the capability components.

It owns the AWS provider every child uses, so region, the one allowed account and the cost
tags are decided once: the provider's default tags put `environment`, `owner`, `cost-center`
and `managed-by` on every taggable resource without per-resource copies.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from components.alert_sources import AlertSources
from components.artifact_store import ArtifactStore, ArtifactStoreArgs
from components.aws_context import AwsContext
from components.budget import CostBudget, CostBudgetArgs
from components.cluster_training import ClusterAccess, ClusterTraining, ClusterTrainingArgs
from components.encryption import Encryption, EncryptionArgs
from components.feature_store import FeatureStore, FeatureStoreArgs
from components.gpu_metrics import GpuMetrics, GpuMetricsArgs
from components.ml_pipelines import MlPipelines, MlPipelinesArgs
from components.model_registry import ModelRegistry, ModelRegistryArgs
from components.monitoring import Monitoring, MonitoringArgs
from components.naming import Names
from components.network import Network, NetworkArgs
from components.retraining import DriftRetraining, DriftRetrainingArgs
from components.shared_cluster import SharedCluster, SharedClusterArgs
from components.team_namespaces import TeamNamespaces, TeamNamespacesArgs
from components.training_cluster import TrainingCluster, TrainingClusterArgs
from pipelines.context import STEP_IMAGE_REPOSITORY
from policy.mlops_rules import reachability as reach
from stacks.on_demand_settings import tag_time
from stacks.settings import Settings


def cost_tags(stack: str, settings: Settings) -> dict[str, str]:
    """The tags every taggable resource carries; `settings.tags` add to them. An on-demand
    environment's resources also say when it expires and which stack it was copied from, so
    an orphan found in the console tells whose it was and whether it should still exist."""
    on_demand = settings.on_demand
    lifetime = (
        {}
        if on_demand is None
        else {"expires-at": tag_time(on_demand.expires_at), "on-demand-base": on_demand.base}
    )
    return {
        **settings.tags,
        **lifetime,
        "environment": stack,
        "owner": settings.owner,
        "cost-center": settings.cost_center,
        "managed-by": "pulumi",
    }


def vpc_workloads(settings: Settings) -> frozenset[str]:
    """What this environment runs in its VPC (the network gives each its endpoints)."""
    found = set()
    if settings.models:
        found.add(reach.SAGEMAKER_JOBS)
    if any(m.deployment for m in settings.models.values()):
        found.add(reach.DEPLOY_STEP)
    if settings.cluster.mode == "managed":
        found |= {reach.CLUSTER_NODES, reach.CLUSTER_PODS}
    if _cluster_backed(settings):
        found.add(reach.CLUSTER_LAUNCHER)
    return frozenset(found)


def _cluster_backed(settings: Settings) -> list[str]:
    """The teams whose namespaces cluster-backed Train steps run in."""
    return sorted(
        {
            model.training.cluster.team
            for model in settings.models.values()
            if model.training.backend == "cluster" and model.training.cluster is not None
        }
    )


@dataclass
class MlopsEnvironmentArgs:
    settings: Settings
    # The Pulumi stack name: names resources (mlops-<stack>-...) and is the environment tag.
    stack: str


class MlopsEnvironment(pulumi.ComponentResource):
    network: Network
    encryption: Encryption
    artifact_store: ArtifactStore
    registry: ModelRegistry
    features: FeatureStore
    pipelines: MlPipelines | None
    monitoring: Monitoring
    cluster: TrainingCluster | None
    teams: TeamNamespaces | None
    # How cluster-backed Train steps reach the cluster, and the team namespaces there.
    _cluster_access: ClusterAccess | None
    _namespaces: dict[str, str]

    def __init__(
        self, name: str, args: MlopsEnvironmentArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        settings = args.settings
        # The tier and the rules dev relaxes are what the policy pack reads from the stack.
        policy_facts = {
            "environment": settings.environment,
            "advisoryRules": list(settings.policy.advisory_rules),
            "region": settings.aws.region,
            "accountId": settings.aws.account_id,
        }
        super().__init__("mlops:environment:MlopsEnvironment", name, policy_facts, opts)
        context = AwsContext(account_id=settings.aws.account_id, region=settings.aws.region)
        names = Names(stack=args.stack, context=context)

        provider = aws.Provider(
            f"{name}-aws",
            region=settings.aws.region,
            allowed_account_ids=settings.aws.allowed_account_ids,
            default_tags={"tags": cost_tags(args.stack, settings)},
            opts=pulumi.ResourceOptions(parent=self),
        )
        # Children inherit the provider from their parent component.
        child = pulumi.ResourceOptions(parent=self, providers={"aws": provider})

        self.encryption = Encryption(
            f"{name}-encryption",
            EncryptionArgs(
                settings=settings.encryption,
                protection=settings.protection,
                context=context,
                names=names,
                administrators=tuple(
                    dict.fromkeys(
                        (settings.deployer_role_arn, *settings.encryption.key_administrators)
                    )
                ),
            ),
            opts=child,
        )
        self.network = Network(
            f"{name}-network",
            NetworkArgs(
                settings=settings.network,
                context=context,
                names=names,
                logs_key_arn=self.encryption.logs_key_arn,
                log_retention_days=settings.logging.retention_days,
                workloads=vpc_workloads(settings),
            ),
            opts=child,
        )
        self.artifact_store = ArtifactStore(
            f"{name}-artifacts",
            ArtifactStoreArgs(
                settings=settings.artifact_store,
                protection=settings.protection,
                context=context,
                names=names,
                data_key_arn=self.encryption.data_key_arn,
            ),
            opts=child,
        )
        models_bucket = self.artifact_store.buckets["models"]
        self.registry = ModelRegistry(
            f"{name}-registry",
            ModelRegistryArgs(
                settings=settings.registry,
                models=sorted(settings.models),
                protection=settings.protection,
                context=context,
                names=names,
                artifact_bucket_name=models_bucket.bucket_name,
                artifact_bucket_arn=models_bucket.arn,
                data_key_arn=self.encryption.data_key_arn,
            ),
            opts=child,
        )
        datasets_bucket = self.artifact_store.buckets["datasets"]
        self.features = FeatureStore(
            f"{name}-features",
            FeatureStoreArgs(
                settings=settings.feature_store,
                models=sorted(settings.models),
                protection=settings.protection,
                context=context,
                names=names,
                data_key_arn=self.encryption.data_key_arn,
                offline_bucket_name=datasets_bucket.bucket_name,
                offline_bucket_arn=datasets_bucket.arn,
            ),
            opts=child,
        )
        # Without models there is nothing to train (and no pipeline to alert on).
        self.pipelines = (
            MlPipelines(
                f"{name}-pipelines",
                MlPipelinesArgs(
                    settings=settings,
                    stack=args.stack,
                    context=context,
                    names=names,
                    data_key_arn=self.encryption.data_key_arn,
                    bucket_names={p: b.bucket_name for p, b in self.artifact_store.buckets.items()},
                    bucket_arns={p: b.arn for p, b in self.artifact_store.buckets.items()},
                    repository_arn=self.artifact_store.repository_arns[STEP_IMAGE_REPOSITORY],
                    subnet_ids=self.network.private_subnet_ids,
                    security_group_id=self.network.sagemaker_security_group_id,
                    tracking_server_arn=self.registry.tracking_server_arn,
                ),
                opts=child,
            )
            if settings.models
            else None
        )
        self._create_cluster(name, args, context, names, child)
        self.monitoring = Monitoring(
            f"{name}-monitoring",
            MonitoringArgs(
                settings=settings.monitoring,
                context=context,
                names=names,
                data_key_arn=self.encryption.data_key_arn,
                pipeline_arns=self.pipelines.pipeline_arns if self.pipelines else {},
                pipeline_names=self.pipelines.pipeline_names if self.pipelines else {},
                endpoints={
                    endpoint: deployment
                    for model, endpoint in (
                        self.pipelines.endpoint_names.items() if self.pipelines else ()
                    )
                    if (deployment := settings.models[model].deployment) is not None
                },
                previous_owner_urn=pulumi.create_urn(
                    f"{name}-pipelines", "mlops:pipelines:MlPipelines", parent=self
                ),
            ),
            opts=child,
        )
        publishers = [self.pipelines.alert_sources] if self.pipelines else []
        publishers += self._retrain_on_drift(name, settings, context, names, child)
        publishers += self._train_on_cluster(name, settings, context, names, child)
        if self.cluster is not None:
            gpu_metrics = GpuMetrics(
                f"{name}-gpu-metrics",
                GpuMetricsArgs(
                    names=names,
                    region=context.region,
                    cluster_arn=self.cluster.cluster_arn,
                    cluster_security_group_id=self.cluster.cluster_security_group_id,
                    subnet_ids=self.network.private_subnet_ids,
                    kubernetes=self.cluster.kubernetes,
                    logs_key_arn=self.encryption.logs_key_arn,
                    log_retention_days=settings.logging.retention_days,
                    alert_topic_arn=self.monitoring.alert_topic_arn,
                ),
                opts=child,
            )
            publishers.append(AlertSources(workspaces=[gpu_metrics.workspace_arn]))
        budget = CostBudget(
            f"{name}-budget",
            CostBudgetArgs(
                settings=settings.budget,
                stack=args.stack,
                alert_topic_arn=self.monitoring.alert_topic_arn,
            ),
            opts=child,
        )
        self.monitoring.admit_publishers(budget.alert_sources, *publishers)
        self.register_outputs(policy_facts)

    def _create_cluster(
        self,
        name: str,
        args: MlopsEnvironmentArgs,
        context: AwsContext,
        names: Names,
        child: pulumi.ResourceOptions,
    ) -> None:
        """The environment's own training cluster, or its teams' namespaces on a shared one."""
        settings = args.settings
        cluster_settings = settings.cluster
        self.cluster, self.teams, self._cluster_access = None, None, None
        self._namespaces = {}
        if cluster_settings.mode == "disabled":
            return
        if cluster_settings.mode == "managed":
            self.cluster = TrainingCluster(
                f"{name}-cluster",
                TrainingClusterArgs(
                    settings=cluster_settings,
                    context=context,
                    names=names,
                    subnet_ids=self.network.private_subnet_ids,
                    data_key_arn=self.encryption.data_key_arn,
                    logs_key_arn=self.encryption.logs_key_arn,
                    log_retention_days=settings.logging.retention_days,
                    deletion_protection=settings.protection.protect,
                    instance_tags=cost_tags(args.stack, settings),
                    deployer_role_arn=settings.deployer_role_arn,
                    private_network=settings.network.egress == "none",
                ),
                opts=child,
            )
            cluster_name, kubernetes = self.cluster.cluster_name, self.cluster.kubernetes
            namespaces = {team: team for team in cluster_settings.teams}
            self._cluster_access = ClusterAccess(
                name=cluster_name,
                endpoint=self.cluster.endpoint,
                certificate_authority=self.cluster.certificate_authority,
                security_group_id=self.cluster.cluster_security_group_id,
                kubernetes=kubernetes,
            )
        else:
            assert cluster_settings.shared_stack is not None  # settings validation ensures it
            shared = SharedCluster(
                f"{name}-shared-cluster",
                SharedClusterArgs(stack=cluster_settings.shared_stack, region=context.region),
                opts=child,
            )
            cluster_name, kubernetes = shared.cluster_name, shared.kubernetes
            # The owner's own teams hold the plain names there.
            namespaces = {team: names.shared_namespace(team) for team in cluster_settings.teams}
            if _cluster_backed(settings):
                self._cluster_access = ClusterAccess(
                    name=cluster_name,
                    endpoint=shared.endpoint,
                    certificate_authority=shared.certificate_authority,
                    security_group_id=shared.security_group_id(),
                    kubernetes=kubernetes,
                )
        self._namespaces = namespaces
        if not cluster_settings.teams:
            return
        buckets = self.artifact_store.buckets
        self.teams = TeamNamespaces(
            f"{name}-teams",
            TeamNamespacesArgs(
                teams=dict(cluster_settings.teams),
                namespaces=namespaces,
                context=context,
                names=names,
                cluster_name=cluster_name,
                kubernetes=kubernetes,
                # The pipeline bucket too: cluster-backed Train steps read their channels there.
                bucket_arns=[buckets[p].arn for p in ("datasets", "models", "pipeline")],
                data_key_arn=self.encryption.data_key_arn,
                tracking_server_arn=self.registry.tracking_server_arn,
            ),
            opts=child,
        )

    def _train_on_cluster(
        self,
        name: str,
        settings: Settings,
        context: AwsContext,
        names: Names,
        child: pulumi.ResourceOptions,
    ) -> list[AlertSources]:
        """The queue and launcher of cluster-backed Train steps, where a model has one."""
        teams = _cluster_backed(settings)
        if not teams or self.pipelines is None or self._cluster_access is None:
            return []
        cluster = settings.cluster
        training = ClusterTraining(
            f"{name}-cluster-training",
            ClusterTrainingArgs(
                context=context,
                names=names,
                cluster=self._cluster_access,
                namespaces={team: self._namespaces[team] for team in teams},
                team_gpus={team: cluster.teams[team].gpus for team in teams},
                accelerators=[pool.accelerator for pool in cluster.gpu_pools.values()],
                training_operator=cluster.training_operator,
                vpc_id=self.network.vpc_id,
                subnet_ids=self.network.private_subnet_ids,
                pipeline_role_name=self.pipelines.execution_role_name,
                pipeline_role_arn=self.pipelines.execution_role_arn,
                models_bucket_arn=self.artifact_store.buckets["models"].arn,
                data_key_arn=self.encryption.data_key_arn,
                logs_key_arn=self.encryption.logs_key_arn,
                log_retention_days=settings.logging.retention_days,
                alert_topic_arn=self.monitoring.alert_topic_arn,
            ),
            opts=child,
        )
        return [training.alert_sources]

    def _retrain_on_drift(
        self,
        name: str,
        settings: Settings,
        context: AwsContext,
        names: Names,
        child: pulumi.ResourceOptions,
    ) -> list[AlertSources]:
        """Deployed models that retrain when their endpoint's inputs drift."""
        if self.pipelines is None:
            return []
        sources = []
        for model, endpoint in sorted(self.pipelines.endpoint_names.items()):
            deployment = settings.models[model].deployment
            if deployment is None or not deployment.retrain_on_drift:
                continue
            retraining = DriftRetraining(
                f"{name}-{model}-retraining",
                DriftRetrainingArgs(
                    model=model,
                    context=context,
                    names=names,
                    endpoint_name=endpoint,
                    training_pipeline_name=self.pipelines.pipeline_names[model],
                    training_pipeline_arn=self.pipelines.pipeline_arns[model],
                    cooldown_hours=deployment.retrain_cooldown_hours,
                    alert_topic_arn=self.monitoring.alert_topic_arn,
                    data_key_arn=self.encryption.data_key_arn,
                    logs_key_arn=self.encryption.logs_key_arn,
                    log_retention_days=settings.logging.retention_days,
                ),
                opts=child,
            )
            sources.append(retraining.alert_sources)
        return sources
