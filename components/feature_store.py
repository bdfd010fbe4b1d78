"""FeatureStore: a SageMaker feature group per model, from its spec in pipelines/features.py
(the same spec Preprocess ingests with): online store encrypted with the data key and with
the settings' TTL, offline store under feature-store/ in the datasets bucket (data key, Glue
table created by SageMaker), and a role scoped to those.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_aws as aws

from components.aws_context import AwsContext
from components.naming import Names
from components.pipeline_policies import feature_store_policy
from components.protection import stateful
from components.trust_policies import service_trust_policy
from pipelines.features import FEATURE_SPECS, FeatureSpec, replacement_fingerprint
from stacks.settings import FeatureStoreSettings, ProtectionSettings

OFFLINE_PREFIX = "feature-store/"


@dataclass
class FeatureStoreArgs:
    settings: FeatureStoreSettings
    models: list[str]
    protection: ProtectionSettings
    context: AwsContext
    names: Names
    data_key_arn: pulumi.Input[str]
    offline_bucket_name: pulumi.Input[str]
    offline_bucket_arn: pulumi.Input[str]


class FeatureStore(pulumi.ComponentResource):
    group_names: dict[str, pulumi.Output[str]]

    def __init__(
        self, name: str, args: FeatureStoreArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("mlops:features:FeatureStore", name, None, opts)
        self._name, self._args = name, args
        role = self._role()
        # A replacement is allowed only where the settings say so, whatever the protection.
        protection = (
            args.protection.model_copy(update={"protect": False})
            if args.settings.allow_replacement
            else args.protection
        )
        self.group_names = {
            model: self._group(model, FEATURE_SPECS[model], role, protection)
            for model in args.models
            if model in FEATURE_SPECS
        }
        self.register_outputs({"group_names": self.group_names})

    def _role(self) -> aws.iam.Role:
        args, name = self._args, self._name
        role = aws.iam.Role(
            f"{name}-role",
            assume_role_policy=json.dumps(service_trust_policy(args.context, "sagemaker")),
            description="Feature Store writes the offline store and its Glue table",
            opts=pulumi.ResourceOptions(parent=self),
        )
        aws.iam.RolePolicy(
            f"{name}-access",
            role=role.id,
            policy=pulumi.Output.all(args.offline_bucket_arn, args.data_key_arn).apply(
                lambda v: json.dumps(feature_store_policy(args.context, v[0], OFFLINE_PREFIX, v[1]))
            ),
            opts=pulumi.ResourceOptions(parent=self),
        )
        return role

    def _group(
        self,
        model: str,
        spec: FeatureSpec,
        role: aws.iam.Role,
        protection: ProtectionSettings,
    ) -> pulumi.Output[str]:
        args = self._args
        ttl = args.settings.online_ttl_hours
        online: Any = {
            "enable_online_store": True,
            "security_config": {"kms_key_id": args.data_key_arn},
        }
        if ttl is not None:
            online["ttl_duration"] = {"unit": "Hours", "value": ttl}
        group = aws.sagemaker.FeatureGroup(
            f"{self._name}-{model}",
            feature_group_name=args.names.feature_group(model),
            description=f"Features of {model} (pipelines/features.py)",
            record_identifier_feature_name=spec.record_identifier,
            event_time_feature_name=spec.event_time,
            feature_definitions=[
                {"feature_name": d["FeatureName"], "feature_type": d["FeatureType"]}
                for d in spec.aws_feature_definitions()
            ],
            online_store_config=online,
            offline_store_config={
                "s3_storage_config": {
                    "s3_uri": pulumi.Output.concat(
                        "s3://", args.offline_bucket_name, "/", OFFLINE_PREFIX
                    ),
                    "kms_key_id": args.data_key_arn,
                },
                "disable_glue_table_creation": False,
            },
            role_arn=role.arn,
            tags={"spec-fingerprint": replacement_fingerprint(spec)[:16]},
            opts=stateful(self, protection),
        )
        name: pulumi.Output[str] = group.feature_group_name
        return name
