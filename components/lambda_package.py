"""Lambda functions whose code is modules of the `pipelines` package: the files each zip
holds (the module, what it imports, and the package around them) and the runtime."""

from __future__ import annotations

import json
from pathlib import Path

import pulumi
import pulumi_aws as aws

from components.aws_context import AwsContext
from components.trust_policies import service_trust_policy

ROOT = Path(__file__).resolve().parent.parent
RUNTIME = "python3.12"
# Every such function imports through the package and reads its typed variables.
PACKAGE_BASE = (
    "pipelines/__init__.py",
    "pipelines/environment_variables.py",
    "pipelines/steps/__init__.py",
)


def package_files(*step_modules: str) -> tuple[str, ...]:
    """The zip's files for these `pipelines/steps/` modules (names without `.py`)."""
    return (*PACKAGE_BASE, *(f"pipelines/steps/{module}.py" for module in step_modules))


def code_archive(files: tuple[str, ...]) -> pulumi.AssetArchive:
    return pulumi.AssetArchive({path: pulumi.FileAsset(str(ROOT / path)) for path in files})


def function_logs_and_role(
    function_name: str,
    *,
    logs_resource: str,
    role_resource: str,
    description: str,
    context: AwsContext,
    logs_key_arn: pulumi.Input[str],
    retention_days: int,
    opts: pulumi.ResourceOptions,
) -> tuple[aws.cloudwatch.LogGroup, aws.iam.Role]:
    """A function's log group (encrypted, kept as long as the environment's logs) and the
    role it runs as, both named after the function; the callers grant the role its access."""
    logs = aws.cloudwatch.LogGroup(
        logs_resource,
        name=f"/aws/lambda/{function_name}",
        kms_key_id=logs_key_arn,
        retention_in_days=retention_days,
        opts=opts,
    )
    role = aws.iam.Role(
        role_resource,
        name=function_name,
        assume_role_policy=json.dumps(service_trust_policy(context, "lambda")),
        description=description,
        opts=opts,
    )
    return logs, role
