"""GpuMetrics: managed Prometheus for the training cluster. The workspace keeps the AWS owned
key (managed collectors cannot write to a CMK workspace) and logs to an encrypted group; the
managed scraper reads the GPU and cluster-state exporters in the cluster's subnets with
read-only access; GPU alert rules; Alertmanager to the alert
topic; nothing of it without a managed cluster."""

from __future__ import annotations

import json

import yaml

from components.cluster_charts import KUBE_STATE_METRICS
from components.gpu_metrics_config import SCRAPED_SERVICES, SCRAPER_ROLE, SCRAPER_USER
from stacks import outputs
from stacks.offline import StackRecording, evaluate_config
from tests.conftest import stack_config

WRITE_VERBS = {"create", "update", "patch", "delete", "deletecollection", "*", "escalate", "bind"}


def test_workspace_a_managed_collector_can_write_to(recording: StackRecording) -> None:
    workspace = recording.named("mlops-gpu-metrics-workspace")
    logs = recording.named("mlops-gpu-metrics-logs")
    assert workspace.inputs["alias"] == f"mlops-{recording.stack}"
    # AMP: managed collectors cannot ingest into a workspace with a customer managed key.
    assert "kmsKeyArn" not in workspace.inputs
    assert workspace.inputs["loggingConfiguration"]["logGroupArn"] == f"{logs.outputs['arn']}:*"
    assert logs.inputs["kmsKeyId"] == recording.outputs[outputs.LOGS_KEY_ARN]
    assert logs.inputs["retentionInDays"] == recording.settings.logging.retention_days


def test_scraper_reads_the_cluster_from_its_subnets(recording: StackRecording) -> None:
    scraper = recording.named("mlops-gpu-metrics-scraper")
    cluster = recording.named("mlops-cluster-eks")
    eks = scraper.inputs["source"]["eks"]
    assert eks["clusterArn"] == cluster.outputs["arn"]
    assert eks["subnetIds"] == recording.outputs[outputs.PRIVATE_SUBNET_IDS]
    assert eks["securityGroupIds"] == [cluster.outputs["vpcConfig"]["clusterSecurityGroupId"]]
    workspace = recording.named("mlops-gpu-metrics-workspace")
    assert scraper.inputs["destination"] == {"amp": {"workspaceArn": workspace.outputs["arn"]}}
    config = yaml.safe_load(scraper.inputs["scrapeConfiguration"])
    kept = [job["relabel_configs"][0] for job in config["scrape_configs"]]
    assert [(k["action"], k["regex"]) for k in kept] == [("keep", s) for s in SCRAPED_SERVICES]


def test_the_scraped_services_are_the_ones_the_cluster_runs(recording: StackRecording) -> None:
    releases = {r.inputs["name"] for r in recording.of_type("kubernetes:helm.sh/v3:Release")}
    assert set(SCRAPED_SERVICES) <= releases
    kube_state = recording.named("mlops-cluster-kube-state-metrics")
    assert kube_state.inputs["version"] == KUBE_STATE_METRICS.version


def test_scraper_has_read_only_access(recording: StackRecording) -> None:
    # EKS creates the scraper's access entry itself (API authentication mode); a second one
    # for its role would fail with a 409, so the stack creates none.
    entries = recording.of_type("aws:eks/accessEntry:AccessEntry")
    assert not [e for e in entries if "scraper" in e.name]
    cluster = recording.named("mlops-cluster-eks")
    assert cluster.inputs["accessConfig"]["authenticationMode"] == "API"
    role = recording.named("mlops-gpu-metrics-clusterrole").inputs
    for rule in role["rules"]:
        assert not WRITE_VERBS & set(rule["verbs"])
        assert "secrets" not in rule.get("resources", [])
    binding = recording.named("mlops-gpu-metrics-clusterrolebinding").inputs
    assert binding["roleRef"]["name"] == role["metadata"]["name"] == SCRAPER_ROLE
    assert binding["subjects"] == [
        {"kind": "User", "name": SCRAPER_USER, "apiGroup": "rbac.authorization.k8s.io"}
    ]


def test_gpu_alert_rules(recording: StackRecording) -> None:
    rules = recording.named("mlops-gpu-metrics-gpu-rules")
    alertmanager = recording.named("mlops-gpu-metrics-alertmanager")
    assert rules.inputs["workspaceId"].startswith("ws-")
    assert rules.inputs["workspaceId"] == alertmanager.inputs["workspaceId"]
    (group,) = yaml.safe_load(rules.inputs["data"])["groups"]
    alerts = {rule["alert"]: rule for rule in group["rules"]}
    assert set(alerts) == {"GpuNodeIdle", "GpuMemoryNearlyFull", "GpuXidErrors"}
    assert "DCGM_FI_DEV_GPU_UTIL" in alerts["GpuNodeIdle"]["expr"]
    assert alerts["GpuNodeIdle"]["for"] == "30m"
    assert "DCGM_FI_DEV_FB_USED" in alerts["GpuMemoryNearlyFull"]["expr"]
    assert alerts["GpuXidErrors"]["labels"]["severity"] == "critical"
    # The XID metric is the last error code, not a count: the alert fires on a change in
    # its window (so it clears), never on the raw value.
    xid = alerts["GpuXidErrors"]["expr"]
    assert "changes(DCGM_FI_DEV_XID_ERRORS[10m])" in xid
    assert "(DCGM_FI_DEV_XID_ERRORS)" not in xid


def test_alertmanager_sends_to_the_alert_topic(recording: StackRecording) -> None:
    definition = recording.named("mlops-gpu-metrics-alertmanager").inputs["definition"]
    config = yaml.safe_load(yaml.safe_load(definition)["alertmanager_config"])
    (receiver,) = config["receivers"]
    assert config["route"]["receiver"] == receiver["name"]
    (sns,) = receiver["sns_configs"]
    assert sns["topic_arn"] == recording.outputs[outputs.ALERT_TOPIC_ARN]
    assert sns["sigv4"] == {"region": recording.settings.aws.region}
    # ... and the topic lets this account's workspaces publish.
    policy = json.loads(recording.named("mlops-monitoring-alerts-policy").inputs["policy"])
    aps = next(s for s in policy["Statement"] if s["Principal"] == {"Service": "aps.amazonaws.com"})
    workspace = recording.named("mlops-gpu-metrics-workspace")
    assert aps["Condition"]["ArnEquals"]["aws:SourceArn"] == [workspace.outputs["arn"]]
    assert set(aps["Action"]) == {"sns:Publish", "sns:GetTopicAttributes"}


def test_no_managed_cluster_no_prometheus() -> None:
    config = stack_config("dev")
    config["mlops-platform:cluster"] = {
        "mode": "shared",
        "shared_stack": "acme/mlops-platform/dev",
        "teams": {"research": {"gpus": 1}},
    }
    recording = evaluate_config("dev", config)
    assert not [r for r in recording.resources if r.type.startswith("aws:amp/")]
