"""SageMaker rules: N1-N4, E5, E6, R4-R7, A5.

Models, endpoints, feature groups and monitoring are resources; training and processing jobs
exist only inside pipeline definitions (JSON text), read through `pipeline_definitions`.
Props and step arguments are looked up with `lookup`, which tells an absent value (MISSING, a
violation where the value is required) from an unknown one (None during a preview, or a
SageMaker run-time expression in a definition: never a violation).
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Callable, Iterator
from typing import Any

from . import types as t
from .iam import identity_documents
from .model import Resource, StackView, statements_of
from .pipeline_definitions import (
    MISSING,
    PROCESSING,
    TRAINING,
    TRANSFORM,
    TUNING,
    JobStep,
    lookup,
    processing_jobs,
    steps,
    training_jobs,
    unset,
)
from .registry import Finding, rule

MODEL = "aws:sagemaker/model:Model"
ENDPOINT_CONFIGURATION = "aws:sagemaker/endpointConfiguration:EndpointConfiguration"
ENDPOINT = "aws:sagemaker/endpoint:Endpoint"
DOMAIN = "aws:sagemaker/domain:Domain"
NOTEBOOK = "aws:sagemaker/notebookInstance:NotebookInstance"
FEATURE_GROUP = "aws:sagemaker/featureGroup:FeatureGroup"
MONITORING_SCHEDULE = "aws:sagemaker/monitoringSchedule:MonitoringSchedule"
# pulumi-aws v7 has no model quality / bias / explainability job definition resources.
DATA_QUALITY_JOB = "aws:sagemaker/dataQualityJobDefinition:DataQualityJobDefinition"
SCALING_TARGET = "aws:appautoscaling/target:Target"
METRIC_ALARM = "aws:cloudwatch/metricAlarm:MetricAlarm"

SAGEMAKER_JOBS_PURPOSE = "sagemaker-jobs"
# Multi-instance training with inter-container encryption uses IPsec between the instances.
IPSEC_SELF_INGRESS = (("17", 500, "UDP 500 (IKE)"), ("50", None, "ESP (IP protocol 50)"))
PROTOCOL_NUMBERS = {"udp": "17", "tcp": "6", "esp": "50", "all": "-1"}

# Instance families with NVMe instance storage. SageMaker encrypts that storage in hardware and
# rejects a VolumeKmsKeyId for them (CreateTrainingJob ResourceConfig / CreateProcessingJob
# ProcessingClusterConfig docs), so E5 cannot ask for one there.
LOCAL_STORAGE_INSTANCE = re.compile(
    r"^ml\.(?:[a-z]+\d+[a-z]*d[a-z]?|g5|g6|g6e|gr6|p5|p5e|p5en|p6-b200|dl1|trn1|trn1n|trn2)\."
)

PROD_MIN_INSTANCES = 2
VARIANT_DIMENSION = "sagemaker:variant:DesiredInstanceCount"
MAX_WARM_POOL_SECONDS = 3600
DEFAULT_MAX_RUNTIME_SECONDS = 86400  # CreateTrainingJob StoppingCondition default: 1 day

RETRIED_STEP_TYPES = (TRAINING, PROCESSING, TRANSFORM, TUNING)
# sagemaker.mlops.workflow.retry: SageMakerJobExceptionTypeEnum and StepExceptionTypeEnum,
# serialized as {"ExceptionType": [...], "BackoffRate": ..., "MaxAttempts": ...}.
REQUIRED_RETRIES = (
    "SageMaker.CAPACITY_ERROR",
    "SageMaker.JOB_INTERNAL_ERROR",
    "SageMaker.RESOURCE_LIMIT",
    "Step.THROTTLING",
    "Step.SERVICE_FAULT",
)

APPROVE_ACTION = "sagemaker:UpdateModelPackage"
BUILD_ACTIONS = (
    "sagemaker:CreateModelPackage",
    "sagemaker:CreateTrainingJob",
    "sagemaker:CreateProcessingJob",
    "sagemaker:CreatePipeline",
    "sagemaker:UpdatePipeline",
    "sagemaker:StartPipelineExecution",
)


def _as_list(value: Any) -> list[Any]:
    if value is None or value is MISSING:
        return []
    return value if isinstance(value, list) else [value]


def _vpc_gaps(vpc_config: Any, subnets: str, groups: str) -> list[str]:
    """The VPC settings a job or model lacks (nothing where they are unknown)."""
    if vpc_config is None:
        return []
    if unset(vpc_config):
        return ["no VPC configuration"]
    return [
        f"VPC configuration without {key}"
        for key in (subnets, groups)
        if unset(lookup(vpc_config, key))
    ]


@rule("N1", "sagemaker-in-vpc", "SageMaker models, training and processing jobs run in the VPC")
def sagemaker_in_vpc(view: StackView) -> Iterator[Finding]:
    for model in view.of_type(MODEL):
        for gap in _vpc_gaps(lookup(model.props, "vpcConfig"), "subnets", "securityGroupIds"):
            yield model, f"model: {gap}"
    for job in training_jobs(view):
        for gap in _vpc_gaps(job.get("VpcConfig"), "Subnets", "SecurityGroupIds"):
            yield job.pipeline, f"{job.label}: {gap}"
    for job in processing_jobs(view):
        vpc_config = job.get("NetworkConfig", "VpcConfig")
        for gap in _vpc_gaps(vpc_config, "Subnets", "SecurityGroupIds"):
            yield job.pipeline, f"{job.label}: {gap}"


@rule("N2", "sagemaker-network-isolation", "Models and training jobs run network-isolated")
def sagemaker_network_isolation(view: StackView) -> Iterator[Finding]:
    for model in view.of_type(MODEL):
        isolated = lookup(model.props, "enableNetworkIsolation")
        if isolated is not None and isolated is not True:
            yield model, "model does not enable network isolation"
    for job in training_jobs(view):
        isolated = job.get("EnableNetworkIsolation")
        if isolated is None or isolated is True:
            continue
        # The documented exception (SECURITY.md N2: "where the container needs no network"):
        # a training container that logs to MLflow must reach the tracking server, which
        # network isolation would cut off. MLFLOW_TRACKING_URI in its environment says so.
        environment = job.get("Environment")
        if environment is None or (
            isinstance(environment, dict) and "MLFLOW_TRACKING_URI" in environment
        ):
            continue
        yield job.pipeline, f"{job.label}: network isolation is off (and no MLflow to reach)"


def _may_run_several_instances(job: JobStep) -> bool:
    groups = job.get("ResourceConfig", "InstanceGroups")
    counts = (
        [lookup(g, "InstanceCount") for g in groups]
        if isinstance(groups, list) and groups
        else [job.get("ResourceConfig", "InstanceCount")]
    )
    if None in counts:
        return True  # a pipeline parameter may set it above 1 at run time
    total = sum(c for c in counts if isinstance(c, int))
    return total > 1


def _protocol(value: Any) -> str | None:
    return None if value is None else PROTOCOL_NUMBERS.get(str(value).lower(), str(value))


def _self_ingress(view: StackView, group: Resource) -> list[tuple[Any, Any, Any]]:
    """(protocol, fromPort, toPort) of every ingress rule of `group` from `group` itself."""
    rules = [
        (_protocol(r.props.get("ipProtocol")), r.props.get("fromPort"), r.props.get("toPort"))
        for r in view.dependents(group, "securityGroupId", t.INGRESS_RULE)
        if group.urn in r.property_dependencies.get("referencedSecurityGroupId", ())
    ]
    rules += [
        (_protocol(i.get("protocol")), i.get("fromPort"), i.get("toPort"))
        for i in group.props.get("ingress") or []
        if isinstance(i, dict) and i.get("self") is True
    ]
    return rules


def _allows(ingress: tuple[Any, Any, Any], protocol: str, port: int | None) -> bool | None:
    """Whether an ingress rule admits `protocol`/`port`; None where it cannot be known yet."""
    rule_protocol, low, high = ingress
    if rule_protocol is None:
        return None
    if rule_protocol == "-1":
        return True
    if rule_protocol != protocol:
        return False
    if port is None:
        return True
    if not isinstance(low, int) or not isinstance(high, int):
        return None
    return low <= port <= high


@rule(
    "N3",
    "inter-container-encryption",
    "Multi-instance training encrypts inter-container traffic; its security group allows "
    "itself UDP 500 and ESP",
)
def inter_container_encryption(view: StackView) -> Iterator[Finding]:
    for job in training_jobs(view):
        encrypted = job.get("EnableInterContainerTrafficEncryption")
        if encrypted is None or encrypted is True or not _may_run_several_instances(job):
            continue
        yield job.pipeline, f"{job.label}: multi-instance, inter-container traffic unencrypted"
    for group in view.of_type(t.SECURITY_GROUP):
        if lookup(group.props, "tags", "purpose") != SAGEMAKER_JOBS_PURPOSE:
            continue
        ingress = _self_ingress(view, group)
        for protocol, port, what in IPSEC_SELF_INGRESS:
            allowed = [_allows(i, protocol, port) for i in ingress]
            if True not in allowed and None not in allowed:
                yield group, f"SageMaker jobs security group does not allow itself {what}"


@rule("N4", "sagemaker-domain-notebooks", "Domains are VpcOnly; notebooks: no internet, no root")
def sagemaker_domain_notebooks(view: StackView) -> Iterator[Finding]:
    # Provider defaults: PublicInternetOnly, direct internet Enabled, root access Enabled.
    for domain in view.of_type(DOMAIN):
        access = lookup(domain.props, "appNetworkAccessType")
        if access is not None and access != "VpcOnly":
            shown = "PublicInternetOnly (default)" if access is MISSING else access
            yield domain, f"domain app network access is {shown}, not VpcOnly"
    for notebook in view.of_type(NOTEBOOK):
        for prop, what in (("directInternetAccess", "direct internet"), ("rootAccess", "root")):
            value = lookup(notebook.props, prop)
            if value is not None and value != "Disabled":
                yield notebook, f"notebook instance allows {what} access"


def _has_local_storage(job: JobStep, cluster: tuple[str, ...]) -> bool | None:
    """Whether every instance of the job has NVMe instance storage; None where unknown."""
    groups = job.get(*cluster, "InstanceGroups")
    types = (
        [lookup(g, "InstanceType") for g in groups]
        if isinstance(groups, list) and groups
        else [job.get(*cluster, "InstanceType")]
    )
    if any(not isinstance(each, str) for each in types):
        return None
    return all(LOCAL_STORAGE_INSTANCE.match(each) for each in types)


def _volume_key_gap(job: JobStep, cluster: tuple[str, ...]) -> Iterator[str]:
    """The job's ML storage volume lacks a KMS key (instance storage excepted)."""
    if _has_local_storage(job, cluster) is False and unset(job.get(*cluster, "VolumeKmsKeyId")):
        yield f"{job.label}: {'.'.join(cluster)}.VolumeKmsKeyId not set"


