"""CostBudget: a monthly AWS Budget for one environment, alerting by e-mail and through the
environment's alert topic.

The budget filters on the `environment` cost allocation tag every resource carries, so
several environments can share an account and still each have their own guardrail
(activate the tag once per payer account under Billing > Cost allocation tags).
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from components.alert_sources import AlertSources
from stacks.settings import BudgetSettings


@dataclass
class CostBudgetArgs:
    settings: BudgetSettings
    stack: str
    alert_topic_arn: pulumi.Input[str]


class CostBudget(pulumi.ComponentResource):
    def __init__(
        self, name: str, args: CostBudgetArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("mlops:cost:CostBudget", name, None, opts)
        settings = args.settings
        alerts = [("ACTUAL", percent) for percent in settings.actual_alert_percents]
        if settings.forecast_alert_percent is not None:
            alerts.append(("FORECASTED", settings.forecast_alert_percent))
        budget = aws.budgets.Budget(
            f"{name}-monthly",
            name=f"mlops-{args.stack}-monthly",
            budget_type="COST",
            time_unit="MONTHLY",
            limit_amount=f"{settings.monthly_limit_usd:.2f}",
            limit_unit="USD",
            cost_filters=[{"name": "TagKeyValue", "values": [f"user:environment${args.stack}"]}],
            notifications=[
                {
                    "notification_type": kind,
                    "comparison_operator": "GREATER_THAN",
                    "threshold": percent,
                    "threshold_type": "PERCENTAGE",
                    "subscriber_email_addresses": settings.alert_emails,
                    "subscriber_sns_topic_arns": [args.alert_topic_arn],
                }
                for kind, percent in alerts
            ],
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.alert_sources = AlertSources(budgets=[budget.arn])
        self.register_outputs({})
