"""MlopsEnvironment: the provider, cost tags, protection of stateful resources, outputs."""

from __future__ import annotations

import json

import pytest

from components.environment import cost_tags
from stacks import outputs
from stacks.offline import StackRecording
from tests.conftest import STACKS, recorded

PROVIDER = "pulumi:providers:aws"
STATEFUL_TYPES = {
    "aws:kms/key:Key",
    "aws:s3/bucket:Bucket",
    "aws:ecr/repository:Repository",
    "aws:sagemaker/modelPackageGroup:ModelPackageGroup",
    "aws:sagemaker/mlflowTrackingServer:MlflowTrackingServer",
    "aws:sagemaker/featureGroup:FeatureGroup",
}


def test_committed_stacks_are_dev_test_prod() -> None:
    assert STACKS == ["dev", "prod", "test"]


def test_one_explicit_provider_with_region_account_and_cost_tags(
    recording: StackRecording,
) -> None:
    (provider,) = recording.of_type(PROVIDER)
    settings = recording.settings
    assert provider.inputs["region"] == settings.aws.region
    assert json.loads(provider.inputs["allowedAccountIds"]) == [settings.aws.account_id]
    tags = json.loads(provider.inputs["defaultTags"])["tags"]
    assert tags["environment"] == recording.stack
    assert tags["owner"] == settings.owner
    assert tags["cost-center"] == settings.cost_center
    assert tags["managed-by"] == "pulumi"
    assert tags == cost_tags(recording.stack, settings)


def test_every_aws_resource_uses_the_tagging_provider(recording: StackRecording) -> None:
    (provider,) = recording.of_type(PROVIDER)
    aws_resources = [r for r in recording.custom_resources if r.type.startswith("aws:")]
    assert aws_resources
    untagged = [r.name for r in aws_resources if not (r.provider or "").startswith(provider.urn)]
    assert untagged == []


def test_extra_tags_cannot_override_cost_tags(prod: StackRecording) -> None:
    tags = cost_tags("prod", prod.settings)
    assert tags["compliance"] == "iso27001"
    assert set(tags) >= {"environment", "owner", "cost-center", "managed-by"}


@pytest.mark.parametrize("stack", ["prod"])
def test_prod_protects_and_retains_every_stateful_resource(stack: str) -> None:
    recording = recorded(stack)
    stateful = [r for r in recording.resources if r.type in STATEFUL_TYPES]
    # keys, buckets, repositories, a model package group and a feature group per model,
    # the MLflow server
    assert len(stateful) == 2 + 4 + 2 + 1 + 1 + 1
    assert all(r.protect and r.retain_on_delete for r in stateful)


def test_dev_protects_nothing(dev: StackRecording) -> None:
    assert not any(r.protect or r.retain_on_delete for r in dev.resources)


def test_only_stateful_resources_are_protected(prod: StackRecording) -> None:
    protected = {r.type for r in prod.resources if r.protect}
    assert protected == STATEFUL_TYPES


def test_components_nest_under_the_environment(recording: StackRecording) -> None:
    root = recording.named("mlops")
    assert root.type == "mlops:environment:MlopsEnvironment"
    children = {r.name: r.type for r in recording.children(root)}
    deployment = recording.settings.models["digits"].deployment
    if deployment is not None and deployment.retrain_on_drift:
        assert children.pop("mlops-digits-retraining") == "mlops:retraining:DriftRetraining"
    if recording.settings.models["digits"].training.backend == "cluster":
        assert children.pop("mlops-cluster-training") == "mlops:training:ClusterTraining"
    assert children == {
        "mlops-aws": PROVIDER,
        "mlops-encryption": "mlops:encryption:Encryption",
        "mlops-network": "mlops:network:Network",
        "mlops-artifacts": "mlops:storage:ArtifactStore",
        "mlops-budget": "mlops:cost:CostBudget",
        "mlops-registry": "mlops:registry:ModelRegistry",
        "mlops-pipelines": "mlops:pipelines:MlPipelines",
        "mlops-features": "mlops:features:FeatureStore",
        "mlops-monitoring": "mlops:monitoring:Monitoring",
        "mlops-gpu-metrics": "mlops:monitoring:GpuMetrics",
        "mlops-cluster": "mlops:cluster:TrainingCluster",
        "mlops-teams": "mlops:cluster:TeamNamespaces",
    }
    # Child names derive from the component's name.
    for component in recording.children(root):
        assert all(d.name.startswith(component.name) for d in recording.descendants(component))