@rule(
    "E5",
    "sagemaker-kms",
    "Endpoint configs, training/processing volumes and outputs and Model Monitor outputs use KMS",
)
def sagemaker_kms(view: StackView) -> Iterator[Finding]:
    for config in view.of_type(ENDPOINT_CONFIGURATION):
        if unset(lookup(config.props, "kmsKeyArn")):
            yield config, "endpoint configuration has no kmsKeyArn"
    for job in training_jobs(view):
        if unset(job.get("OutputDataConfig", "KmsKeyId")):
            yield job.pipeline, f"{job.label}: OutputDataConfig.KmsKeyId not set"
        for gap in _volume_key_gap(job, ("ResourceConfig",)):
            yield job.pipeline, gap
    for job in processing_jobs(view):
        # A processing job without outputs writes nothing to encrypt.
        output = job.get("ProcessingOutputConfig")
        if output is not MISSING and unset(lookup(output, "KmsKeyId")):
            yield job.pipeline, f"{job.label}: ProcessingOutputConfig.KmsKeyId not set"
        for gap in _volume_key_gap(job, ("ProcessingResources", "ClusterConfig")):
            yield job.pipeline, gap
    for definition in view.of_type(DATA_QUALITY_JOB):
        yield from _monitor_gaps(
            definition,
            lookup(definition.props, "jobResources", "clusterConfig"),
            lookup(definition.props, "dataQualityJobOutputConfig"),
        )
    for schedule in view.of_type(MONITORING_SCHEDULE):
        inline = lookup(schedule.props, "monitoringScheduleConfig", "monitoringJobDefinition")
        if inline is not MISSING and inline is not None:
            yield from _monitor_gaps(
                schedule,
                lookup(inline, "monitoringResources", "clusterConfig"),
                lookup(inline, "monitoringOutputConfig"),
            )


