"""The launcher Lambda (pipelines/steps/launcher.py) and its Kubernetes client
(pipelines/steps/eks_api.py), end to end through `handler`.

Kubernetes is the fake API server of tests/pipelines/fake_kubernetes.py: HTTPS on 127.0.0.1
with a CA made for the test (the client verifies it as it verifies the cluster's), EKS bearer
tokens signed for real with dummy credentials, every Job validated with the official client's
models, a GPU quota, Status answers as the API server words them. S3 (the step code copy) is
the moto server; SageMaker's SendPipelineExecutionStepFailure, which moto does not implement,
is botocore's Stubber, which checks each request against AWS's API model, so a test that
queues no answer also proves nothing was sent. A guard fails any connection off loopback.
"""

from __future__ import annotations

import base64
import json
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from botocore.stub import ANY, Stubber

from pipelines.steps import launcher
from pipelines.steps.cluster_job import (
    REPORTED_ANNOTATION,
    code_copy_uri,
    job_manifest,
    job_name,
)
from pipelines.steps.cluster_request import MAX_RECEIVES, failure_reason, parse_message
from pipelines.steps.eks_api import (
    CERTIFICATE_REJECTED,
    KubernetesClient,
    KubernetesError,
    eks_token_provider,
)
from tests.pipelines.aws_stubs import (
    loopback_only,  # noqa: F401 - autouse: no test leaves loopback
    replace_clients,
    stubbed_client,
)
from tests.pipelines.fake_kubernetes import (
    JOBS,
    PYTORCH_JOBS,
    Certificates,
    FakeKubernetes,
    make_certificates,
    running,
)
from tests.pipelines.moto_server import REGION, moto_client, moto_server, moto_url  # noqa: F401
from tests.pipelines.test_cluster_job import EXECUTION_ID, message

CLUSTER = "mlops-dev"
MODELS = "mlops-dev-models"
CODE_PREFIX = "code/0123abcd/"
CODE_FILES = {
    "__init__.py": "",
    "steps/__init__.py": "",
    "steps/train.py": "print('training')\n",
    "steps/cluster_run.py": "print('running')\n",
}
TOKEN = "Tok3nAbCd9"
# Team -> namespace as the stack passes them; `ghost`'s namespace is not on the cluster.
NAMESPACES = {"research": "research", "vision": "vision", "ghost": "ghost-ns"}
TEAM_GPUS = {"research": 4, "vision": 2, "ghost": 4}
ACCELERATORS = ["nvidia-a10g", "nvidia-l4"]
# The namespaces the fake cluster has, with their GPU quota (ResourceQuota team-quota).
CLUSTER_NAMESPACES: dict[str, int | None] = {"research": 4, "vision": 2}
NOT_STARTED = "cluster training not started"
DEADLINE_MESSAGE = "Job was active longer than specified deadline"
GHOST_ERROR = 'Job in ghost-ns: 404 NotFound: namespaces "ghost-ns" not found'


# -- fixtures --------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    return make_certificates(tmp_path_factory.mktemp("certificates"))


@pytest.fixture
def cluster(certificates: Certificates) -> Iterator[FakeKubernetes]:
    with running(CLUSTER_NAMESPACES, certificates=certificates) as fake:
        yield fake


@pytest.fixture
def sagemaker() -> Iterator[tuple[Any, Stubber]]:
    client = stubbed_client("sagemaker")
    with Stubber(client) as stubber:
        yield client, stubber
        stubber.assert_no_pending_responses()


@pytest.fixture
def s3(moto_url: str) -> Any:  # noqa: F811 - the fixture
    client = moto_client(moto_url, "s3")
    client.create_bucket(Bucket=MODELS, CreateBucketConfiguration={"LocationConstraint": REGION})
    for path, text in CODE_FILES.items():
        client.put_object(Bucket=MODELS, Key=CODE_PREFIX + path, Body=text.encode())
    client.put_object(Bucket=MODELS, Key=CODE_PREFIX + "steps/", Body=b"")  # a folder marker
    return client


