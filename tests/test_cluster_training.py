"""ClusterTraining: the queue, launcher Lambda, sweeper and cluster access of cluster-backed
Train steps, on the stack's own cluster and on a shared one."""

from __future__ import annotations

import functools
import json
from typing import Any

import pytest

from components.cluster_training import LAUNCHER_FILES, LAUNCHER_HANDLER, MAX_RECEIVES
from components.cluster_training_policies import LAUNCHER_GROUP, pytorch_job_rbac
from pipelines.steps.cluster_request import METRICS, MODEL_ARTIFACTS
from stacks.offline import RecordedResource, StackRecording, evaluate_config
from stacks.policy_check import check
from tests.conftest import recorded, stack_config
from tests.kubernetes_checks import schema_errors
from tests.lambda_packages import assert_package_holds_its_imports

P = "mlops-platform:"
C = "mlops-cluster-training"


@functools.cache
def cluster_backed(shared: bool = False, operator: bool = False) -> StackRecording:
    """dev with digits training on the research namespace (on dev's own cluster, or on a
    shared one as an on-demand copy would)."""
    config = stack_config("dev")
    config[P + "models"]["digits"]["training"].update(
        {"backend": "cluster", "cluster": {"team": "research", "accelerator": "nvidia-a10g"}}
    )
    config[P + "cluster"]["training_operator"] = operator
    if shared:
        config[P + "cluster"] = {
            "mode": "shared",
            "shared_stack": "acme/mlops-platform/dev",
            "teams": config[P + "cluster"]["teams"],
        }
        return evaluate_config("dev-x", config)
    return evaluate_config("dev", config)


def policy(resource: RecordedResource) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(resource.inputs["policy"])
    return document


def bucket_arn(stack: StackRecording, purpose: str) -> str:
    [bucket] = [
        b for b in stack.of_type("aws:s3/bucket:Bucket") if b.name == f"mlops-artifacts-{purpose}"
    ]
    return str(bucket.outputs["arn"])


def statement(document: dict[str, Any], sid: str) -> dict[str, Any]:
    [found] = [s for s in document["Statement"] if s.get("Sid") == sid]
    return found


def test_no_cluster_training_without_a_cluster_backed_model() -> None:
    assert not [r for r in recorded("dev").resources if r.name.startswith(C)]


@pytest.mark.parametrize("shared", [False, True])
def test_cluster_backed_stacks_pass_every_policy(shared: bool) -> None:
    report = check(cluster_backed(shared))
    assert report.mandatory == [] and report.advisory == []


def test_requests_queue_is_encrypted_and_dead_letters_are_kept_and_alarmed() -> None:
    stack = cluster_backed()
    key_arn = stack.named("mlops-encryption-data-key").outputs["arn"]
    queue, dead = stack.named(f"{C}-queue"), stack.named(f"{C}-dead-letters")
    assert queue.inputs["name"] == "mlops-dev-cluster-training"
    assert queue.inputs["kmsMasterKeyId"] == dead.inputs["kmsMasterKeyId"] == key_arn
    redrive = json.loads(queue.inputs["redrivePolicy"])
    assert redrive == {"deadLetterTargetArn": dead.outputs["arn"], "maxReceiveCount": MAX_RECEIVES}
    assert (
        queue.inputs["visibilityTimeoutSeconds"]
        >= 6 * stack.named(f"{C}-launcher").inputs["timeout"]
    )
    alarm = stack.named(f"{C}-dead-letters-alarm")
    assert alarm.inputs["dimensions"] == {"QueueName": dead.inputs["name"]}
    topic = stack.named("mlops-monitoring-alerts").outputs["arn"]
    assert alarm.inputs["alarmActions"] == [topic]