def _monitor_gaps(holder: Resource, cluster: Any, output: Any) -> Iterator[Finding]:
    if unset(lookup(cluster, "volumeKmsKeyId")):
        yield holder, "Model Monitor job volume has no volumeKmsKeyId"
    if unset(lookup(output, "kmsKeyId")):
        yield holder, "Model Monitor job output has no kmsKeyId"


@rule("E6", "feature-group-kms", "Feature group online and offline stores use KMS keys")
def feature_group_kms(view: StackView) -> Iterator[Finding]:
    for group in view.of_type(FEATURE_GROUP):
        online = lookup(group.props, "onlineStoreConfig")
        if lookup(online, "enableOnlineStore") is True and unset(
            lookup(online, "securityConfig", "kmsKeyId")
        ):
            yield group, "online store has no KMS key (securityConfig.kmsKeyId)"
        offline = lookup(group.props, "offlineStoreConfig")
        if offline is not MISSING and unset(lookup(offline, "s3StorageConfig", "kmsKeyId")):
            yield group, "offline store has no KMS key (s3StorageConfig.kmsKeyId)"


def _unwatched(
    endpoints: list[Resource],
    watchers: list[Resource],
    watches: Callable[[Resource, Resource], bool | None],
) -> list[Resource]:
    """Endpoints no watcher (autoscaling target, monitoring schedule) is for.

    `watches(endpoint, watcher)` is True/False, or None where names are unknown (a preview).
    Endpoints that may be watched by a watcher no other endpoint claims are counted: there
    must be at least one such watcher per such endpoint.
    """
    verdicts = {e.urn: {w.urn: watches(e, w) for w in watchers} for e in endpoints}
    claimed = {w for each in verdicts.values() for w, verdict in each.items() if verdict}
    missing = [e for e in endpoints if set(verdicts[e.urn].values()) <= {False}]
    undecided = [
        e
        for e in endpoints
        if None in verdicts[e.urn].values() and True not in verdicts[e.urn].values()
    ]
    spare = {
        w.urn
        for w in watchers
        if w.urn not in claimed and any(verdicts[e.urn][w.urn] is None for e in undecided)
    }
    return missing + undecided[len(spare) :]


