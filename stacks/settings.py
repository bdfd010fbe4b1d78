"""The typed schema of a stack file: everything `stacks/Pulumi.<env>.yaml` may say.

Each top-level model field is one config key in the project's namespace
(`mlops-platform:<field>`), except `aws`, which collects the provider keys `aws:region` and
`aws:allowedAccountIds`. Every model forbids unknown keys, so a typo stops the program with
a message naming the key instead of being silently ignored.

Floors that depend on the environment tier (prod keeps logs a year, protects stateful
resources, locks model artifacts) are validated here, once, so no component needs to know
which tier it runs in.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    Field,
    StringConstraints,
    field_validator,
    model_validator,
)

from stacks.cluster_settings import ClusterSettings, RoleArn
from stacks.cluster_training_settings import ClusterTrainingSettings, cluster_training_problems
from stacks.deployment_settings import DeploymentSettings
from stacks.monitoring_settings import MonitoringSettings
from stacks.on_demand_settings import OnDemandSettings
from stacks.settings_base import Email, InvalidKeys, StackName, StrictModel, matching

PROJECT = "mlops-platform"

# The values CloudWatch Logs accepts for `retentionInDays` (PutRetentionPolicy).
LOG_RETENTION_DAYS = (
    1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731,
    1096, 1827, 2192, 2557, 2922, 3288, 3653,
)  # fmt: skip
PROD_MIN_LOG_RETENTION_DAYS = 365
MIN_AZ_COUNT, MAX_AZ_COUNT = 2, 6
# A VPC smaller than /22 leaves private subnets too small for SageMaker jobs and endpoints.
MIN_VPC_PREFIX, MAX_VPC_PREFIX = 16, 22
RFC1918_BLOCKS = tuple(
    ipaddress.IPv4Network(block) for block in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16")
)
# Tags every taggable resource carries; set from their own keys, never through `tags`.
COST_TAG_KEYS = ("environment", "owner", "cost-center", "managed-by")
# Tags on-demand environments carry, set from `on_demand`.
LIFETIME_TAG_KEYS = ("expires-at", "on-demand-base")

_TAG_CHARS = re.compile(r"^[\w\s.:/=+\-@]*$")


def _check_tag_text(value: str) -> str:
    if not _TAG_CHARS.match(value):
        raise ValueError("tag text may only hold letters, digits, spaces and _ . : / = + - @")
    return value


def _check_private_cidr(value: ipaddress.IPv4Network) -> ipaddress.IPv4Network:
    # Not `is_private`: that also holds for loopback, link-local, 0/8 and 240/4, which no VPC
    # can use.
    if not any(value.subnet_of(block) for block in RFC1918_BLOCKS):
        allowed = ", ".join(map(str, RFC1918_BLOCKS))
        raise ValueError(f"{value} is not a private (RFC 1918) range; use one within {allowed}")
    if not MIN_VPC_PREFIX <= value.prefixlen <= MAX_VPC_PREFIX:
        raise ValueError(
            f"prefix /{value.prefixlen} is outside /{MIN_VPC_PREFIX}../{MAX_VPC_PREFIX}"
        )
    return value


TagKey = Annotated[
    str, StringConstraints(min_length=1, max_length=128), AfterValidator(_check_tag_text)
]
TagValue = Annotated[str, StringConstraints(max_length=256), AfterValidator(_check_tag_text)]
NonEmptyTagValue = Annotated[
    str, StringConstraints(min_length=1, max_length=256), AfterValidator(_check_tag_text)
]
VpcCidr = Annotated[ipaddress.IPv4Network, AfterValidator(_check_private_cidr)]


VpcId = Annotated[str, matching(r"vpc-[0-9a-f]{8,17}", "vpc-0123456789abcdef0")]
SubnetId = Annotated[str, matching(r"subnet-[0-9a-f]{8,17}", "subnet-0123456789abcdef0")]
RouteTableId = Annotated[str, matching(r"rtb-[0-9a-f]{8,17}", "rtb-0123456789abcdef0")]
AccountId = Annotated[str, matching(r"\d{12}", "a quoted 12-digit account id")]
Region = Annotated[
    str, matching(r"[a-z]{2}(-gov|-iso[a-z]?)?-[a-z]+-\d{1,2}", "an AWS region (eu-west-1)")
]
RepositoryName = Annotated[
    str,
    StringConstraints(max_length=64),
    matching(r"[a-z0-9]+(?:[._-][a-z0-9]+)*", "lowercase words joined by . _ or -"),
]
Days = Annotated[int, Field(ge=1, le=36500)]


class AwsSettings(StrictModel):
    """The `aws:` provider keys this program reads."""

    region: Region
    # The one account this environment deploys into; the provider refuses any other.
    allowed_account_ids: list[AccountId] = Field(min_length=1, max_length=1)

    @property
    def account_id(self) -> str:
        return self.allowed_account_ids[0]


class ProtectionSettings(StrictModel):
    """Pulumi `protect` / `retain_on_delete` for stateful resources (keys, buckets, ECR)."""

    protect: bool
    retain_on_delete: bool


class ExistingVpcSettings(StrictModel):
    """Reuse a VPC someone else owns instead of creating one."""

    vpc_id: VpcId
    private_subnet_ids: list[SubnetId] = Field(min_length=MIN_AZ_COUNT, max_length=MAX_AZ_COUNT)
    # Route tables of those subnets: the S3 gateway endpoint attaches to them.
    private_route_table_ids: list[RouteTableId] = Field(min_length=1)
    # Turn off where the VPC already has interface endpoints with private DNS for the same
    # services: a second one fails with a private DNS conflict.
    create_endpoints: bool = True


class NetworkSettings(StrictModel):
    cidr: VpcCidr
    az_count: int = Field(ge=MIN_AZ_COUNT, le=MAX_AZ_COUNT)
    # `none`: jobs reach AWS only through VPC endpoints. `nat`: public subnets + NAT gateways.
    egress: Literal["none", "nat"] = "none"
    nat_gateways: Literal["single", "per_az"] = "single"
    existing_vpc: ExistingVpcSettings | None = None
    # Use another stack's VPC (organization/project/stack), read through a StackReference:
    # its subnets, endpoints and flow logs; this stack adds only its security groups.
    # On-demand environments run in their base environment's VPC this way.
    shared_stack: StackName | None = None

    @model_validator(mode="after")
    def _existing_vpc_is_consistent(self) -> NetworkSettings:
        if self.existing_vpc is not None and self.shared_stack is not None:
            raise InvalidKeys([("shared_stack", "is not used with existing_vpc; name one VPC")])
        if self.existing_vpc is None:
            return self
        problems = []
        subnets = len(self.existing_vpc.private_subnet_ids)
        if subnets != self.az_count:
            problems.append(
                (
                    "existing_vpc.private_subnet_ids",
                    f"lists {subnets} subnets but az_count is {self.az_count}; "
                    "give one private subnet per AZ",
                )
            )
        if self.egress == "nat":
            problems.append(("egress", "'nat' needs a VPC this stack creates, not existing_vpc"))
        if problems:
            raise InvalidKeys(problems)
        return self


class EncryptionSettings(StrictModel):
    deletion_window_days: int = Field(ge=7, le=30)
    rotation_period_days: int = Field(default=365, ge=90, le=2560)
    # Roles that administer the keys besides the deployer (a break-glass role). Nobody else
    # may change a key policy or create grants other than for AWS resources.
    key_administrators: list[RoleArn] = Field(default_factory=list, max_length=10)


class LoggingSettings(StrictModel):
    retention_days: int

    @field_validator("retention_days")
    @classmethod
    def _cloudwatch_value(cls, value: int) -> int:
        if value not in LOG_RETENTION_DAYS:
            allowed = ", ".join(map(str, LOG_RETENTION_DAYS))
            raise ValueError(f"{value} is not a CloudWatch Logs retention; use one of {allowed}")
        return value


class LifecycleSettings(StrictModel):
    noncurrent_version_expiry_days: Days
    abort_incomplete_multipart_days: int = Field(ge=1, le=30)
    # Pipeline outputs (intermediate datasets, evaluation reports) expire after this;
    # datasets and models never expire on their own.
    pipeline_output_expiry_days: Days
    access_log_expiry_days: Days


class ObjectLockSettings(StrictModel):
    mode: Literal["GOVERNANCE", "COMPLIANCE"] = "GOVERNANCE"
    retention_days: Days


class EcrSettings(StrictModel):
    repositories: list[RepositoryName] = Field(default=["training", "inference"], min_length=1)
    keep_last_images: int = Field(ge=1, le=1000)
    untagged_expiry_days: Days = 7

    @field_validator("repositories")
    @classmethod
    def _unique(cls, value: list[str]) -> list[str]:
        if len(set(value)) != len(value):
            raise ValueError("repository names must be unique")
        return value


class ArtifactStoreSettings(StrictModel):
    lifecycle: LifecycleSettings
    # Object Lock on the model-artifact bucket; only settable when the bucket is created.
    object_lock: ObjectLockSettings | None = None
    # Lets `pulumi destroy` empty buckets and repositories; dev only.
    force_destroy: bool = False
    ecr: EcrSettings


Percent = Annotated[int, Field(ge=1, le=1000)]


class BudgetSettings(StrictModel):
    """A monthly cost budget for this environment's resources (by their `environment` tag)."""

    monthly_limit_usd: float = Field(gt=0)
    alert_emails: list[Email] = Field(min_length=1, max_length=10)
    # Alert when actual spend passes these percentages of the limit...
    actual_alert_percents: list[Percent] = Field(default=[100], min_length=1)
    # ...and when the month's forecast passes this one (None: no forecast alert).
    forecast_alert_percent: Percent | None = 80


