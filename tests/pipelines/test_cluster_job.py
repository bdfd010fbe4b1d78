"""The Kubernetes object a cluster-backed Train step runs as (pipelines/steps/cluster_job.py):
valid for every supported cluster version's schema, checkov-clean but for the accepted
findings, and holding what the job and its sweep need (GPUs, placement, deadline, retries,
labels, the callback token)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from components import cluster_charts, team_manifests
from pipelines.steps import cluster_job, cluster_run
from pipelines.steps.cluster_job import (
    CHECKOV_ACCEPTED,
    MAX_JOB_NAME,
    job_manifest,
    job_name,
    pod_template,
)
from pipelines.steps.cluster_request import TrainingRequest, parse_message
from policy.mlops_rules.eks import SUPPORTED_EKS_VERSIONS
from tests.kubernetes_checks import checkov_findings, schema_errors

ROOT = Path(__file__).resolve().parents[2]
REGION = "eu-west-1"
EXECUTION_ID = "k3x9q2m7w1ab"
EXECUTION_ARN = f"arn:aws:sagemaker:{REGION}:123456789012:pipeline/mlops-dev-digits/execution/"
IMAGE = "111111111111.dkr.ecr.eu-west-1.amazonaws.com/mlops-dev/training:2026.11.1"
NAMESPACE = "research"
DNS_LABEL = re.compile(r"[a-z]([-a-z0-9]*[a-z0-9])?")
LABEL_VALUE = re.compile(r"(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?")  # may be empty


def message(token: str = "Tok3nAbCd9", execution: str = EXECUTION_ID, **arguments: Any) -> str:
    """A callback message as SageMaker sends it, with the contract's arguments."""
    values: dict[str, Any] = {
        "model": "digits",
        "team": "research",
        "image": IMAGE,
        "gpusPerNode": "1",
        "nodes": "1",
        "accelerator": "nvidia-a10g",
        "cpu": "4",
        "memory": "16Gi",
        "trainUri": "s3://mlops-dev-pipeline/teams/research/digits/x/train/",
        "validationUri": "s3://mlops-dev-pipeline/teams/research/digits/x/validation/",
        "codeUri": "s3://mlops-dev-models/code/0123abcd/",
        "outputUri": f"s3://mlops-dev-models/teams/research/digits/{execution}/",
        "hyperparameters": json.dumps({"max_depth": "6", "eta": "0.3", "num_round": "50"}),
        "maxRuntimeSeconds": "7200",
        "mlflowTrackingUri": "arn:aws:sagemaker:eu-west-1:123456789012:mlflow-tracking-server/x",
        "mlflowExperimentName": "mlops-dev-digits",
    }
    values.update(arguments)
    return json.dumps(
        {
            "token": token,
            "pipelineExecutionArn": EXECUTION_ARN + execution,
            "status": "Executing",
            "arguments": values,
        }
    )


def request(**arguments: Any) -> TrainingRequest:
    return parse_message(message(**arguments))


def job(**arguments: Any) -> dict[str, Any]:
    return job_manifest(request(**arguments), NAMESPACE, False, region=REGION)


def pod(manifest: dict[str, Any]) -> dict[str, Any]:
    spec: dict[str, Any] = manifest["spec"]["template"]["spec"]
    return spec


def container(manifest: dict[str, Any], name: str = "train") -> dict[str, Any]:
    spec = pod(manifest)
    found: dict[str, Any] = next(
        c for c in spec["containers"] + spec["initContainers"] if c["name"] == name
    )
    return found


def env(entry: dict[str, Any]) -> dict[str, str]:
    return {item["name"]: item["value"] for item in entry["env"]}


def as_job(template: dict[str, Any], name: str) -> dict[str, Any]:
    """A PyTorchJob's pod template inside a Job, for the schema and checkov (which know no
    PyTorchJob)."""
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name, "namespace": NAMESPACE},
        "spec": {"template": template},
    }