def _endpoint_name(endpoint: Resource) -> str | None:
    name = endpoint.props.get("name")
    return name if isinstance(name, str) else None


def _scales(endpoint: Resource, target: Resource) -> bool | None:
    if endpoint.urn in target.property_dependencies.get("resourceId", ()):
        return True
    resource_id, name = target.props.get("resourceId"), _endpoint_name(endpoint)
    if isinstance(resource_id, str) and name is not None:
        return resource_id.startswith(f"endpoint/{name}/")
    return None


@rule(
    "R4",
    "prod-endpoint-ha",
    "Prod endpoints: >= 2 instances per variant, autoscaling, blue/green with rollback alarms",
)
def prod_endpoint_ha(view: StackView) -> Iterator[Finding]:
    if not view.is_prod:
        return
    for config in view.of_type(ENDPOINT_CONFIGURATION):
        for variant in _as_list(lookup(config.props, "productionVariants")):
            name = lookup(variant, "variantName")
            label = f"variant {name if isinstance(name, str) else '?'}"
            serverless = lookup(variant, "serverlessConfig")
            if serverless is None:
                continue
            if serverless is not MISSING:
                yield config, f"{label} is serverless (no instance count guarantee in prod)"
                continue
            count = lookup(variant, "initialInstanceCount")
            if count is MISSING or (isinstance(count, int) and count < PROD_MIN_INSTANCES):
                shown = "unset" if count is MISSING else count
                yield config, f"{label} initialInstanceCount {shown} < {PROD_MIN_INSTANCES}"
    endpoints = view.of_type(ENDPOINT)
    for endpoint in endpoints:
        deployment = lookup(endpoint.props, "deploymentConfig")
        if unset(lookup(deployment, "blueGreenUpdatePolicy")):
            yield endpoint, "no blue/green policy (deploymentConfig.blueGreenUpdatePolicy)"
        if unset(lookup(deployment, "autoRollbackConfiguration", "alarms")):
            yield endpoint, "no auto-rollback alarms (deploymentConfig.autoRollbackConfiguration)"
    targets = [
        target
        for target in view.of_type(SCALING_TARGET)
        if target.props.get("scalableDimension") in (VARIANT_DIMENSION, None)
        and (
            target.props.get("resourceId") is None
            or str(target.props["resourceId"]).startswith("endpoint/")
        )
    ]
    for endpoint in _unwatched(endpoints, targets, _scales):
        yield endpoint, "no autoscaling target registered for the endpoint's variants"