InstanceType = Annotated[str, matching(r"ml\.[a-z0-9-]+\.[a-z0-9]+", "ml.g5.xlarge")]
ModelName = Annotated[str, matching(r"[a-z][a-z0-9-]{1,30}", "lowercase, digits and '-' (2-31)")]
ImageTag = Annotated[str, matching(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}", "a Docker image tag")]
# ISO 8601 duration, as SageMaker step caching takes it (P30D, PT12H).
CacheExpiry = Annotated[
    str, matching(r"P(?!$)(\d+Y)?(\d+M)?(\d+W)?(\d+D)?(T(?=\d)(\d+H)?(\d+M)?(\d+S)?)?", "P30D")
]
HyperparameterValue = str | int | float | bool


class TrainingSettings(StrictModel):
    """The Train step's SageMaker training job; each value is the default of a pipeline
    Parameter a run may override."""

    instance_type: InstanceType = "ml.g5.xlarge"
    instance_count: int = Field(default=1, ge=1, le=16)
    use_spot: bool = True
    max_runtime_seconds: int = Field(default=3600, ge=60, le=432000)
    # Managed spot: how long to wait for capacity plus run; must exceed max_runtime_seconds.
    max_wait_seconds: int | None = Field(default=None, ge=120, le=432000)
    # Warm pool: keep instances for the next job this long (0: off; SageMaker caps at 3600).
    keep_alive_seconds: int = Field(default=0, ge=0, le=3600)
    volume_size_gb: int = Field(default=30, ge=1, le=16384)
    hyperparameters: dict[str, HyperparameterValue] = Field(default_factory=dict)
    # Where Train runs: a SageMaker training job, or a Job on the environment's GPU cluster
    # (stacks/cluster_training_settings.py; README, "Training on the cluster").
    backend: Literal["sagemaker", "cluster"] = "sagemaker"
    cluster: ClusterTrainingSettings | None = None

    @model_validator(mode="after")
    def _spot_wait_exceeds_runtime(self) -> TrainingSettings:
        if self.backend == "cluster" and self.cluster is None:
            raise InvalidKeys([("cluster", "is required when backend is 'cluster' (the team)")])
        if self.backend == "sagemaker" and self.cluster is not None:
            raise InvalidKeys([("cluster", "is only used when backend is 'cluster'")])
        from pipelines.hyperparameters import unknown_hyperparameters

        misspelt = unknown_hyperparameters(list(self.hyperparameters))
        if misspelt:
            raise InvalidKeys([("hyperparameters", "; ".join(misspelt))])
        if self.backend == "sagemaker" and self.instance_count != 1:
            raise InvalidKeys(
                [
                    (
                        "instance_count",
                        f"is {self.instance_count}, but train.py trains on one instance (XGBoost "
                        "without a distributed setup): more would train the same model "
                        "several times; use a larger instance_type",
                    )
                ]
            )
        if self.use_spot and self.keep_alive_seconds:
            # SageMaker DG, "Warm pools": warm pools are not supported with managed spot.
            raise InvalidKeys(
                [
                    (
                        "keep_alive_seconds",
                        f"a warm pool ({self.keep_alive_seconds} s) cannot be combined with "
                        "managed spot (use_spot: true): SageMaker does not support warm pools "
                        "for spot training; set one of them off",
                    )
                ]
            )
        if self.max_wait_seconds is not None and self.max_wait_seconds <= self.max_runtime_seconds:
            raise InvalidKeys(
                [
                    (
                        "max_wait_seconds",
                        f"must exceed max_runtime_seconds ({self.max_runtime_seconds}) "
                        "for managed spot",
                    )
                ]
            )
        return self

    @property
    def spot_max_wait_seconds(self) -> int:
        return self.max_wait_seconds or 2 * self.max_runtime_seconds


class ProcessingSettings(StrictModel):
    instance_type: InstanceType = "ml.m5.xlarge"
    instance_count: int = Field(default=1, ge=1, le=16)


class QualityGateSettings(StrictModel):
    # The evaluation metric the gate compares; a model registers only at or above threshold.
    metric: Literal["accuracy", "macro_f1"] = "accuracy"
    threshold: float = Field(ge=0, le=1)


class ScheduleSettings(StrictModel):
    """Scheduled executions of a model's pipeline (EventBridge Scheduler)."""

    # `cron(minutes hours day-of-month month day-of-week year)` or `rate(value unit)`.
    expression: str
    timezone: str = "UTC"
    # Let Scheduler start the run up to this many minutes late, to spread load (None: exact).
    flexible_window_minutes: int | None = Field(default=None, ge=1, le=1440)
    enabled: bool = True
    # Pipeline parameter values for the scheduled runs (the rest keep their defaults).
    parameters: dict[str, HyperparameterValue] = Field(default_factory=dict)

    @field_validator("expression")
    @classmethod
    def _valid_expression(cls, value: str) -> str:
        from components.schedule_expressions import validate_expression

        validate_expression(value)
        return value

    @field_validator("parameters")
    @classmethod
    def _pipeline_parameters(cls, value: dict[str, HyperparameterValue]) -> dict[str, Any]:
        from pipelines.training import PARAMETERS

        unknown = sorted(set(value) - set(PARAMETERS))
        if unknown:
            raise ValueError(
                f"unknown pipeline parameters {unknown}; known: {', '.join(PARAMETERS)}"
            )
        return value

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        import zoneinfo

        try:
            zoneinfo.ZoneInfo(value)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"{value!r} is not an IANA time zone (e.g. Europe/Dublin)") from None
        return value