def pytorch_job(nodes: int = 3) -> dict[str, Any]:
    return job_manifest(request(nodes=str(nodes)), NAMESPACE, True, region=REGION)


# -- schema and checkov --------------------------------------------------------------------


@pytest.mark.parametrize("version", SUPPORTED_EKS_VERSIONS)
@pytest.mark.parametrize("accelerator", ["nvidia-a10g", ""])
def test_the_job_matches_the_schema(version: str, accelerator: str) -> None:
    assert schema_errors(job(accelerator=accelerator), version) == []


@pytest.mark.parametrize("version", SUPPORTED_EKS_VERSIONS)
def test_a_pytorch_jobs_pod_templates_match_the_schema(version: str) -> None:
    replicas = pytorch_job()["spec"]["pytorchReplicaSpecs"]
    for replica_type, replica in replicas.items():
        wrapped = as_job(replica["template"], f"wrapped-{replica_type.lower()}")
        assert schema_errors(wrapped, version) == []


def test_checkov_fails_only_the_accepted_checks() -> None:
    """One scan without skips: what fails is exactly what CHECKOV_ACCEPTED names (so an
    acceptance that no longer applies is noticed too), each with its reason."""
    assert all(reason.strip() for reason in CHECKOV_ACCEPTED.values())
    manifests = [
        job(),
        job(accelerator="", token="0therTok3n"),
        as_job(pytorch_job()["spec"]["pytorchReplicaSpecs"]["Worker"]["template"], "worker"),
    ]
    findings = checkov_findings(manifests, skip={})
    assert {f.check_id for f in findings} == set(CHECKOV_ACCEPTED), "\n".join(
        f"{f.check_id} {f.resource} ({f.file})" for f in findings
    )


# -- what the job holds --------------------------------------------------------------------


def test_the_platform_constants_match_the_clusters() -> None:
    """Repeated in pipelines/ for the Lambda's package; the same values as the stack's."""
    assert cluster_job.GPU_RESOURCE == team_manifests.GPU_RESOURCE
    assert cluster_job.GPU_TOLERATION == team_manifests.GPU_TOLERATION
    assert cluster_job.TRAINING_SERVICE_ACCOUNT == team_manifests.TRAINING_SERVICE_ACCOUNT
    assert cluster_job.ACCELERATOR_LABEL == cluster_charts.ACCELERATOR_LABEL


def test_the_train_container_asks_for_the_gpus_cpu_and_memory() -> None:
    resources = container(job(gpusPerNode="4", cpu="16", memory="64Gi"))["resources"]
    expected = {"cpu": "16", "memory": "64Gi", "nvidia.com/gpu": "4"}
    assert resources == {"requests": expected, "limits": expected}


def test_the_pod_lands_on_a_gpu_node_of_the_accelerator() -> None:
    spec = pod(job(accelerator="nvidia-h100"))
    assert spec["tolerations"] == [team_manifests.GPU_TOLERATION]
    assert spec["nodeSelector"] == {"k8s.amazonaws.com/accelerator": "nvidia-h100"}
    # No accelerator named: any GPU pool.
    assert "nodeSelector" not in pod(job(accelerator=""))


def test_deadline_retries_and_lifetime() -> None:
    spec = job(maxRuntimeSeconds="5400")["spec"]
    assert spec["activeDeadlineSeconds"] == 5400
    assert spec["backoffLimit"] == 1
    assert spec["ttlSecondsAfterFinished"] == 86_400
    ignore, fail = spec["podFailurePolicy"]["rules"]
    assert ignore == {
        "action": "Ignore",
        "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}],
    }
    # cluster_run.py's exit codes after which another try cannot help fail the job at once.
    assert fail["action"] == "FailJob"
    assert fail["onExitCodes"] == {
        "containerName": "train",
        "operator": "In",
        "values": [
            cluster_run.EXIT_NO_TOKEN,
            cluster_run.EXIT_REPORTED_FAILURE,
            cluster_run.EXIT_NOT_WAITING,
        ],
    }
    assert cluster_run.EXIT_UNREPORTED not in fail["onExitCodes"]["values"]
    assert pod(job())["restartPolicy"] == "Never"