def _monitored(view: StackView, schedule: Resource) -> tuple[set[str], set[str], bool]:
    """(endpoint URNs, endpoint names, whether some are unknown) a monitoring schedule
    watches, through its inline job definition or the data quality job it names."""
    config = lookup(schedule.props, "monitoringScheduleConfig")
    urns = set(schedule.property_dependencies.get("monitoringScheduleConfig", ()))
    inputs = [
        lookup(each, "endpointInput", "endpointName")
        for each in _as_list(lookup(config, "monitoringJobDefinition", "monitoringInputs"))
    ]
    named = lookup(config, "monitoringJobDefinitionName")
    for definition in view.of_type(DATA_QUALITY_JOB):
        if definition.urn in urns or (
            isinstance(named, str) and definition.props.get("name") == named
        ):
            urns.update(definition.property_dependencies.get("dataQualityJobInput", ()))
            inputs.append(
                lookup(definition.props, "dataQualityJobInput", "endpointInput", "endpointName")
            )
    names = {name for name in inputs if isinstance(name, str)}
    # A schedule of a job definition this stack does not hold (or not yet named) may watch any
    # endpoint: it counts as "cannot tell".
    unresolved = named is None or (isinstance(named, str) and not inputs)
    return urns, names, config is None or None in inputs or unresolved


@rule(
    "R7",
    "prod-data-capture-monitoring",
    "Prod endpoints capture data and have a monitoring schedule",
)
def prod_data_capture_monitoring(view: StackView) -> Iterator[Finding]:
    if not view.is_prod:
        return
    for config in view.of_type(ENDPOINT_CONFIGURATION):
        capture = lookup(config.props, "dataCaptureConfig", "enableCapture")
        if capture is not None and capture is not True:
            yield config, "endpoint configuration does not capture data"
    monitored = {s.urn: _monitored(view, s) for s in view.of_type(MONITORING_SCHEDULE)}

    def watches(endpoint: Resource, schedule: Resource) -> bool | None:
        urns, names, unknown = monitored[schedule.urn]
        name = _endpoint_name(endpoint)
        if endpoint.urn in urns or (name is not None and name in names):
            return True
        return None if unknown or name is None else False

    schedules = view.of_type(MONITORING_SCHEDULE)
    for endpoint in _unwatched(view.of_type(ENDPOINT), schedules, watches):
        yield endpoint, "no Model Monitor schedule watches the endpoint"


@rule("R7", "alarm-actions-enabled", "CloudWatch alarms have actions, enabled")
def alarm_actions_enabled(view: StackView) -> Iterator[Finding]:
    for alarm in view.of_type(METRIC_ALARM):
        if lookup(alarm.props, "actionsEnabled") is False:
            yield alarm, "alarm actions are disabled"
        if unset(lookup(alarm.props, "alarmActions")):
            yield alarm, "alarm has no alarm actions"


@rule("R5", "pipeline-retry-policies", "Pipeline job steps retry capacity, limit and fault errors")
def pipeline_retry_policies(view: StackView) -> Iterator[Finding]:
    for step in steps(view, *RETRIED_STEP_TYPES):
        covered = {
            str(exception)
            for policy in _as_list(step.step.get("RetryPolicies"))
            if isinstance(policy, dict)
            for exception in _as_list(policy.get("ExceptionType"))
        }
        missing = [e for e in REQUIRED_RETRIES if e not in covered]
        if missing:
            yield step.pipeline, f"{step.label}: no retry policy for {', '.join(missing)}"