def configure(
    monkeypatch: pytest.MonkeyPatch,
    cluster: FakeKubernetes,
    *,
    operator: bool = False,
    accelerators: list[str] = ACCELERATORS,
) -> None:
    """The Lambda's environment, as the stack sets it, for the fake cluster."""
    ca = base64.b64encode(cluster.ca_pem.encode("ascii")).decode("ascii")
    for name, value in {
        "AWS_REGION": REGION,
        "MLOPS_CLUSTER_NAME": CLUSTER,
        "MLOPS_CLUSTER_ENDPOINT": cluster.url,
        "MLOPS_CLUSTER_CA": ca,
        "MLOPS_TEAM_NAMESPACES": json.dumps(NAMESPACES),
        "MLOPS_TEAM_GPUS": json.dumps(TEAM_GPUS),
        "MLOPS_GPU_ACCELERATORS": json.dumps(accelerators),
        "MLOPS_TRAINING_OPERATOR": "true" if operator else "false",
    }.items():
        monkeypatch.setenv(name, value)


@pytest.fixture
def lambda_env(
    monkeypatch: pytest.MonkeyPatch,
    cluster: FakeKubernetes,
    sagemaker: tuple[Any, Stubber],
    s3: Any,
) -> list[str | None]:
    """The handler's environment and clients: the fake cluster (through the real
    make_kubernetes), the stubbed SageMaker and moto's S3. Returns the regions asked for."""
    configure(monkeypatch, cluster)
    return replace_clients(monkeypatch, launcher, sagemaker[0], s3)


def sqs_event(*bodies: str) -> dict[str, Any]:
    return {
        "Records": [
            {
                "messageId": f"m{index}",
                "receiptHandle": f"handle-{index}",
                "body": body,
                "attributes": {"ApproximateReceiveCount": "1"},
                "messageAttributes": {},
                "eventSource": "aws:sqs",
                "eventSourceARN": f"arn:aws:sqs:{REGION}:123456789012:mlops-dev-cluster-training",
                "awsRegion": REGION,
            }
            for index, body in enumerate(bodies)
        ]
    }


def expect_failure(stubber: Stubber, reason: str, token: str = TOKEN) -> None:
    stubber.add_response(
        "send_pipeline_execution_step_failure",
        {"PipelineExecutionArn": "arn:aws:sagemaker:eu-west-1:123456789012:pipeline/x/execution/y"},
        {"CallbackToken": token, "FailureReason": reason, "ClientRequestToken": ANY},
    )


def posts(cluster: FakeKubernetes) -> list[str]:
    return [path for method, path in cluster.requests if method == "POST"]


def copied_code(s3: Any, body: str) -> list[str]:
    target = code_copy_uri(parse_message(body)).removeprefix(f"s3://{MODELS}/")
    answer = s3.list_objects_v2(Bucket=MODELS, Prefix=target)
    return sorted(item["Key"].removeprefix(target) for item in answer.get("Contents", []))


def all_jobs(cluster: FakeKubernetes) -> dict[str, Any]:
    return {
        f"{namespace}/{name}": job
        for namespace in CLUSTER_NAMESPACES
        for name, job in cluster.stored(namespace).items()
    }


# -- SQS: requests ---------------------------------------------------------------------------


def test_a_good_message_creates_the_job_with_its_code_staged(
    lambda_env: list[str | None], cluster: FakeKubernetes, s3: Any
) -> None:
    body = message()
    assert launcher.handler(sqs_event(body), None) == {"batchItemFailures": []}
    request = parse_message(body)
    jobs = cluster.stored("research")
    assert list(jobs) == [job_name(request)]
    created = jobs[job_name(request)]
    expected = job_manifest(request, "research", False, region=REGION)
    assert created["spec"] == expected["spec"]
    assert created["metadata"]["labels"] == expected["metadata"]["labels"]
    assert created["metadata"]["annotations"] == expected["metadata"]["annotations"]
    # The code, copied where the team's pods may read it.
    assert copied_code(s3, body) == sorted(CODE_FILES)
    assert lambda_env == [REGION]
    # Every request carried an EKS token for this cluster.
    assert cluster.tokens and all(t.startswith("k8s-aws-v1.") for t in cluster.tokens)
    assert signed_header(presigned_url(cluster.tokens[0]))