class ModelSettings(StrictModel):
    """One model trained by a pipeline in this environment."""

    pipeline: Literal["training"] = "training"
    # Tag of the step image in this environment's `training` ECR repository.
    image_tag: ImageTag
    # Tag of the inference image (pipelines/image/inference) in the `inference` repository:
    # what the registered versions are served with.
    inference_image_tag: ImageTag
    training: TrainingSettings = Field(default_factory=TrainingSettings)
    processing: ProcessingSettings = Field(default_factory=ProcessingSettings)
    quality_gate: QualityGateSettings
    # Register new versions as Approved (deployable at once) instead of PendingManualApproval.
    auto_approve: bool = False
    # Reuse a step's result when its inputs are unchanged for this long; None turns caching off.
    cache_expiry: CacheExpiry | None = "P30D"
    schedule: ScheduleSettings | None = None
    # The endpoint an approved version gets (None: models of this stack are not deployed).
    deployment: DeploymentSettings | None = None


MaintenanceWindow = Annotated[
    str, matching(r"(Mon|Tue|Wed|Thu|Fri|Sat|Sun):([01]\d|2[0-3]):[0-5]\d", "Sun:03:00")
]


class MlflowServerSettings(StrictModel):
    """The environment's MLflow tracking server."""

    # managed: a SageMaker managed tracking server of its own (~30 min to create);
    # shared: use another stack's, read through a StackReference (on-demand environments).
    mode: Literal["managed", "shared"] = "managed"
    size: Literal["Small", "Medium", "Large"] = "Small"
    weekly_maintenance_window: MaintenanceWindow = "Sun:03:00"
    # The server's MLflow version: pinned, so the server does not drift from the jobs' client
    # (stacks/mlflow_versions.py lists what SageMaker offers). Required for a managed server.
    mlflow_version: str | None = None
    shared_stack: StackName | None = None

    @model_validator(mode="after")
    def _shared_names_a_stack(self) -> MlflowServerSettings:
        if self.mode == "shared" and self.shared_stack is None:
            raise InvalidKeys([("shared_stack", "is required when mode is 'shared'")])
        if self.mode == "managed" and self.shared_stack is not None:
            raise InvalidKeys([("shared_stack", "is only used when mode is 'shared'")])
        if self.mode == "managed":
            problems = _server_version_problems(self.mlflow_version)
            if problems:
                raise InvalidKeys([("mlflow_version", problems)])
        return self