def _seconds(value: Any, default: int | None = None) -> int | None:
    if value is MISSING:
        return default
    return value if isinstance(value, int) else None


@rule("R6", "spot-checkpoints-warm-pools", "Spot training checkpoints; warm pools <= 1 hour")
def spot_checkpoints_warm_pools(view: StackView) -> Iterator[Finding]:
    for job in training_jobs(view):
        if job.get("EnableManagedSpotTraining") is True:
            if unset(job.get("CheckpointConfig", "S3Uri")):
                yield job.pipeline, f"{job.label}: spot training without CheckpointConfig.S3Uri"
            wait = job.get("StoppingCondition", "MaxWaitTimeInSeconds")
            runtime = _seconds(
                job.get("StoppingCondition", "MaxRuntimeInSeconds"), DEFAULT_MAX_RUNTIME_SECONDS
            )
            if wait is MISSING:
                yield job.pipeline, f"{job.label}: spot training without MaxWaitTimeInSeconds"
            elif isinstance(wait, int) and runtime is not None and wait <= runtime:
                times = f"MaxWaitTimeInSeconds {wait} <= MaxRuntimeInSeconds {runtime}"
                yield job.pipeline, f"{job.label}: {times}"
        keep_alive = job.get("ResourceConfig", "KeepAlivePeriodInSeconds")
        if isinstance(keep_alive, int) and keep_alive > MAX_WARM_POOL_SECONDS:
            keep = f"warm pool KeepAlivePeriodInSeconds {keep_alive} > {MAX_WARM_POOL_SECONDS}"
            yield job.pipeline, f"{job.label}: {keep}"


def _roles_of(view: StackView, holder: Resource) -> list[Resource]:
    """The roles an identity policy applies to (the holder itself for a role's inline one)."""
    if holder.type == t.IAM_ROLE:
        return [holder]
    if holder.type == t.IAM_ROLE_POLICY:
        links = [holder]
        roles: list[Resource] = []
    else:  # a managed policy reaches roles through attachments or their managedPolicyArns
        links = view.dependents(holder, "policyArn", t.IAM_ROLE_POLICY_ATTACHMENT)
        roles = view.dependents(holder, "managedPolicyArns", t.IAM_ROLE)
    for link in links:
        by_dependency = [
            view.by_urn[urn]
            for urn in link.property_dependencies.get("role", ())
            if urn in view.by_urn and view.by_urn[urn].type == t.IAM_ROLE
        ]
        by_name = [
            role
            for role in view.of_type(t.IAM_ROLE)
            if isinstance(link.props.get("role"), str)
            and role.props.get("name") == link.props["role"]
        ]
        roles += by_dependency or by_name
    return roles


def _matches(action: str, patterns: Any) -> bool:
    # IAM action names are case-insensitive; `*` and `?` are the wildcards.
    return any(fnmatch.fnmatchcase(action.lower(), str(p).lower()) for p in _as_list(patterns))


def _allowed(statements: list[dict[str, Any]], action: str) -> bool:
    allowed = any(
        s.get("Effect") == "Allow"
        and (
            _matches(action, s["Action"])
            if "Action" in s
            else "NotAction" in s and not _matches(action, s["NotAction"])
        )
        for s in statements
    )
    denied = any(
        s.get("Effect") == "Deny"
        and not s.get("Condition")
        and "*" in _as_list(s.get("Resource"))
        and _matches(action, s.get("Action"))
        for s in statements
    )
    return allowed and not denied


@rule("A5", "approver-separate-from-builder", "Roles that approve models do not build them")
def approver_separate_from_builder(view: StackView) -> Iterator[Finding]:
    statements: dict[str, list[dict[str, Any]]] = {}
    for holder, document in identity_documents(view):
        if not isinstance(document, dict):
            continue  # computed during a preview
        found = statements_of(document)
        for role in _roles_of(view, holder):
            statements.setdefault(role.urn, []).extend(found)
    for urn, granted in statements.items():
        if not _allowed(granted, APPROVE_ACTION):
            continue
        builds = [action for action in BUILD_ACTIONS if _allowed(granted, action)]
        if builds:
            both = f"role approves models ({APPROVE_ACTION}) and builds them: {', '.join(builds)}"
            yield view.by_urn[urn], both