@pytest.mark.parametrize(
    ("arguments", "reason"),
    [
        (
            {"team": "nobody"},
            "team 'nobody' has no namespace on the training cluster (teams: ghost, research, "
            "vision)",
        ),
        (
            {"gpusPerNode": "8"},
            "8 GPUs (8 per node x 1 nodes) is over team research's quota of 4 GPUs",
        ),
        (
            {"accelerator": "nvidia-h100"},
            "no GPU pool offers accelerator nvidia-h100 (offered: nvidia-a10g, nvidia-l4)",
        ),
        (
            {"nodes": "2"},
            "2 nodes need the Kubeflow training operator (a PyTorchJob), which the training "
            "cluster does not run",
        ),
        ({"cpu": "four"}, "cpu 'four' is not a Kubernetes quantity"),
        ({"codeUri": "s3://mlops-dev-models/code/missing/"}, None),
    ],
    ids=["unknown-team", "over-quota", "no-such-gpu", "multi-node", "malformed", "no-code"],
)
def test_a_request_that_cannot_run_fails_the_step_and_creates_nothing(
    lambda_env: list[str | None],
    cluster: FakeKubernetes,
    sagemaker: tuple[Any, Stubber],
    s3: Any,
    arguments: dict[str, str],
    reason: str | None,
) -> None:
    reason = reason or f"no step code under {arguments.get('codeUri')}"
    expect_failure(sagemaker[1], f"{NOT_STARTED}: {reason}")
    body = message(**arguments)
    assert launcher.handler(sqs_event(body), None) == {"batchItemFailures": []}
    assert posts(cluster) == [] and all_jobs(cluster) == {}
    assert s3.list_objects_v2(Bucket=MODELS, Prefix="teams/").get("KeyCount") == 0


def test_a_message_missing_arguments_fails_the_step(
    lambda_env: list[str | None], cluster: FakeKubernetes, sagemaker: tuple[Any, Stubber]
) -> None:
    body = json.loads(message())
    del body["arguments"]["image"], body["arguments"]["cpu"]
    expect_failure(sagemaker[1], f"{NOT_STARTED}: the request lacks image, cpu")
    assert launcher.handler(sqs_event(json.dumps(body)), None) == {"batchItemFailures": []}
    assert posts(cluster) == []


