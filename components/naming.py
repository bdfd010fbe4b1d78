"""Physical names of resources whose names users type or that must be globally unique."""

from __future__ import annotations

import re
from dataclasses import dataclass

from components.aws_context import AwsContext

PREFIX = "mlops"
MAX_BUCKET_NAME = 63
MAX_ROLE_NAME = 64
MAX_NAMESPACE_NAME = 63  # a Kubernetes DNS label
MAX_FUNCTION_NAME = 64  # Lambda
MAX_EVENT_RULE_NAME = 64  # EventBridge
MAX_FEATURE_GROUP_NAME = 64
MAX_MODEL_PACKAGE_GROUP_NAME = 63
MAX_QUEUE_NAME = 80  # SQS


class InvalidName(ValueError):
    """A derived physical name breaks AWS's rules (usually: the stack name is too long)."""


@dataclass(frozen=True)
class Names:
    """Names for one environment; `stack` is the Pulumi stack name (dev, prod, dev-alice)."""

    stack: str
    context: AwsContext

    def __post_init__(self) -> None:
        # Bucket, role and repository names allow only this; check once, here.
        if not re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)*", self.stack):
            raise InvalidName(
                f"stack name {self.stack!r} must be lowercase letters and digits joined by '-'"
            )

    @property
    def base(self) -> str:
        return f"{PREFIX}-{self.stack}"

    def _limited(self, name: str, what: str, limit: int) -> str:
        if len(name) > limit:
            raise InvalidName(
                f"{what} {name!r} is {len(name)} characters, over the limit of {limit}; "
                f"use a shorter stack name than {self.stack!r}"
            )
        return name

    def bucket(self, purpose: str) -> str:
        # Account and region make the name globally unique and say where the bucket lives.
        name = f"{self.base}-{purpose}-{self.context.account_id}-{self.context.region}"
        return self._limited(name, "bucket name", MAX_BUCKET_NAME)

    def team_role(self, team: str) -> str:
        return self._limited(f"{self.base}-team-{team}", "IAM role name", MAX_ROLE_NAME)

    def shared_namespace(self, team: str) -> str:
        """A team's namespace on another stack's cluster, where the plain name is taken."""
        return self._limited(f"{team}-{self.stack}", "namespace", MAX_NAMESPACE_NAME)

    def repository(self, image: str) -> str:
        return f"{self.base}/{image}"

    def key_alias(self, purpose: str) -> str:
        return f"alias/{self.base}/{purpose}"

    def log_group(self, purpose: str) -> str:
        return f"/{PREFIX}/{self.stack}/{purpose}"

    def model_package_group(self, model: str) -> str:
        """`mlops-<stack>-<model>`; with model "" the prefix every group of the stack shares."""
        name = f"{self.base}-{model}"
        return self._limited(name, "model package group name", MAX_MODEL_PACKAGE_GROUP_NAME)

    def function(self, purpose: str) -> str:
        return self._limited(f"{self.base}-{purpose}", "Lambda name", MAX_FUNCTION_NAME)

    def queue(self, purpose: str) -> str:
        return self._limited(f"{self.base}-{purpose}", "SQS queue name", MAX_QUEUE_NAME)

    def queue_url(self, purpose: str) -> str:
        """The URL SQS gives the queue `queue(purpose)`: known before it exists."""
        suffix = "amazonaws.com.cn" if self.context.partition == "aws-cn" else "amazonaws.com"
        region, account = self.context.region, self.context.account_id
        return f"https://sqs.{region}.{suffix}/{account}/{self.queue(purpose)}"

    def alert_topic(self) -> str:
        return f"{self.base}-alerts"

    def alert_topic_arn(self) -> str:
        """The alert topic's ARN, fixed by its name: components created before Monitoring
        (which creates the topic) point their alarms at it."""
        return self.context.arn("sns", self.alert_topic())

    def event_rule(self, purpose: str) -> str:
        return self._limited(f"{self.base}-{purpose}", "EventBridge rule name", MAX_EVENT_RULE_NAME)

    def tracking_server(self) -> str:
        return f"{self.base}-mlflow"

    def feature_group(self, model: str) -> str:
        name = f"{self.base}-{model}-features"
        return self._limited(name, "feature group name", MAX_FEATURE_GROUP_NAME)
