"""`models.<name>.training.backend` / `.cluster`: where a model's Train step runs.

`sagemaker` (default): a SageMaker training job on managed instances, per run.
`cluster`: a Kubernetes Job in one team's namespace on the environment's EKS GPU cluster (its
own or a shared one), started by the launcher Lambda from the pipeline's callback message,
queued by the scheduler and bounded by the team's quota. The same train.py runs either way.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

from pydantic import Field

from stacks.cluster_settings import (
    GPU_ACCELERATORS,
    ClusterSettings,
    CpuQuantity,
    MemoryQuantity,
    TeamName,
)
from stacks.gpu_instances import memory_mib, millicpu
from stacks.settings_base import StrictModel, matching

if TYPE_CHECKING:
    from stacks.settings import Settings

Accelerator = Annotated[
    str, matching("|".join(sorted(set(GPU_ACCELERATORS.values()))), "nvidia-a10g (a GPU label)")
]
MAX_GPUS_PER_NODE = 8


class ClusterTrainingSettings(StrictModel):
    """The Kubernetes Job a cluster-backed Train step runs as."""

    team: TeamName
    gpus_per_node: int = Field(default=1, ge=1, le=MAX_GPUS_PER_NODE)
    # The GPU the job needs (`k8s.amazonaws.com/accelerator` label); None: any GPU pool.
    accelerator: Accelerator | None = None
    cpu: CpuQuantity = "4"
    memory: MemoryQuantity = "16Gi"


def cluster_training_problems(settings: Settings) -> list[tuple[str, str]]:
    """Cross-key checks of cluster-backed training against the environment's cluster."""
    problems = []
    cluster = settings.cluster
    pools = {name: pool.accelerator for name, pool in cluster.gpu_pools.items()}
    for model_name, model in settings.models.items():
        training = model.training
        key = f"models.{model_name}.training"
        if training.backend != "cluster":
            continue
        assert training.cluster is not None  # TrainingSettings ensures it
        job = training.cluster
        if cluster.mode == "disabled":
            problems.append((f"{key}.backend", "'cluster' needs cluster.mode managed or shared"))
            continue
        team = cluster.teams.get(job.team)
        if team is None:
            known = ", ".join(sorted(cluster.teams)) or "none"
            problems.append((f"{key}.cluster.team", f"no team {job.team!r} (teams: {known})"))
            continue
        gpus = job.gpus_per_node * training.instance_count
        if gpus > team.gpus:
            problems.append(
                (
                    f"{key}.cluster.gpus_per_node",
                    f"{job.gpus_per_node} x instance_count {training.instance_count} = {gpus} "
                    f"GPUs is over team {job.team}'s quota of {team.gpus}",
                )
            )
        if cluster.mode == "managed" and job.accelerator not in (None, *pools.values()):
            offered = ", ".join(f"{p}: {a}" for p, a in sorted(pools.items())) or "none"
            problems.append(
                (
                    f"{key}.cluster.accelerator",
                    f"no GPU pool offers {job.accelerator} (pools: {offered})",
                )
            )
        if cluster.mode == "managed":
            problems.extend(_fits_some_pool(key, job, cluster))
        if training.instance_count > 1 and not cluster.training_operator:
            problems.append(
                (
                    f"{key}.instance_count",
                    "more than one node needs cluster.training_operator (a PyTorchJob)",
                )
            )
    return problems


def _fits_some_pool(
    key: str, job: ClusterTrainingSettings, cluster: ClusterSettings
) -> list[tuple[str, str]]:
    """A job whose pod fits no node of the pools it may use waits for a node the autoscaler
    never adds. The pod asks for the train container's resources (the init container runs
    before it and asks for less, so the pod's request is the train container's)."""
    pools = {
        name: pool
        for name, pool in cluster.gpu_pools.items()
        if job.accelerator in (None, pool.accelerator)
    }
    if not pools:
        return []  # reported as an unknown accelerator above
    cpu, memory = millicpu(job.cpu), memory_mib(job.memory)
    for pool in pools.values():
        node = pool.node
        if (
            job.gpus_per_node <= node.gpus
            and cpu <= node.allocatable_millicpu
            and memory <= node.allocatable_memory_mib
        ):
            return []
    offered = "; ".join(f"{name}: {pool.node.describe()}" for name, pool in sorted(pools.items()))
    return [
        (
            f"{key}.cluster",
            f"a pod of {job.gpus_per_node} GPU, {job.cpu} CPU and {job.memory} fits no node of "
            f"the pools it may run on ({offered}); ask for less or add a larger pool",
        )
    ]
