"""`models.<name>.deployment`: the real-time endpoint an approved version of a model gets.

The deployment pipeline reads these; prod floors (two instances at least, no serverless:
SECURITY.md R4) are checked with the environment tier in stacks/settings.py.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from stacks.settings_base import InvalidKeys, StrictModel, matching

EndpointInstanceType = Annotated[str, matching(r"ml\.[a-z0-9-]+\.[a-z0-9]+", "ml.m5.large")]


class ServerlessSettings(StrictModel):
    """A serverless endpoint: nothing runs (or is billed) while idle. Not in prod: SageMaker
    offers no blue/green guardrails and no instance autoscaling for it."""

    memory_mb: Literal[1024, 2048, 3072, 4096, 5120, 6144] = 2048
    max_concurrency: int = Field(default=5, ge=1, le=200)


class DeploymentSettings(StrictModel):
    instance_type: EndpointInstanceType = "ml.m5.large"
    instance_count: int = Field(default=1, ge=1, le=20)
    # Application Auto Scaling on invocations per instance, between these bounds.
    min_capacity: int = Field(default=1, ge=1, le=20)
    max_capacity: int = Field(default=2, ge=1, le=50)
    target_invocations_per_instance: float = Field(default=100, gt=0)
    # Blue/green: this share of capacity takes traffic first, for canary_wait_seconds, while
    # the rollback alarms watch it; then all traffic shifts.
    canary_percent: int = Field(default=10, ge=1, le=50)
    canary_wait_seconds: int = Field(default=600, ge=60, le=3600)
    data_capture_percent: int = Field(default=100, ge=1, le=100)
    # The latency alarm (also a rollback alarm): model latency p99 above this, in ms.
    latency_p99_ms: int = Field(default=1000, ge=1, le=60000)
    serverless: ServerlessSettings | None = None
    # Closed loop: Model Monitor violations on the endpoint start the training pipeline, at
    # most once per cooldown (instance endpoints: serverless ones capture no data).
    retrain_on_drift: bool = False
    retrain_cooldown_hours: int = Field(default=24, ge=1, le=720)

    @model_validator(mode="after")
    def _capacity_ordered(self) -> DeploymentSettings:
        problems = []
        if self.max_capacity < self.min_capacity:
            problems.append(("max_capacity", f"must be >= min_capacity ({self.min_capacity})"))
        if self.retrain_on_drift and self.serverless is not None:
            problems.append(
                ("retrain_on_drift", "needs an instance endpoint (serverless captures no data)")
            )
        if not self.min_capacity <= self.instance_count <= self.max_capacity:
            problems.append(
                (
                    "instance_count",
                    f"must be within min_capacity..max_capacity "
                    f"({self.min_capacity}..{self.max_capacity})",
                )
            )
        if problems:
            raise InvalidKeys(problems)
        return self
