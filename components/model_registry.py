"""ModelRegistry: a SageMaker model package group per model, readable by the accounts the
stack names (promotion), and the environment's MLflow tracking server: a managed one of its
own with automatic registration into those groups, or another stack's (on-demand
environments must not wait ~30 minutes for a server).
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from components.aws_context import AwsContext
from components.naming import Names
from components.protection import stateful
from components.registry_policies import group_read_policy, mlflow_server_policy
from components.trust_policies import service_trust_policy
from stacks.settings import ProtectionSettings, RegistrySettings

MLFLOW_PREFIX = "mlflow/"
# The output a shared-server stack exports and a `shared` environment reads.
TRACKING_SERVER_OUTPUT = "mlflow_tracking_server_arn"


@dataclass
class ModelRegistryArgs:
    settings: RegistrySettings
    models: list[str]
    protection: ProtectionSettings
    context: AwsContext
    names: Names
    # MLflow artifacts go under mlflow/ in the models bucket, encrypted with the data key.
    artifact_bucket_name: pulumi.Input[str]
    artifact_bucket_arn: pulumi.Input[str]
    data_key_arn: pulumi.Input[str]


class ModelRegistry(pulumi.ComponentResource):
    group_names: dict[str, pulumi.Output[str]]
    tracking_server_arn: pulumi.Output[str]

    def __init__(
        self, name: str, args: ModelRegistryArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("mlops:registry:ModelRegistry", name, None, opts)
        self._name, self._args = name, args
        self.group_names = {model: self._group(model) for model in args.models}
        mlflow = args.settings.mlflow
        if mlflow.mode == "shared":
            assert mlflow.shared_stack is not None  # settings validation guarantees it
            shared = pulumi.StackReference(
                f"{name}-mlflow-stack",
                mlflow.shared_stack,
                opts=pulumi.ResourceOptions(parent=self),
            )
            self.tracking_server_arn = shared.require_output(TRACKING_SERVER_OUTPUT).apply(str)
        else:
            self.tracking_server_arn = self._tracking_server()
        self.register_outputs(
            {"group_names": self.group_names, "tracking_server_arn": self.tracking_server_arn}
        )

    def _group(self, model: str) -> pulumi.Output[str]:
        args = self._args
        group = aws.sagemaker.ModelPackageGroup(
            f"{self._name}-{model}-group",
            model_package_group_name=args.names.model_package_group(model),
            model_package_group_description=f"Versions of {model} in {args.names.stack}",
            opts=stateful(self, args.protection),
        )
        readers = args.settings.reader_account_ids
        if readers:
            aws.sagemaker.ModelPackageGroupPolicy(
                f"{self._name}-{model}-group-policy",
                model_package_group_name=group.model_package_group_name,
                resource_policy=group.arn.apply(
                    lambda arn: json.dumps(group_read_policy(arn, readers, args.context.partition))
                ),
                opts=pulumi.ResourceOptions(parent=self),
            )
        return group.model_package_group_name

    def _tracking_server(self) -> pulumi.Output[str]:
        args, name = self._args, self._name
        mlflow = args.settings.mlflow
        role = aws.iam.Role(
            f"{name}-mlflow-role",
            assume_role_policy=json.dumps(service_trust_policy(args.context, "sagemaker")),
            description="The MLflow tracking server: its artifacts",
            opts=pulumi.ResourceOptions(parent=self),
        )
        aws.iam.RolePolicy(
            f"{name}-mlflow-access",
            role=role.id,
            policy=pulumi.Output.all(args.artifact_bucket_arn, args.data_key_arn).apply(
                lambda arns: json.dumps(mlflow_server_policy(arns[0], MLFLOW_PREFIX, arns[1]))
            ),
            opts=pulumi.ResourceOptions(parent=self),
        )
        server = aws.sagemaker.MlflowTrackingServer(
            f"{name}-mlflow",
            tracking_server_name=args.names.tracking_server(),
            role_arn=role.arn,
            artifact_store_uri=pulumi.Output.concat(
                "s3://", args.artifact_bucket_name, "/", MLFLOW_PREFIX
            ),
            tracking_server_size=mlflow.size,
            mlflow_version=mlflow.mlflow_version,
            weekly_maintenance_window_start=mlflow.weekly_maintenance_window,
            # Off: the Register step creates the model packages (with the gate's metrics and
            # the approval status); AWS's sync would add a second group per model.
            automatic_model_registration=False,
            opts=stateful(self, args.protection),
        )
        return server.arn