def _server_version_problems(version: str | None) -> str | None:
    from stacks.mlflow_versions import SERVER_VERSIONS, client_version

    offered = ", ".join(SERVER_VERSIONS)
    client = client_version()
    if version is None:
        return (
            f"is required for a managed server (SageMaker offers {offered}; the jobs' client "
            f"is mlflow {client}): unpinned, the server takes whatever is newest"
        )
    if version not in SERVER_VERSIONS:
        return f"{version!r} is not a version SageMaker offers ({offered})"
    if version.split(".")[0] != client.split(".")[0]:
        return (
            f"server {version} and the jobs' client mlflow {client} differ in major version; "
            "pick a server of the client's major version"
        )
    return None


class RegistrySettings(StrictModel):
    # Accounts that may read this environment's model package groups (promotion to them).
    reader_account_ids: list[AccountId] = Field(default_factory=list)
    mlflow: MlflowServerSettings = Field(default_factory=MlflowServerSettings)


class FeatureStoreSettings(StrictModel):
    # Online-store records expire this many hours after their event time (None: never).
    online_ttl_hours: int | None = Field(default=None, ge=1, le=87600)
    # Feature groups are stateful (protected in prod): a spec change that forces AWS to
    # replace one fails the update there, unless this is set for that deployment.
    allow_replacement: bool = False


