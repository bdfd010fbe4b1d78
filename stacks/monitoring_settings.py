"""The `monitoring` stack-file key: who hears about the environment's alerts."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, model_validator

from stacks.settings_base import InvalidKeys, StrictModel

# What each SNS protocol's endpoint looks like.
ENDPOINT_PATTERNS = {
    "email": (r"[^@\s]+@[^@\s]+\.[^@\s]+", "name@example.com"),
    "https": (r"https://[^\s]+", "https://hooks.example.com/alerts"),
    "sqs": (r"arn:aws[a-z-]*:sqs:[a-z0-9-]+:\d{12}:[\w-]+", "an SQS queue ARN"),
    "lambda": (r"arn:aws[a-z-]*:lambda:[a-z0-9-]+:\d{12}:function:[\w-]+", "a Lambda ARN"),
}


class AlertSubscription(StrictModel):
    """One subscriber of the alert topic (pipeline failures, alarms, budget alerts)."""

    protocol: Literal["email", "https", "sqs", "lambda"]
    endpoint: str

    @model_validator(mode="after")
    def _endpoint_fits_protocol(self) -> AlertSubscription:
        pattern, looks_like = ENDPOINT_PATTERNS[self.protocol]
        if not re.fullmatch(pattern, self.endpoint):
            raise InvalidKeys(
                [("endpoint", f"a {self.protocol} endpoint must look like {looks_like}")]
            )
        return self


class MonitoringSettings(StrictModel):
    alert_subscriptions: list[AlertSubscription] = Field(default_factory=list, max_length=20)
