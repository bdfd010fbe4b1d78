"""`models.<name>.training.backend: cluster`: each bad combination is refused at its key."""

from __future__ import annotations

from typing import Any

import pytest

from stacks.loader import settings_from_config
from tests.conftest import stack_config
from tests.test_cluster_settings import problems_of

P = "mlops-platform:"


def with_cluster_training(stack: str = "dev", **training: Any) -> dict[str, Any]:
    config = stack_config(stack)
    digits = config[P + "models"]["digits"]["training"]
    digits.update({"backend": "cluster", "cluster": {"team": "research"}, **training})
    return config


def test_dev_digits_can_train_on_the_research_namespace() -> None:
    config = with_cluster_training(cluster={"team": "research", "accelerator": "nvidia-a10g"})
    settings = settings_from_config(config, source="dev")
    job = settings.models["digits"].training.cluster
    assert job is not None
    assert (job.team, job.gpus_per_node, job.accelerator, job.cpu, job.memory) == (
        "research",
        1,
        "nvidia-a10g",
        "4",
        "16Gi",
    )


@pytest.mark.parametrize(
    ("training", "change", "expected"),
    [
        (
            {"cluster": None},
            None,
            "models.digits.training.cluster: is required when backend is 'cluster'",
        ),
        (
            {"backend": "sagemaker"},
            None,
            "models.digits.training.cluster: is only used when backend is 'cluster'",
        ),
        (
            {"cluster": {"team": "vision"}},
            None,
            "models.digits.training.cluster.team: no team 'vision' (teams: research)",
        ),
        (
            {"cluster": {"team": "research", "gpus_per_node": 8}},
            None,
            "models.digits.training.cluster.gpus_per_node: 8 x instance_count 1 = 8 GPUs is "
            "over team research's quota of 4",
        ),
        (
            {"cluster": {"team": "research", "accelerator": "nvidia-h100"}},
            None,
            "models.digits.training.cluster.accelerator: no GPU pool offers nvidia-h100 "
            "(pools: a10g: nvidia-a10g)",
        ),
        (
            {"cluster": {"team": "research", "accelerator": "nvidia-x9"}},
            None,
            "models.digits.training.cluster.accelerator: must look like nvidia-a10g",
        ),
        (
            {"instance_count": 2},
            None,
            "models.digits.training.instance_count: more than one node needs "
            "cluster.training_operator (a PyTorchJob)",
        ),
        (
            {},
            {"mode": "disabled"},
            "models.digits.training.backend: 'cluster' needs cluster.mode managed or shared",
        ),
    ],
)
def test_bad_cluster_training_is_reported_at_its_key(
    training: dict[str, Any], change: dict[str, Any] | None, expected: str
) -> None:
    config = with_cluster_training(**training)
    if change is not None:
        config[P + "cluster"] = change
    assert f"{P}{expected}" in " | ".join(problems_of("dev", config))


def test_several_nodes_with_the_training_operator() -> None:
    config = with_cluster_training(instance_count=2)
    config[P + "cluster"]["training_operator"] = True
    settings = settings_from_config(config, source="dev")
    assert settings.models["digits"].training.instance_count == 2


def test_a_shared_cluster_accepts_any_accelerator_it_cannot_see() -> None:
    """The base stack's pools are not in this stack's settings: the launcher checks."""
    config = with_cluster_training(cluster={"team": "research", "accelerator": "nvidia-h100"})
    config[P + "cluster"] = {
        "mode": "shared",
        "shared_stack": "acme/mlops-platform/dev",
        "teams": {"research": {"gpus": 4}},
    }
    settings = settings_from_config(config, source="dev")
    assert settings.models["digits"].training.cluster is not None


def test_a_schedule_may_not_set_the_instance_type_of_a_cluster_backed_pipeline() -> None:
    config = with_cluster_training()
    config[P + "models"]["digits"]["schedule"]["parameters"] = {"TrainingInstanceType": "x"}
    assert (
        f"{P}models.digits.schedule.parameters.TrainingInstanceType: a cluster-backed pipeline "
        "has no such parameter (set models.digits.training.cluster.accelerator to choose the GPU)"
    ) in problems_of("dev", config)