class PolicySettings(StrictModel):
    # SECURITY.md rules (an invariant id such as "N7", or one rule such as "n7-vpc-endpoints")
    # whose violations are reported as advisory instead of blocking. Dev only.
    advisory_rules: list[str] = Field(default_factory=list)

    @field_validator("advisory_rules")
    @classmethod
    def _known_rules(cls, value: list[str]) -> list[str]:
        from policy.mlops_rules import RULES  # the rule ids are defined with the rules

        known = sorted({r.id for r in RULES} | {r.policy_name for r in RULES})
        unknown = [v for v in value if v not in known]
        if unknown:
            raise ValueError(f"unknown rules {unknown}; known: {', '.join(known)}")
        return value


class Settings(StrictModel):
    """Everything a stack file may say, validated."""

    aws: AwsSettings
    environment: Literal["dev", "test", "prod"]
    owner: NonEmptyTagValue
    cost_center: NonEmptyTagValue
    tags: dict[TagKey, TagValue] = Field(default_factory=dict, max_length=40)
    # The IAM role `pulumi up` runs as (the CI deploy role, or the role a person assumes to
    # deploy). It administers the KMS keys (KMS refuses a key policy that would lock out
    # its creator) and gets the training cluster's cluster-admin access entry.
    deployer_role_arn: RoleArn
    protection: ProtectionSettings
    network: NetworkSettings
    encryption: EncryptionSettings
    logging: LoggingSettings
    artifact_store: ArtifactStoreSettings
    budget: BudgetSettings
    models: dict[ModelName, ModelSettings] = Field(default_factory=dict)
    registry: RegistrySettings = Field(default_factory=RegistrySettings)
    feature_store: FeatureStoreSettings = Field(default_factory=FeatureStoreSettings)
    policy: PolicySettings = Field(default_factory=PolicySettings)
    cluster: ClusterSettings = Field(default_factory=ClusterSettings)
    monitoring: MonitoringSettings = Field(default_factory=MonitoringSettings)
    # Set by `python -m stacks env create` on on-demand copies of dev or test.
    on_demand: OnDemandSettings | None = None

    @field_validator("tags")
    @classmethod
    def _no_reserved_tags(cls, value: dict[str, str]) -> dict[str, str]:
        # Each reserved key is reported under its own path (`tags.owner`), all at once.
        problems = []
        for key in value:
            if key.lower().startswith("aws:"):
                problems.append((key, f"tag key {key!r}: the 'aws:' prefix is reserved by AWS"))
            elif key in (*COST_TAG_KEYS, *LIFETIME_TAG_KEYS):
                problems.append(
                    (
                        key,
                        f"tag key {key!r} is set by the stack itself "
                        f"(from environment/owner/cost_center/on_demand); remove it from tags",
                    )
                )
        if problems:
            raise InvalidKeys(problems)
        return value

    @model_validator(mode="after")
    def _tier_floors(self) -> Settings:
        problems = []
        if self.environment == "prod":
            for flag in ("protect", "retain_on_delete"):
                if not getattr(self.protection, flag):
                    problems.append((f"protection.{flag}", "must be true in prod"))
            if self.logging.retention_days < PROD_MIN_LOG_RETENTION_DAYS:
                problems.append(
                    (
                        "logging.retention_days",
                        f"must be >= {PROD_MIN_LOG_RETENTION_DAYS} in prod "
                        f"(got {self.logging.retention_days})",
                    )
                )
            if self.artifact_store.object_lock is None:
                problems.append(
                    (
                        "artifact_store.object_lock",
                        "is required in prod (Object Lock on model artifacts)",
                    )
                )
        for name, model in self.models.items():
            problems.extend(_deployment_floors(self.environment, name, model))
            if self.environment != "dev" and model.auto_approve:
                problems.append(
                    (
                        f"models.{name}.auto_approve",
                        f"{self.environment} never auto-approves: a person approves each "
                        "model version (only dev may)",
                    )
                )
            problems.extend(_schedule_parameters(self.environment, name, model))
            problems.extend(_feature_spec_problems(name))
        if self.environment != "dev" and self.policy.advisory_rules:
            problems.append(
                (
                    "policy.advisory_rules",
                    f"only dev may relax rules (environment is {self.environment})",
                )
            )
        problems.extend(_on_demand_floors(self))
        problems.extend(_deployer_problems(self))
        problems.extend(cluster_training_problems(self))
        # On-demand copies must be destroyable without leaving data behind, in test too.
        if (
            self.environment != "dev"
            and self.artifact_store.force_destroy
            and self.on_demand is None
        ):
            problems.append(
                (
                    "artifact_store.force_destroy",
                    f"is allowed in dev and on-demand environments only "
                    f"(environment is {self.environment})",
                )
            )
        if (
            self.cluster.mode == "managed"
            and self.network.egress == "none"
            and self.cluster.image_registry is None
        ):
            problems.append(
                (
                    "cluster.image_registry",
                    "is required when network.egress is 'none': nodes cannot reach the "
                    "upstream registries of the add-on images (see README, Image mirror)",
                )
            )
        if problems:
            raise InvalidKeys(problems)
        return self