def test_only_the_pipelines_send_and_only_over_tls() -> None:
    stack = cluster_backed()
    role = stack.named("mlops-pipelines-execution-role")
    document = policy(stack.named(f"{C}-queue-policy"))
    send = statement(document, "PipelinesSend")
    assert send["Principal"] == {"AWS": role.outputs["arn"]}
    assert send["Action"] == "sqs:SendMessage"
    deny = statement(document, "DenyWithoutTls")
    assert deny["Effect"] == "Deny"
    assert deny["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    sender = stack.named(f"{C}-send-requests")
    assert sender.inputs["role"] == role.outputs["name"]
    assert (
        statement(policy(sender), "SendTrainingRequests")["Resource"]
        == (stack.named(f"{C}-queue").outputs["arn"])
    )


def test_the_definition_sends_to_the_queue_and_reads_the_callback_outputs() -> None:
    stack = cluster_backed()
    definition = json.loads(stack.named("mlops-pipelines-digits").inputs["pipelineDefinition"])
    steps = {step["Name"]: step for step in definition["Steps"]}
    assert steps["Train"]["Type"] == "Callback"
    assert steps["Train"]["SqsQueueUrl"] == stack.named(f"{C}-queue").outputs["url"]
    assert {o["OutputName"] for o in steps["Train"]["OutputParameters"]} == {
        MODEL_ARTIFACTS,
        METRICS,
    }


def _assert_launcher_network(stack: Any, cluster_group: str) -> None:
    """The launcher's own group: HTTPS out only, admitted by the cluster's group on 443."""
    function = stack.named(f"{C}-launcher")
    group = stack.named(f"{C}-launcher-sg")
    (group_id,) = function.inputs["vpcConfig"]["securityGroupIds"]
    assert group.urn in function.property_dependencies["vpcConfig"]
    assert group_id != cluster_group
    assert group.inputs["vpcId"] == stack.outputs["vpc_id"]
    rules = [
        r
        for r in stack.resources
        if r.type.startswith("aws:vpc/securityGroup")
        and group_id in (r.inputs.get("securityGroupId"), r.inputs.get("referencedSecurityGroupId"))
    ]
    shapes = {
        (r.type.rsplit(":", 1)[-1], r.inputs["securityGroupId"], r.inputs.get("fromPort"))
        for r in rules
    }
    assert shapes == {
        ("SecurityGroupEgressRule", group_id, 443),
        ("SecurityGroupIngressRule", cluster_group, 443),
    }
    ingress = stack.named(f"{C}-api-from-launcher")
    assert ingress.inputs["referencedSecurityGroupId"] == group_id
    assert ingress.urn in function.depends_on  # the API is reachable at the first call
    access = policy(stack.named(f"{C}-launcher-access"))
    attach = statement(access, "AttachToVpc")["Resource"]
    assert f"arn:aws:ec2:eu-west-1:111111111111:security-group/{group_id}" in attach


def test_the_launcher_runs_in_the_vpc_in_its_own_security_group() -> None:
    stack = cluster_backed()
    function = stack.named(f"{C}-launcher")
    cluster = stack.named("mlops-cluster-eks")
    _assert_launcher_network(stack, cluster.outputs["vpcConfig"]["clusterSecurityGroupId"])
    vpc = function.inputs["vpcConfig"]
    assert vpc["subnetIds"] == stack.outputs["private_subnet_ids"]  # never the NAT's subnet
    assert function.inputs["handler"] == LAUNCHER_HANDLER
    env = function.inputs["environment"]["variables"]
    assert env["MLOPS_CLUSTER_NAME"] == cluster.inputs["name"]
    assert env["MLOPS_CLUSTER_ENDPOINT"] == cluster.outputs["endpoint"]
    assert json.loads(env["MLOPS_TEAM_NAMESPACES"]) == {"research": "research"}
    assert json.loads(env["MLOPS_TEAM_GPUS"]) == {"research": 4}
    assert json.loads(env["MLOPS_GPU_ACCELERATORS"]) == ["nvidia-a10g"]
    assert env["MLOPS_TRAINING_OPERATOR"] == "false"


def test_the_launcher_package_holds_everything_it_imports() -> None:
    code: dict[str, Any] = cluster_backed().named(f"{C}-launcher").inputs["code"]
    assert_package_holds_its_imports(code, LAUNCHER_FILES, LAUNCHER_HANDLER)


def test_requests_reach_the_launcher_which_reports_per_message() -> None:
    stack = cluster_backed()
    mapping = stack.named(f"{C}-requests")
    assert mapping.inputs["eventSourceArn"] == stack.named(f"{C}-queue").outputs["arn"]
    assert mapping.inputs["functionResponseTypes"] == ["ReportBatchItemFailures"]


def test_the_sweeper_runs_every_five_minutes() -> None:
    stack = cluster_backed()
    rule = stack.named(f"{C}-sweep")
    assert rule.inputs["scheduleExpression"] == "rate(5 minutes)"
    target = stack.named(f"{C}-sweep-target")
    assert json.loads(target.inputs["input"]) == {"sweep": True}
    assert target.inputs["arn"] == stack.named(f"{C}-launcher").outputs["arn"]
    permission = stack.named(f"{C}-sweep-invoke")
    assert permission.inputs["principal"] == "events.amazonaws.com"
    assert permission.inputs["sourceArn"] == rule.outputs["arn"]


def test_the_launcher_may_edit_the_team_namespace_only() -> None:
    stack = cluster_backed()
    association = stack.named(f"{C}-access-policy")
    assert association.inputs["policyArn"].endswith("cluster-access-policy/AmazonEKSEditPolicy")
    assert association.inputs["accessScope"] == {"type": "namespace", "namespaces": ["research"]}
    role_arn = stack.named(f"{C}-launcher-role").outputs["arn"]
    assert association.inputs["principalArn"] == role_arn
    assert stack.named(f"{C}-access-entry").inputs["principalArn"] == role_arn


def test_launcher_permissions_are_scoped() -> None:
    stack = cluster_backed()
    document = policy(stack.named(f"{C}-launcher-access"))
    models = bucket_arn(stack, "models")
    assert statement(document, "ReadStepCode")["Resource"] == f"{models}/code/*"
    listing = statement(document, "ListStepCode")
    assert listing["Resource"] == models
    assert listing["Condition"] == {"StringLike": {"s3:prefix": ["code/*"]}}
    assert statement(document, "StageIntoTeamPrefixes")["Resource"] == f"{models}/teams/*"
    callbacks = statement(document, "CompleteCallbackSteps")
    assert callbacks["Resource"] == (
        "arn:aws:sagemaker:eu-west-1:111111111111:pipeline/mlops-dev-*/execution/*"
    )
    wildcard = [s["Sid"] for s in document["Statement"] if s["Resource"] == "*"]
    assert wildcard == ["SeeInterfaces"]


def test_team_jobs_may_complete_their_pipelines_callback_steps() -> None:
    stack = cluster_backed()
    callbacks = policy(stack.named("mlops-teams-research-callbacks"))
    [only] = callbacks["Statement"]
    assert only["Action"] == [
        "sagemaker:SendPipelineExecutionStepSuccess",
        "sagemaker:SendPipelineExecutionStepFailure",
    ]
    assert only["Resource"].endswith(":pipeline/mlops-dev-*/execution/*")
    artifacts = policy(stack.named("mlops-teams-research-artifacts"))
    pipeline_bucket = bucket_arn(stack, "pipeline")
    assert (
        f"{pipeline_bucket}/teams/research/*"
        in statement(artifacts, "ReadWriteOwnPrefix")["Resource"]
    )


def test_on_a_shared_cluster_the_owners_security_group_admits_the_launcher() -> None:
    stack = cluster_backed(shared=True)
    function = stack.named(f"{C}-launcher")
    _assert_launcher_network(stack, "sg-0shared0000000000")
    env = function.inputs["environment"]["variables"]
    assert json.loads(env["MLOPS_TEAM_NAMESPACES"]) == {"research": "research-dev-x"}
    # The owner's pools are not in this stack's settings: the launcher does not filter.
    assert json.loads(env["MLOPS_GPU_ACCELERATORS"]) == []
    association = stack.named(f"{C}-access-policy")
    assert association.inputs["accessScope"]["namespaces"] == ["research-dev-x"]
    assert association.inputs["clusterName"] == "mlops-shared"


def test_without_the_training_operator_no_kubernetes_group_or_rbac() -> None:
    stack = cluster_backed()
    assert stack.named(f"{C}-access-entry").inputs.get("kubernetesGroups") is None
    assert not [r for r in stack.resources if r.type.startswith("kubernetes:rbac") and C in r.name]


def test_with_the_training_operator_the_launcher_may_run_pytorchjobs_in_the_namespace() -> None:
    stack = cluster_backed(operator=True)
    assert stack.named(f"{C}-access-entry").inputs["kubernetesGroups"] == [LAUNCHER_GROUP]
    role = stack.named(f"{C}-research-role")
    assert role.inputs["metadata"]["namespace"] == "research"
    assert role.inputs["rules"] == [
        {
            "apiGroups": ["kubeflow.org"],
            "resources": ["pytorchjobs"],
            "verbs": ["create", "get", "list", "watch", "patch"],
        }
    ]
    binding = stack.named(f"{C}-research-rolebinding")
    assert binding.inputs["subjects"] == [
        {"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": LAUNCHER_GROUP}
    ]
    assert binding.inputs["roleRef"]["name"] == role.inputs["metadata"]["name"]
    cluster = stack.named("mlops-cluster-kubernetes")
    assert role.provider is not None and role.provider.startswith(cluster.urn)
    version = stack.settings.cluster.version
    for manifest in pytorch_job_rbac("research"):
        assert schema_errors(manifest, version) == []