@pytest.mark.parametrize("body", ["not json", json.dumps({"token": "short"}), "[]"])
def test_a_message_without_a_token_is_only_logged(
    lambda_env: list[str | None],
    cluster: FakeKubernetes,
    body: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """No token, no step to fail; the message is consumed (it would fail the same again)."""
    assert launcher.handler(sqs_event(body), None) == {"batchItemFailures": []}
    assert posts(cluster) == []
    assert "without a callback token" in caplog.text


def test_a_namespace_missing_from_the_cluster_fails_the_step(
    lambda_env: list[str | None], cluster: FakeKubernetes, sagemaker: tuple[Any, Stubber]
) -> None:
    body = message(team="ghost")
    name = job_name(parse_message(body))
    expect_failure(
        sagemaker[1],
        f'{NOT_STARTED}: Kubernetes refused Job ghost-ns/{name}: namespaces "ghost-ns" not found',
    )
    assert launcher.handler(sqs_event(body), None) == {"batchItemFailures": []}
    assert all_jobs(cluster) == {}


def test_a_job_over_the_quota_in_use_fails_the_step(
    lambda_env: list[str | None], cluster: FakeKubernetes, sagemaker: tuple[Any, Stubber]
) -> None:
    """Within the team's quota on its own, but not beside the team's running jobs."""
    first = message(gpusPerNode="3")
    second = message(token="An0therTok", execution="second1run22", gpusPerNode="2")
    name = job_name(parse_message(second))
    reason = (
        f'{NOT_STARTED}: Kubernetes refused Job research/{name}: jobs.batch "{name}" is '
        "forbidden: exceeded quota: team-quota, requested: requests.nvidia.com/gpu=2, used: "
        "requests.nvidia.com/gpu=3, limited: requests.nvidia.com/gpu=4"
    )
    expect_failure(sagemaker[1], failure_reason(reason), token="An0therTok")
    assert launcher.handler(sqs_event(first, second), None) == {"batchItemFailures": []}
    assert list(cluster.stored("research")) == [job_name(parse_message(first))]


def test_a_redelivered_message_does_not_fail_the_step(
    lambda_env: list[str | None], cluster: FakeKubernetes
) -> None:
    body = message()
    assert launcher.handler(sqs_event(body), None) == {"batchItemFailures": []}
    assert launcher.handler(sqs_event(body), None) == {"batchItemFailures": []}
    assert len(posts(cluster)) == 2
    assert list(cluster.stored("research")) == [job_name(parse_message(body))]


def test_a_server_error_returns_the_message_to_the_queue(
    lambda_env: list[str | None], cluster: FakeKubernetes, sagemaker: tuple[Any, Stubber]
) -> None:
    """The first message meets a 500 and comes back; the others are done (a bad one failed)."""
    cluster.fail_next(500, "InternalError", "etcdserver: request timed out")
    transient, good = message(), message(token="An0therTok", execution="second1run22")
    refused = message(token="Thi3dTok3n", team="nobody")
    expect_failure(
        sagemaker[1],
        f"{NOT_STARTED}: team 'nobody' has no namespace on the training cluster (teams: "
        "ghost, research, vision)",
        token="Thi3dTok3n",
    )
    answer = launcher.handler(sqs_event(transient, good, refused), None)
    assert answer == {"batchItemFailures": [{"itemIdentifier": "m0"}]}
    assert list(cluster.stored("research")) == [job_name(parse_message(good))]
    # Delivered again, it goes through.
    assert launcher.handler(sqs_event(transient), None) == {"batchItemFailures": []}
    assert len(cluster.stored("research")) == 2


def test_the_last_delivery_fails_the_step_instead_of_dead_lettering(
    lambda_env: list[str | None], cluster: FakeKubernetes, sagemaker: tuple[Any, Stubber]
) -> None:
    """SQS would move the message to the dead-letter queue next: its step must not wait."""
    cluster.fail_next(500, "InternalError", "etcdserver: request timed out")
    event = sqs_event(message())
    event["Records"][0]["attributes"]["ApproximateReceiveCount"] = str(MAX_RECEIVES)
    expect_failure(
        sagemaker[1],
        failure_reason(
            f"{NOT_STARTED}: gave up after {MAX_RECEIVES} attempts: creating Job research/"
            f"{job_name(parse_message(message()))}: 500 InternalError: etcdserver: request "
            "timed out"
        ),
    )
    assert launcher.handler(event, None) == {"batchItemFailures": []}
    sagemaker[1].assert_no_pending_responses()


def test_no_answer_from_the_cluster_returns_the_message_to_the_queue(
    lambda_env: list[str | None],
    monkeypatch: pytest.MonkeyPatch,
    cluster: FakeKubernetes,
) -> None:
    with running(CLUSTER_NAMESPACES) as gone:
        url = gone.url
    monkeypatch.setenv("MLOPS_CLUSTER_ENDPOINT", url)  # nothing listens there now
    answer = launcher.handler(sqs_event(message()), None)
    assert answer == {"batchItemFailures": [{"itemIdentifier": "m0"}]}


def test_several_nodes_become_a_pytorch_job_where_the_operator_runs(
    monkeypatch: pytest.MonkeyPatch,
    certificates: Certificates,
    sagemaker: tuple[Any, Stubber],
    s3: Any,
) -> None:
    with running(CLUSTER_NAMESPACES, operator=True, certificates=certificates) as fake:
        configure(monkeypatch, fake, operator=True)
        replace_clients(monkeypatch, launcher, sagemaker[0], s3)
        body = message(nodes="2", gpusPerNode="2")
        assert launcher.handler(sqs_event(body), None) == {"batchItemFailures": []}
        created = fake.stored("research", PYTORCH_JOBS)
        assert list(created) == [job_name(parse_message(body))]
        replicas = created[job_name(parse_message(body))]["spec"]["pytorchReplicaSpecs"]
        assert {k: v["replicas"] for k, v in replicas.items()} == {"Master": 1, "Worker": 1}


def test_the_handler_refuses_an_unknown_event(lambda_env: list[str | None]) -> None:
    with pytest.raises(ValueError, match="neither an SQS batch nor a sweep"):
        launcher.handler({"detail-type": "Scheduled Event"}, None)


def test_the_handler_needs_its_cluster(
    lambda_env: list[str | None], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MLOPS_CLUSTER_ENDPOINT")
    with pytest.raises(RuntimeError, match="MLOPS_CLUSTER_ENDPOINT not set"):
        launcher.handler(sqs_event(message()), None)


# -- the sweep -------------------------------------------------------------------------------


def launch(cluster: FakeKubernetes, **arguments: Any) -> tuple[str, str]:
    """Creates a job through the handler; returns its namespace and name."""
    body = message(**arguments)
    assert launcher.handler(sqs_event(body), None) == {"batchItemFailures": []}
    request = parse_message(body)
    return NAMESPACES[request.team], job_name(request)


def test_the_sweep_fails_the_step_of_a_job_past_its_deadline_once(
    lambda_env: list[str | None], cluster: FakeKubernetes, sagemaker: tuple[Any, Stubber]
) -> None:
    namespace, name = launch(cluster)
    cluster.set_condition(namespace, name, "Failed", "DeadlineExceeded", DEADLINE_MESSAGE)
    expect_failure(
        sagemaker[1], f"Job research/{name} failed: DeadlineExceeded: {DEADLINE_MESSAGE}"
    )
    summary = launcher.handler({"sweep": True}, None)
    assert summary == {
        "checked": 1,
        "reported": [f"research/{name}"],
        "alreadyReported": [],
        "errors": [GHOST_ERROR],  # the namespace not on the cluster
    }
    annotations = cluster.stored(namespace)[name]["metadata"]["annotations"]
    assert annotations[REPORTED_ANNOTATION] == "true"
    assert annotations["mlops.platform/callback-token"] == TOKEN  # the others stay
    # The next sweep sends nothing (the Stubber has no answer queued for it).
    assert launcher.handler({"sweep": True}, None)["reported"] == []


def test_the_sweep_leaves_running_and_succeeded_jobs_alone(
    lambda_env: list[str | None], cluster: FakeKubernetes
) -> None:
    running_job = launch(cluster)
    namespace, done = launch(cluster, token="An0therTok", execution="second1run22")
    cluster.set_condition(namespace, done, "Complete", "", "")
    cluster.set_condition(*running_job, "Suspended", "", "")  # any condition but Failed
    summary = launcher.handler({"sweep": True}, None)
    assert summary["checked"] == 2 and summary["reported"] == []
    assert summary["errors"] == [GHOST_ERROR]
    assert not [path for method, path in cluster.requests if method == "PATCH"]


@pytest.mark.parametrize("code", ["ConflictException", "ResourceNotFound", "ValidationException"])
def test_a_step_no_longer_waiting_counts_as_reported(
    lambda_env: list[str | None],
    cluster: FakeKubernetes,
    sagemaker: tuple[Any, Stubber],
    code: str,
) -> None:
    """The container reported first (its own failure), then died: the job is marked."""
    namespace, name = launch(cluster)
    cluster.set_condition(
        namespace,
        name,
        "Failed",
        "BackoffLimitExceeded",
        "Job has reached the specified backoff limit",
    )
    sagemaker[1].add_client_error(
        "send_pipeline_execution_step_failure",
        service_error_code=code,
        service_message="The step is not waiting for a callback",
        http_status_code=400,
    )
    summary = launcher.handler({"sweep": True}, None)
    assert summary["alreadyReported"] == [f"research/{name}"] and summary["reported"] == []
    assert cluster.stored(namespace)[name]["metadata"]["annotations"][REPORTED_ANNOTATION] == "true"


def test_a_report_that_fails_is_tried_again_by_the_next_sweep(
    lambda_env: list[str | None], cluster: FakeKubernetes, sagemaker: tuple[Any, Stubber]
) -> None:
    namespace, name = launch(cluster)
    cluster.set_condition(namespace, name, "Failed", "DeadlineExceeded", DEADLINE_MESSAGE)
    sagemaker[1].add_client_error(
        "send_pipeline_execution_step_failure",
        service_error_code="ThrottlingException",
        service_message="Rate exceeded",
        http_status_code=400,
    )
    summary = launcher.handler({"sweep": True}, None)
    assert summary["reported"] == [] and len(summary["errors"]) == 2
    assert REPORTED_ANNOTATION not in cluster.stored(namespace)[name]["metadata"]["annotations"]
    expect_failure(
        sagemaker[1], f"Job research/{name} failed: DeadlineExceeded: {DEADLINE_MESSAGE}"
    )
    assert launcher.handler({"sweep": True}, None)["reported"] == [f"research/{name}"]


def test_the_sweep_goes_on_past_a_namespace_it_cannot_list(
    lambda_env: list[str | None], cluster: FakeKubernetes, sagemaker: tuple[Any, Stubber]
) -> None:
    """`ghost-ns` is not on the cluster: an error in the summary, the others swept."""
    namespace, name = launch(cluster, team="vision", gpusPerNode="2")
    cluster.set_condition(namespace, name, "Failed", "DeadlineExceeded", DEADLINE_MESSAGE)
    expect_failure(sagemaker[1], f"Job vision/{name} failed: DeadlineExceeded: {DEADLINE_MESSAGE}")
    summary = launcher.handler({"sweep": True}, None)
    assert summary["reported"] == [f"vision/{name}"]
    assert summary["errors"] == ['Job in ghost-ns: 404 NotFound: namespaces "ghost-ns" not found']


def test_the_sweep_covers_pytorch_jobs_where_the_operator_runs(
    monkeypatch: pytest.MonkeyPatch,
    certificates: Certificates,
    sagemaker: tuple[Any, Stubber],
    s3: Any,
) -> None:
    with running(CLUSTER_NAMESPACES, operator=True, certificates=certificates) as fake:
        configure(monkeypatch, fake, operator=True)
        replace_clients(monkeypatch, launcher, sagemaker[0], s3)
        namespace, name = launch(fake, nodes="2")
        fake.set_condition(
            namespace, name, "Failed", "PyTorchJobFailed", "worker-0 exited with 1", PYTORCH_JOBS
        )
        expect_failure(
            sagemaker[1],
            f"PyTorchJob research/{name} failed: PyTorchJobFailed: worker-0 exited with 1",
        )
        summary = launcher.handler({"sweep": True}, None)
        assert summary["reported"] == [f"research/{name}"]
        assert fake.stored(namespace, JOBS) == {}


# -- the client ------------------------------------------------------------------------------


def presigned_url(token: str) -> urllib.parse.SplitResult:
    encoded = token.removeprefix("k8s-aws-v1.")
    assert "=" not in encoded  # base64url without padding
    text = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)).decode("ascii")
    return urllib.parse.urlsplit(text)


