"""What each workload in the VPC calls, and how it gets there without an internet path.

A mock accepts a job whose VPC has no route to the API it calls; AWS runs it and it fails
(or hangs) at that call. This table is the one place that says, per workload the stack runs
in its VPC, which AWS service endpoints it needs, with the source for each. The network
creates endpoints from it (components/network.py) and rule N7 checks every VPC the stack
creates against it, finding the workloads from the resources themselves.
"""

from __future__ import annotations

from dataclasses import dataclass

# Workloads, as rule N7 recognises them in a stack's resources.
SAGEMAKER_JOBS = "sagemaker-jobs"  # processing and training jobs of the pipelines
DEPLOY_STEP = "deploy-step"  # the deployment pipeline's Deploy and Monitor steps
CLUSTER_NODES = "cluster-nodes"  # EKS nodes of the training cluster
CLUSTER_PODS = "cluster-pods"  # team jobs on the cluster (cluster-backed Train steps)
CLUSTER_LAUNCHER = "cluster-launcher"  # the launcher Lambda, in the VPC
WORKLOADS = (SAGEMAKER_JOBS, DEPLOY_STEP, CLUSTER_NODES, CLUSTER_PODS, CLUSTER_LAUNCHER)

GATEWAY_SERVICES = frozenset({"s3"})
# The SageMaker managed MLflow endpoint is not a `com.amazonaws.` service: AWS names it
# `aws.sagemaker.<region>.experiments` (SageMaker Developer Guide, "Connecting to an MLflow
# tracking server through an Interface VPC Endpoint"), and the sagemaker-mlflow plugin calls
# `https://<region>.experiments.sagemaker.aws`, which that endpoint's private DNS answers.
MLFLOW = "sagemaker.experiments"


def endpoint_service_name(region: str, service: str) -> str:
    """The VPC endpoint service name of a service in this table."""
    if service == MLFLOW:
        return f"aws.sagemaker.{region}.experiments"
    return f"com.amazonaws.{region}.{service}"


def service_of(service_name: str) -> str:
    """The inverse: `com.amazonaws.eu-west-1.sagemaker.api` -> `sagemaker.api`."""
    prefix, _, rest = service_name.partition(".")
    if prefix == "aws" and rest.startswith("sagemaker.") and rest.endswith(".experiments"):
        return MLFLOW
    return service_name.split(".", 3)[-1]


@dataclass(frozen=True)
class Need:
    service: str
    why: str


# Sources, abbreviated below:
# [train-vpc]  SageMaker DG, "Give SageMaker AI training jobs access to resources in your VPC"
#              and "... processing jobs ...": an S3 endpoint for data, CloudWatch endpoints
#              for logs and metrics, and the endpoints of any API the container calls.
# [sm-vpce]    SageMaker DG, "Connect to SageMaker AI within your VPC" (interface endpoints
#              for the API and runtimes).
# [mlflow]     SageMaker DG, "Connecting to an MLflow tracking server through an Interface
#              VPC Endpoint".
# [private-eks] EKS User Guide, "Deploy private clusters with limited internet access"
#              (ec2, ecr.api, ecr.dkr, s3, logs, sts, eks-auth, eks; autoscaling and sts
#              for cluster-autoscaler).
# [ecr-vpce]   ECR User Guide, "Amazon ECR interface VPC endpoints": image layers come from
#              S3, so the gateway endpoint is required.
# [code]       the step code itself: the boto3 clients each module makes.
NEEDS: dict[str, tuple[Need, ...]] = {
    SAGEMAKER_JOBS: (
        Need("s3", "channels, outputs, step code, model artifacts [train-vpc]"),
        Need("sagemaker.api", "registry and pipeline calls from step code [sm-vpce, code]"),
        Need("sagemaker.runtime", "callers in the VPC invoking endpoints [sm-vpce]"),
        Need(MLFLOW, "Preprocess, Train and Evaluate log to the MLflow server [mlflow, code]"),
        Need("sagemaker.featurestore-runtime", "feature ingestion's put_record [code]"),
        Need("ecr.api", "private image metadata [ecr-vpce]"),
        Need("ecr.dkr", "private image layers [ecr-vpce]"),
        Need("sts", "regional STS for SDKs that look up their identity; none in step code"),
        Need("logs", "container logs [train-vpc]"),
        Need("monitoring", "job and custom metrics [train-vpc]"),
        Need("kms", "KMS calls of SDK clients; none in step code, kept as the first wave had"),
    ),
    DEPLOY_STEP: (
        Need("application-autoscaling", "the Deploy step registers scalable targets [code]"),
    ),
    CLUSTER_NODES: (
        Need("ec2", "the EKS AMI sets the node DNS name through EC2 [private-eks]"),
        Need("eks", "nodes join the cluster [private-eks]"),
        Need("eks-auth", "the Pod Identity agent gets pod credentials [private-eks]"),
        Need("sts", "cluster-autoscaler [private-eks]"),
        Need("autoscaling", "cluster-autoscaler resizes node groups [private-eks]"),
        Need("ecr.api", "add-on and job images [private-eks]"),
        Need("ecr.dkr", "add-on and job images [private-eks]"),
        Need("s3", "ECR image layers [private-eks, ecr-vpce]"),
        Need("logs", "node and pod logs [private-eks]"),
    ),
    CLUSTER_PODS: (
        Need("s3", "staged code, channels, model output [code: cluster_run]"),
        Need("sagemaker.api", "callback success/failure of the Train step [code: cluster_run]"),
        Need(MLFLOW, "train.py logs to the MLflow server [mlflow, code: train]"),
    ),
    CLUSTER_LAUNCHER: (
        Need("sagemaker.api", "fails steps it cannot start [code: launcher]"),
        Need("s3", "reads the staged code's manifest [code: launcher]"),
    ),
}

# Calls that need no VPC endpoint, and the path they take instead.
DOCUMENTED_PATHS = {
    "eks-api": (
        "the private Kubernetes API endpoint: EKS places its network interfaces in the "
        "cluster's subnets; the cluster security group admits the caller on 443"
    ),
    "sqs": "the launcher's queue is polled by the Lambda service, not from the VPC",
}


def services_for(workloads: set[str]) -> set[str]:
    return {need.service for workload in workloads for need in NEEDS[workload]}


def interface_services_for(workloads: set[str]) -> tuple[str, ...]:
    """The interface endpoints a VPC running these workloads needs, in a stable order."""
    return tuple(sorted(services_for(workloads) - GATEWAY_SERVICES))