def _feature_spec_problems(name: str) -> list[tuple[str, str]]:
    """A model needs its feature spec: the feature group, Preprocess's ingestion and the
    data loader are built from it (README, "Adding a model")."""
    from pipelines.features import FEATURE_SPECS

    if name in FEATURE_SPECS:
        return []
    known = ", ".join(sorted(FEATURE_SPECS))
    return [
        (
            f"models.{name}",
            f"has no feature spec in pipelines/features.py (FEATURE_SPECS has: {known}); add "
            "one for its columns, types, label and record id before adding the model "
            '(README, "Adding a model")',
        )
    ]


def _schedule_parameters(
    environment: str, name: str, model: ModelSettings
) -> list[tuple[str, str]]:
    """A schedule sets only Parameters the model's pipeline has in this tier."""
    from pipelines.training import run_parameters

    if model.schedule is None:
        return []
    known = run_parameters(model, environment)
    training = f"models.{name}.training"
    hints = {
        "TrainingInstanceType": f"a cluster-backed pipeline has no such parameter (set "
        f"{training}.cluster.accelerator to choose the GPU)",
        "TrainingInstanceCount": f"train.py trains on one SageMaker instance (set "
        f"{training}.instance_type for a larger one)",
        "QualityThreshold": f"outside dev the gate is fixed in the definition (set "
        f"models.{name}.quality_gate.threshold)",
        "ModelApprovalStatus": "outside dev every version waits for a person's approval",
    }
    return [
        (f"models.{name}.schedule.parameters.{parameter}", hints[parameter])
        for parameter in sorted(set(model.schedule.parameters) - set(known))
        if parameter in hints
    ]


