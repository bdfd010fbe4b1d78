"""Encryption: the environment's customer-managed KMS keys.

Two keys so that log readers never get to decrypt data and vice versa: `data` (datasets,
models, images, feature store, topics, queues, volumes) and `logs` (CloudWatch log groups).
The deployer and the stack's key administrators administer both.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_aws as aws

from components.aws_context import AwsContext
from components.key_policies import KeyOwners, data_key_policy, logs_key_policy
from components.naming import Names
from components.protection import stateful
from stacks.settings import EncryptionSettings, ProtectionSettings

KEYS: dict[str, tuple[str, Callable[[AwsContext, KeyOwners], dict[str, Any]]]] = {
    "data": ("Datasets, models, images and other ML data", data_key_policy),
    "logs": ("CloudWatch log groups", logs_key_policy),
}


@dataclass
class EncryptionArgs:
    settings: EncryptionSettings
    protection: ProtectionSettings
    context: AwsContext
    names: Names
    # The deployer's role first, then `encryption.key_administrators`.
    administrators: tuple[str, ...]


class Encryption(pulumi.ComponentResource):
    data_key_arn: pulumi.Output[str]
    logs_key_arn: pulumi.Output[str]

    def __init__(
        self, name: str, args: EncryptionArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("mlops:encryption:Encryption", name, None, opts)
        owners = KeyOwners(administrators=args.administrators, base=args.names.base)
        arns = {}
        for purpose, (description, policy) in KEYS.items():
            key = aws.kms.Key(
                f"{name}-{purpose}-key",
                description=f"{args.names.base}: {description}",
                enable_key_rotation=True,
                rotation_period_in_days=args.settings.rotation_period_days,
                deletion_window_in_days=args.settings.deletion_window_days,
                policy=json.dumps(policy(args.context, owners)),
                bypass_policy_lockout_safety_check=False,
                opts=stateful(self, args.protection),
            )
            aws.kms.Alias(
                f"{name}-{purpose}-alias",
                name=args.names.key_alias(purpose),
                target_key_id=key.key_id,
                opts=pulumi.ResourceOptions(parent=self),
            )
            arns[purpose] = key.arn
        self.data_key_arn = arns["data"]
        self.logs_key_arn = arns["logs"]
        self.register_outputs(
            {"data_key_arn": self.data_key_arn, "logs_key_arn": self.logs_key_arn}
        )
