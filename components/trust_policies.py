"""Trust policies for roles that AWS services assume (pure data)."""

from __future__ import annotations

from typing import Any

from components.aws_context import AwsContext


def service_trust_policy(ctx: AwsContext, service: str) -> dict[str, Any]:
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Service": ctx.service_principal(service)},
                "Action": "sts:AssumeRole",
                "Condition": {"StringEquals": {"aws:SourceAccount": ctx.account_id}},
            }
        ],
    }