def _deployer_problems(settings: Settings) -> list[tuple[str, str]]:
    """The deployer is in this account (the provider only runs with its credentials), has
    one cluster access entry (its own), and reaches a private API only through a path the
    stack names; prod opens no public API endpoint without a stated reason."""
    problems = []
    account = settings.aws.account_id
    if settings.deployer_role_arn.split(":")[4] != account:
        problems.append(
            ("deployer_role_arn", f"must be a role in this stack's account ({account})")
        )
    for index, access in enumerate(settings.cluster.access):
        if access.principal_arn == settings.deployer_role_arn:
            problems.append(
                (
                    f"cluster.access[{index}].principal_arn",
                    "is the deployer_role_arn, which gets its own cluster-admin access entry "
                    "(a second entry for it fails with a 409 conflict); remove this one",
                )
            )
    cluster = settings.cluster
    if (
        settings.environment == "prod"
        and cluster.public_access_cidrs
        and cluster.public_access_reason is None
    ):
        problems.append(
            (
                "cluster.public_access_cidrs",
                "opens a public API endpoint in prod; set cluster.public_access_reason to say "
                "why (a first deploy before the private path exists) or reach it privately "
                "through cluster.api_access",
            )
        )
    return problems


def _on_demand_floors(settings: Settings) -> list[tuple[str, str]]:
    if settings.on_demand is None:
        return []
    problems = []
    if settings.environment == "prod":
        problems.append(("on_demand", "prod has no on-demand copies; base them on dev or test"))
    # It expires: destroy must take everything, leaving nothing to pay for or to block it.
    for flag in ("protect", "retain_on_delete"):
        if getattr(settings.protection, flag):
            problems.append(
                (f"protection.{flag}", "must be false in an on-demand environment (it expires)")
            )
    if not settings.artifact_store.force_destroy:
        problems.append(
            (
                "artifact_store.force_destroy",
                "must be true in an on-demand environment (destroy empties its buckets)",
            )
        )
    return problems


# SECURITY.md R4: a prod endpoint survives an instance failure and scales.
PROD_MIN_ENDPOINT_INSTANCES = 2


def _deployment_floors(environment: str, name: str, model: ModelSettings) -> list[tuple[str, str]]:
    deployment, key = model.deployment, f"models.{name}.deployment"
    if deployment is None or environment != "prod":
        return []
    problems = []
    if deployment.serverless is not None:
        problems.append((f"{key}.serverless", "prod endpoints run on instances (R4)"))
    for field in ("instance_count", "min_capacity"):
        if getattr(deployment, field) < PROD_MIN_ENDPOINT_INSTANCES:
            problems.append(
                (f"{key}.{field}", f"must be >= {PROD_MIN_ENDPOINT_INSTANCES} in prod (R4)")
            )
    return problems