def test_labels_and_annotations_find_the_job_and_its_step() -> None:
    metadata = job(token="Tok3nAbCd9")["metadata"]
    assert metadata["namespace"] == NAMESPACE
    assert metadata["labels"] == {
        "app.kubernetes.io/managed-by": "mlops-launcher",
        "mlops.platform/model": "digits",
        "mlops.platform/team": "research",
        "mlops.platform/execution": EXECUTION_ID,
        "mlops.platform/callback": "true",
    }
    assert metadata["annotations"] == {
        "mlops.platform/callback-token": "Tok3nAbCd9",
        "mlops.platform/pipeline-execution-arn": EXECUTION_ARN + EXECUTION_ID,
    }
    # The pods are found through the job-name label the Job controller gives them.
    assert "metadata" not in job()["spec"]["template"]


def test_the_train_container_runs_cluster_run_with_the_hyperparameters() -> None:
    train = container(job(hyperparameters=json.dumps({"max_depth": "6", "eta": 0.3})))
    assert train["image"] == IMAGE
    assert train["imagePullPolicy"] == "IfNotPresent"
    assert train["command"] == ["python", "-m", "pipelines.steps.cluster_run"]
    assert train["args"] == ["--max_depth", "6", "--eta", "0.3"]
    variables = env(train)
    assert variables["MLOPS_CALLBACK_TOKEN"] == "Tok3nAbCd9"
    assert variables["MLOPS_TRAIN_URI"] == "s3://mlops-dev-pipeline/teams/research/digits/x/train/"
    assert variables["MLOPS_VALIDATION_URI"].endswith("/validation/")
    assert variables["MLOPS_OUTPUT_URI"] == (
        f"s3://mlops-dev-models/teams/research/digits/{EXECUTION_ID}/"
    )
    assert variables["MLFLOW_TRACKING_URI"].startswith("arn:aws:sagemaker:")
    assert variables["MLFLOW_EXPERIMENT_NAME"] == "mlops-dev-digits"
    assert variables["MLOPS_MODEL_NAME"] == "digits"
    assert variables["MLOPS_PIPELINE_EXECUTION_ID"] == EXECUTION_ID
    assert variables["PYTHONPATH"] == "/opt/ml/code"
    assert variables["AWS_DEFAULT_REGION"] == variables["AWS_REGION"] == REGION
    assert variables["HOME"] == "/tmp"
    assert variables["SM_MODEL_DIR"] == "/opt/ml/model"
    # No tracking server: the variable is left out rather than set empty.
    assert "MLFLOW_TRACKING_URI" not in env(container(job(mlflowTrackingUri="")))


def test_the_init_container_stages_the_code_copy_with_stage_code() -> None:
    stage = container(job(), "stage")
    source = (ROOT / "pipelines" / "steps" / "stage_code.py").read_text(encoding="utf-8")
    assert stage["image"] == IMAGE
    assert stage["command"] == [
        "python",
        "-c",
        source,
        f"s3://mlops-dev-models/teams/research/digits/{EXECUTION_ID}/code/",
        "/opt/ml/code/pipelines",
    ]
    assert "def main(" in source and "import pipelines" not in source
    assert env(stage)["AWS_DEFAULT_REGION"] == REGION
    assert {m["mountPath"] for m in stage["volumeMounts"]} == {"/opt/ml", "/tmp"}


