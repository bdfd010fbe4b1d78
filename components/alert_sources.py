"""What publishes to an environment's alert topic, collected from the components that create
it, so the topic's policy names each publisher's exact ARN: on-demand copies live in the same
account under longer names (`mlops-dev-alice-*` matches `mlops-dev-*`), and a prefix would
let one environment's alarms page another's team."""

from __future__ import annotations

from dataclasses import dataclass, field

import pulumi


@dataclass
class AlertSources:
    rules: list[pulumi.Output[str]] = field(default_factory=list)  # EventBridge rule ARNs
    alarms: list[pulumi.Output[str]] = field(default_factory=list)  # CloudWatch alarm ARNs
    workspaces: list[pulumi.Output[str]] = field(default_factory=list)  # Prometheus (aps)
    budgets: list[pulumi.Output[str]] = field(default_factory=list)  # AWS Budgets

    def add(self, other: AlertSources) -> None:
        self.rules += other.rules
        self.alarms += other.alarms
        self.workspaces += other.workspaces
        self.budgets += other.budgets