def signed_header(url: urllib.parse.SplitResult) -> bool:
    query = dict(urllib.parse.parse_qsl(url.query))
    return "x-k8s-aws-id" in query["X-Amz-SignedHeaders"].split(";")


def test_the_eks_token_is_a_presigned_get_caller_identity() -> None:
    """As `aws eks get-token` makes it: STS in the region, the cluster header signed, 60 s."""
    token = eks_token_provider(CLUSTER, REGION)()
    assert token.startswith("k8s-aws-v1.")
    url = presigned_url(token)
    query = dict(urllib.parse.parse_qsl(url.query))
    assert (url.scheme, url.netloc, url.path) == ("https", f"sts.{REGION}.amazonaws.com", "/")
    assert query["Action"] == "GetCallerIdentity" and query["Version"] == "2011-06-15"
    assert query["X-Amz-Expires"] == "60"
    assert query["X-Amz-Algorithm"] == "AWS4-HMAC-SHA256"
    assert query["X-Amz-Credential"].startswith("testing/")
    assert query["X-Amz-Credential"].endswith(f"/{REGION}/sts/aws4_request")
    assert set(query["X-Amz-SignedHeaders"].split(";")) == {"host", "x-k8s-aws-id"}
    assert "x-k8s-aws-id" not in query  # a header, not a parameter
    # The cluster's name is in the signature: another cluster, another signature.
    other = dict(urllib.parse.parse_qsl(presigned_url(eks_token_provider("other", REGION)()).query))
    assert other["X-Amz-Signature"] != query["X-Amz-Signature"]