def test_the_stage_source_is_read_when_the_manifest_is_built(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(cluster_job, "stage_code_source", lambda: "print('staged')")
    assert container(job(), "stage")["command"][2] == "print('staged')"


def test_the_pod_is_hardened() -> None:
    spec = pod(job())
    assert spec["serviceAccountName"] == "training"
    assert spec["automountServiceAccountToken"] is False
    assert spec["securityContext"]["runAsNonRoot"] is True
    assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    for entry in spec["containers"] + spec["initContainers"]:
        context = entry["securityContext"]
        assert context["allowPrivilegeEscalation"] is False
        assert context["readOnlyRootFilesystem"] is True
        assert context["capabilities"] == {"drop": ["ALL"]}
        assert context["runAsNonRoot"] is True and context["runAsUser"] >= 10000
        # Every mount is one of the pod's volumes (the rest of the filesystem is read-only).
        volumes = {volume["name"] for volume in spec["volumes"]}
        assert {mount["name"] for mount in entry["volumeMounts"]} <= volumes
    assert {m["mountPath"] for m in container(job())["volumeMounts"]} == {
        "/opt/ml",
        "/tmp",
        "/dev/shm",
    }


# -- names -----------------------------------------------------------------------------------


def test_the_name_comes_from_model_execution_and_token() -> None:
    name = job_name(request())
    assert name.startswith(f"digits-{EXECUTION_ID}-")
    assert DNS_LABEL.fullmatch(name)
    # The same message, the same name (a redelivery finds its job); another try of the step
    # in the same execution (a new token), another name.
    assert job_name(request()) == name
    assert job_name(request(token="An0therTok")) != name


@pytest.mark.parametrize(
    ("model", "execution"),
    [
        ("a" + "-b" * 15, EXECUTION_ID),  # the longest model name the settings allow (31)
        ("x" * 200, "e" * 80),
        ("Digits_V2.final", "abc_DEF_123"),
        ("9lives", EXECUTION_ID),
        ("---", "___"),
    ],
)
def test_names_and_labels_stay_valid(model: str, execution: str) -> None:
    manifest = job_manifest(
        request(model=model, execution=execution), NAMESPACE, False, region=REGION
    )
    name = manifest["metadata"]["name"]
    assert len(name) <= MAX_JOB_NAME and DNS_LABEL.fullmatch(name), name
    for value in manifest["metadata"]["labels"].values():
        assert len(value) <= 63 and LABEL_VALUE.fullmatch(value), value
    assert schema_errors(manifest, SUPPORTED_EKS_VERSIONS[-1]) == []


def test_long_names_keep_apart() -> None:
    a = job_name(request(model="m" * 60, token="AAAAAAAAAA"))
    b = job_name(request(model="m" * 60, token="BBBBBBBBBB"))
    assert a != b and len(a) == len(b) == MAX_JOB_NAME


# -- several nodes ---------------------------------------------------------------------------


def test_several_nodes_with_the_operator_make_a_pytorch_job() -> None:
    manifest = pytorch_job(nodes=3)
    assert (manifest["apiVersion"], manifest["kind"]) == ("kubeflow.org/v1", "PyTorchJob")
    assert manifest["metadata"] == job(nodes="3")["metadata"]
    spec = manifest["spec"]
    assert spec["runPolicy"] == {
        "backoffLimit": 1,
        "activeDeadlineSeconds": 7200,
        "ttlSecondsAfterFinished": 86_400,
        "cleanPodPolicy": "Running",
    }
    master, worker = spec["pytorchReplicaSpecs"]["Master"], spec["pytorchReplicaSpecs"]["Worker"]
    assert (master["replicas"], worker["replicas"]) == (1, 2)
    assert master["template"] == worker["template"]
    # The operator configures the container named `pytorch`; otherwise the Job's pod.
    expected = pod_template(request(nodes="3"), REGION, container="pytorch")
    assert master["template"] == expected
    assert [c["name"] for c in master["template"]["spec"]["containers"]] == ["pytorch"]


def test_several_nodes_without_the_operator_stay_a_job() -> None:
    """(The launcher refuses such a request before; the manifest never names a kind the
    cluster lacks.)"""
    assert job_manifest(request(nodes="2"), NAMESPACE, False, region=REGION)["kind"] == "Job"
    assert job_manifest(request(nodes="1"), NAMESPACE, True, region=REGION)["kind"] == "Job"