def test_stack_exports_every_named_output(recording: StackRecording) -> None:
    assert set(recording.outputs) == set(outputs.ALL)
    assert recording.outputs[outputs.VPC_ID].startswith("vpc-")
    assert len(recording.outputs[outputs.PRIVATE_SUBNET_IDS]) == recording.settings.network.az_count
    account, region = recording.settings.aws.account_id, recording.settings.aws.region
    assert recording.outputs[outputs.DATA_KEY_ARN].startswith(f"arn:aws:kms:{region}:{account}:")
    assert set(recording.outputs[outputs.BUCKET_NAMES]) == {
        "datasets",
        "models",
        "pipeline",
        "access-logs",
    }
    assert recording.outputs[outputs.REPOSITORY_URLS]["training"] == (
        f"{account}.dkr.ecr.{region}.amazonaws.com/mlops-{recording.stack}/training"
    )


def test_resource_counts_differ_by_environment() -> None:
    counts = {stack: len(recorded(stack).custom_resources) for stack in STACKS}
    # prod has a third AZ, Object Lock, two GPU pools and two teams: the most of all.
    assert counts["prod"] > max(counts["dev"], counts["test"])
    # dev alone has NAT egress (public subnets, IGW, NAT gateway, EIP, routes).
    assert recorded("dev").count_by_type()["aws:ec2/natGateway:NatGateway"] == 1
    assert recorded("test").count_by_type()["aws:ec2/natGateway:NatGateway"] == 0


def test_policy_facts_on_the_environment_component(recording: StackRecording) -> None:
    # The policy pack reads the tier, dev's relaxed rules, and where the stack runs (rules
    # that rebuild AWS's requests need its ARNs) from these.
    root = recording.named("mlops")
    assert root.inputs == {
        "environment": recording.settings.environment,
        "advisoryRules": recording.settings.policy.advisory_rules,
        "region": recording.settings.aws.region,
        "accountId": recording.settings.aws.account_id,
    }


def test_monthly_budget_alerts_on_this_environments_spend(recording: StackRecording) -> None:
    (budget,) = recording.of_type("aws:budgets/budget:Budget")
    settings = recording.settings.budget
    assert budget.inputs["name"] == f"mlops-{recording.stack}-monthly"
    assert (budget.inputs["budgetType"], budget.inputs["timeUnit"]) == ("COST", "MONTHLY")
    assert float(budget.inputs["limitAmount"]) == settings.monthly_limit_usd
    assert budget.inputs["costFilters"] == [
        {"name": "TagKeyValue", "values": [f"user:environment${recording.stack}"]}
    ]
    alerts = {(n["notificationType"], n["threshold"]) for n in budget.inputs["notifications"]}
    expected = {("ACTUAL", p) for p in settings.actual_alert_percents}
    if settings.forecast_alert_percent is not None:
        expected.add(("FORECASTED", settings.forecast_alert_percent))
    assert alerts == expected
    for notification in budget.inputs["notifications"]:
        assert notification["subscriberEmailAddresses"] == settings.alert_emails
        assert notification["comparisonOperator"] == "GREATER_THAN"


def test_prod_alerts_earlier_and_reaches_finops(prod: StackRecording) -> None:
    (budget,) = prod.of_type("aws:budgets/budget:Budget")
    alerts = sorted((n["notificationType"], n["threshold"]) for n in budget.inputs["notifications"])
    # Actual spend at half, 80 % and the whole limit; the forecast at 80 % (the default).
    assert alerts == [("ACTUAL", 50), ("ACTUAL", 80), ("ACTUAL", 100), ("FORECASTED", 80)]
    assert "ml-finops@example.com" in budget.inputs["notifications"][0]["subscriberEmailAddresses"]