def test_the_client_verifies_the_cluster_certificate(
    cluster: FakeKubernetes, tmp_path: Path
) -> None:
    stranger = make_certificates(tmp_path)  # another CA
    client = KubernetesClient(cluster.url, lambda: "k8s-aws-v1.x", stranger.ca_pem)
    with pytest.raises(KubernetesError) as refused:
        client.list_objects("research", "batch/v1", "Job", "a=b")
    assert refused.value.reason == CERTIFICATE_REJECTED and not refused.value.retryable
    assert cluster.requests == []


def test_the_client_reports_the_apis_status(cluster: FakeKubernetes) -> None:
    client = KubernetesClient(cluster.url, lambda: "k8s-aws-v1.x", cluster.ca_pem)
    manifest = job_manifest(parse_message(message()), "research", False, region=REGION)
    manifest["spec"]["backofLimit"] = 3  # a typo: refused, not dropped
    with pytest.raises(KubernetesError) as refused:
        client.create("research", manifest)
    assert (refused.value.status, refused.value.reason) == (400, "BadRequest")
    assert 'unknown field "spec.backofLimit"' in refused.value.message
    assert not refused.value.retryable
    with pytest.raises(KubernetesError) as unauthorized:
        KubernetesClient(cluster.url, lambda: "", cluster.ca_pem).get(
            "research", "batch/v1", "Job", "x"
        )
    assert unauthorized.value.status == 401 and not unauthorized.value.retryable
    cluster.fail_next(429, "TooManyRequests", "slow down")
    with pytest.raises(KubernetesError) as throttled:
        client.get("research", "batch/v1", "Job", "x")
    assert throttled.value.retryable
    with pytest.raises(KubernetesError) as missing:
        client.get("research", "batch/v1", "Job", "x")
    assert missing.value.status == 404 and missing.value.message == 'jobs.batch "x" not found'


def test_the_launcher_writes_jobs_the_official_models_accept(
    cluster: FakeKubernetes,
) -> None:
    """The fake's validation is not vacuous: a job the models refuse is 422 Invalid."""
    client = KubernetesClient(cluster.url, lambda: "k8s-aws-v1.x", cluster.ca_pem)
    manifest = job_manifest(parse_message(message()), "research", False, region=REGION)
    del manifest["spec"]["template"]["spec"]["containers"][0]["name"]
    with pytest.raises(KubernetesError) as refused:
        client.create("research", manifest)
    assert (refused.value.status, refused.value.reason) == (422, "Invalid")
    assert EXECUTION_ID in refused.value.message
