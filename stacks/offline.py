"""Offline evaluation of a stack: run the real Pulumi program with no engine, CLI or AWS.

`evaluate_stack("prod")` loads `stacks/Pulumi.prod.yaml`, hands its values to the program as
config exactly as the engine would (scalars as text, objects as JSON), runs `__main__.py`
under `pulumi.runtime.set_mocks`, and returns a `StackRecording` of every resource the
program registered:

    recording = evaluate_stack("prod")
    recording.of_type("aws:s3/bucket:Bucket")          # all resources of a type token
    recording.named("mlops-encryption-data-key")        # one resource by logical name
    recording.children(recording.named("mlops-network"))  # direct children of a component
    recording.count_by_type()                            # Counter of type -> count
    key = recording.named("mlops-encryption-data-key")
    key.inputs["enableKeyRotation"], key.protect, key.retain_on_delete, key.parent_name

Each `RecordedResource` holds the type token, logical name, URN, inputs (camelCase wire
names, secrets unwrapped), the fake outputs the mocks returned, the parent's URN, the
provider reference, property dependencies (input -> URNs of the resources feeding it),
and the options the engine would see: protect, retain_on_delete,
depends_on (URNs), delete_before_replace, ignore_changes, aliases. `recording.outputs` holds
the resolved stack outputs, `recording.settings` the validated settings.

`evaluate_config(stack, config)` does the same for a config map you build (tests of
derived or broken configs). The mocks fill computed outputs (ids, ARNs, URLs) with
deterministic fakes in the stack's account and region, and answer the invokes the program
makes; an invoke they do not know fails loudly instead of returning nothing.
"""

from __future__ import annotations

import hashlib
import json
import runpy
import uuid
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pulumi
import pulumi.runtime
from pulumi.runtime import mocks, rpc
from pulumi.runtime import settings as pulumi_settings
from pulumi.runtime.stack import run_pulumi_func
from pulumi.runtime.sync_await import _sync_await

from components.aws_context import AwsContext
from components.model_registry import TRACKING_SERVER_OUTPUT
from components.network import PRIVATE_SUBNETS_OUTPUT, VPC_ID_OUTPUT
from components.shared_cluster import (
    CLUSTER_CA_OUTPUT,
    CLUSTER_ENDPOINT_OUTPUT,
    CLUSTER_NAME_OUTPUT,
    CLUSTER_SECURITY_GROUP_OUTPUT,
)
from stacks.loader import read_stack_config, settings_from_config, shown, stack_file
from stacks.settings import PROJECT, Settings

PROGRAM = Path(__file__).resolve().parent.parent / "__main__.py"
GET_AVAILABILITY_ZONES = "aws:index/getAvailabilityZones:getAvailabilityZones"
GET_ADDON_VERSION = "aws:eks/getAddonVersion:getAddonVersion"
# What the mocks answer for "the newest version of an EKS add-on".
FAKE_ADDON_VERSION = "v1.0.0-eksbuild.1"


@dataclass(frozen=True)
class RecordedResource:
    type: str
    name: str
    urn: str
    inputs: dict[str, Any]
    outputs: dict[str, Any]
    parent: str | None
    provider: str | None
    # input property -> URNs of the resources whose outputs feed it
    property_dependencies: dict[str, tuple[str, ...]]
    custom: bool
    protect: bool
    retain_on_delete: bool
    depends_on: tuple[str, ...]
    delete_before_replace: bool
    ignore_changes: tuple[str, ...]
    aliases: tuple[str, ...]

    @property
    def parent_name(self) -> str | None:
        return self.parent.rsplit("::", 1)[-1] if self.parent else None


@dataclass
class StackRecording:
    stack: str
    settings: Settings
    resources: list[RecordedResource]
    outputs: dict[str, Any] = field(default_factory=dict)

    def of_type(self, resource_type: str) -> list[RecordedResource]:
        return [r for r in self.resources if r.type == resource_type]

    def named(self, name: str) -> RecordedResource:
        found = [r for r in self.resources if r.name == name]
        if len(found) != 1:
            raise KeyError(f"{len(found)} resources named {name!r} in stack {self.stack!r}")
        return found[0]

    def children(self, parent: RecordedResource) -> list[RecordedResource]:
        return [r for r in self.resources if r.parent == parent.urn]

    def descendants(self, parent: RecordedResource) -> list[RecordedResource]:
        found = []
        for child in self.children(parent):
            found.append(child)
            found.extend(self.descendants(child))
        return found

    def count_by_type(self) -> Counter[str]:
        """Cloud resources per type token."""
        return Counter(r.type for r in self.custom_resources)

    @property
    def custom_resources(self) -> list[RecordedResource]:
        """Cloud resources: no components, no providers."""
        return [r for r in self.resources if r.custom and not r.type.startswith("pulumi:")]


FAKE_CA_DATA = "LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0tCg=="  # base64 of a PEM header


class UnmockedInvoke(Exception):
    pass


class _FakeAws(mocks.Mocks):
    """Plays AWS: computed outputs for resources and answers for invokes."""

    def __init__(self, context: AwsContext) -> None:
        self.context = context

    def new_resource(self, args: mocks.MockResourceArgs) -> tuple[str, dict[str, Any]]:
        resource_id = _fake_id(args.typ, args.name)
        return resource_id, {**args.inputs, **_computed_outputs(self.context, args, resource_id)}

    def call(self, args: mocks.MockCallArgs) -> tuple[dict[str, Any], list[tuple[str, str]]]:
        if args.token == GET_AVAILABILITY_ZONES:
            region = self.context.region
            letters = "abcdef"
            return {
                "id": region,
                "names": [f"{region}{c}" for c in letters],
                "zoneIds": [f"{region[:3]}{region[-1]}-az{i + 1}" for i in range(len(letters))],
            }, []
        if args.token == GET_ADDON_VERSION:
            addon = args.args["addonName"]
            return {"id": addon, **args.args, "version": FAKE_ADDON_VERSION}, []
        raise UnmockedInvoke(f"the offline harness has no answer for invoke {args.token}")


def _fake_id(resource_type: str, name: str) -> str:
    digest = hashlib.sha256(f"{resource_type}/{name}".encode()).hexdigest()[:17]
    prefixes = {
        "aws:ec2/vpc:Vpc": "vpc-",
        "aws:ec2/subnet:Subnet": "subnet-",
        "aws:ec2/securityGroup:SecurityGroup": "sg-",
        "aws:ec2/defaultSecurityGroup:DefaultSecurityGroup": "sg-",
        "aws:ec2/routeTable:RouteTable": "rtb-",
        "aws:ec2/vpcEndpoint:VpcEndpoint": "vpce-",
        "aws:ec2/internetGateway:InternetGateway": "igw-",
        "aws:ec2/natGateway:NatGateway": "nat-",
        "aws:ec2/eip:Eip": "eipalloc-",
        "aws:ec2/flowLog:FlowLog": "fl-",
        "aws:ec2/launchTemplate:LaunchTemplate": "lt-",
        "aws:amp/workspace:Workspace": "ws-",
    }
    return prefixes.get(resource_type, f"{name}-") + digest


def _computed_outputs(
    ctx: AwsContext, args: mocks.MockResourceArgs, resource_id: str
) -> dict[str, Any]:
    """The outputs AWS would compute that the program reads."""
    inputs, resource_type = args.inputs, args.typ
    service = resource_type.split(":")[1].split("/")[0] if resource_type.startswith("aws:") else ""
    if resource_type == "aws:s3/bucket:Bucket":
        name = inputs.get("bucket", args.name)
        return {"bucket": name, "arn": f"arn:{ctx.partition}:s3:::{name}"}
    if resource_type == "aws:kms/key:Key":
        key_id = str(uuid.uuid5(uuid.NAMESPACE_URL, args.name))
        return {"keyId": key_id, "arn": ctx.arn("kms", f"key/{key_id}")}
    if resource_type == "aws:ecr/repository:Repository":
        name = inputs["name"]
        return {
            "arn": ctx.arn("ecr", f"repository/{name}"),
            "registryId": ctx.account_id,
            "repositoryUrl": f"{ctx.account_id}.dkr.ecr.{ctx.region}.amazonaws.com/{name}",
        }
    if resource_type == "aws:cloudwatch/logGroup:LogGroup":
        return {"arn": ctx.arn("logs", f"log-group:{inputs.get('name', args.name)}")}
    if resource_type == "aws:iam/role:Role":
        name = inputs.get("name") or f"{args.name}-{resource_id[-7:]}"
        return {"name": name, "arn": ctx.arn("iam", f"role/{name}", regional=False)}
    if resource_type == "aws:sagemaker/mlflowTrackingServer:MlflowTrackingServer":
        name = inputs["trackingServerName"]
        return {"arn": ctx.arn("sagemaker", f"mlflow-tracking-server/{name}")}
    if resource_type == "aws:sagemaker/featureGroup:FeatureGroup":
        name = inputs["featureGroupName"]
        return {"arn": ctx.arn("sagemaker", f"feature-group/{name}")}
    if resource_type == "aws:sagemaker/modelPackageGroup:ModelPackageGroup":
        name = inputs["modelPackageGroupName"]
        return {"arn": ctx.arn("sagemaker", f"model-package-group/{name}")}
    if resource_type == "aws:eks/cluster:Cluster":
        name = inputs["name"]
        return {
            "arn": ctx.arn("eks", f"cluster/{name}"),
            "endpoint": f"https://{resource_id[-16:].upper()}.gr7.{ctx.region}.eks.amazonaws.com",
            "certificateAuthority": {"data": FAKE_CA_DATA},
            "vpcConfig": {
                **inputs["vpcConfig"],
                "clusterSecurityGroupId": "sg-" + resource_id[-17:],
            },
        }
    if resource_type == "aws:eks/nodeGroup:NodeGroup":
        name = inputs["nodeGroupName"]
        group = f"eks-{name}-{uuid.uuid5(uuid.NAMESPACE_URL, name)}"
        return {
            "arn": ctx.arn("eks", f"nodegroup/{inputs['clusterName']}/{name}/{resource_id[-8:]}"),
            "resources": [{"autoscalingGroups": [{"name": group}]}],
        }
    if resource_type == "aws:ec2/launchTemplate:LaunchTemplate":
        return {"latestVersion": 1, "arn": ctx.arn("ec2", f"launch-template/{resource_id}")}
    if resource_type == "pulumi:pulumi:StackReference":
        # Another stack's outputs: a shared MLflow tracking server (in its own account), a
        # shared training cluster and VPC (in this one: pod identity needs the same account).
        shared = AwsContext(account_id="000000000000", region=ctx.region)
        tracking_server = shared.arn("sagemaker", "mlflow-tracking-server/shared")
        outputs = {
            VPC_ID_OUTPUT: "vpc-0shared0000000000",
            PRIVATE_SUBNETS_OUTPUT: [f"subnet-0shared00000000{i}" for i in range(6)],
            TRACKING_SERVER_OUTPUT: tracking_server,
            CLUSTER_NAME_OUTPUT: "mlops-shared",
            CLUSTER_ENDPOINT_OUTPUT: f"https://SHARED.gr7.{ctx.region}.eks.amazonaws.com",
            CLUSTER_CA_OUTPUT: FAKE_CA_DATA,
            CLUSTER_SECURITY_GROUP_OUTPUT: "sg-0shared0000000000",
        }
        return {"outputs": outputs, "secretOutputNames": []}
    if resource_type == "aws:amp/workspace:Workspace":
        return {"arn": ctx.arn("aps", f"workspace/{resource_id}")}
    if resource_type == "aws:amp/scraper:Scraper":
        name = f"AWSServiceRoleForAmazonPrometheusScraper_{resource_id[-14:]}"
        return {
            "arn": ctx.arn("aps", f"scraper/s-{resource_id[-14:]}"),
            "roleArn": ctx.arn(
                "iam", f"role/aws-service-role/scraper.aps.amazonaws.com/{name}", regional=False
            ),
        }
    if resource_type == "aws:cloudwatch/eventRule:EventRule":
        return {"arn": ctx.arn("events", f"rule/{inputs.get('name', args.name)}")}
    if resource_type == "aws:cloudwatch/metricAlarm:MetricAlarm":
        return {"arn": ctx.arn("cloudwatch", f"alarm:{inputs.get('name', args.name)}")}
    if resource_type == "aws:sqs/queue:Queue":
        name = inputs.get("name", args.name)
        return {
            "arn": ctx.arn("sqs", name),
            "url": f"https://sqs.{ctx.region}.amazonaws.com/{ctx.account_id}/{name}",
        }
    if resource_type == "aws:ec2/vpcEndpoint:VpcEndpoint":
        return {"prefixListId": "pl-" + resource_id[-8:]}
    if service:
        return {
            "arn": ctx.arn(service, f"{resource_type.rsplit(':', 1)[-1].lower()}/{resource_id}")
        }
    return {}


class _RecordingMonitor(mocks.MockMonitor):
    """The mock monitor, also keeping what each registration asked for (options included)."""

    def __init__(self, fake: mocks.Mocks) -> None:
        super().__init__(fake)
        self.recorded: list[RecordedResource] = []

    def RegisterResource(self, request: Any) -> Any:  # noqa: N802 (gRPC method name)
        response = super().RegisterResource(request)
        if request.type == "pulumi:pulumi:Stack":
            return response
        inputs = rpc.deserialize_properties(request.object)
        self.recorded.append(
            RecordedResource(
                type=request.type,
                name=request.name,
                urn=response.urn,
                inputs=_plain(inputs),
                outputs=_plain(self.resources[response.urn].state),
                parent=request.parent or None,
                provider=request.provider or None,
                property_dependencies={
                    key: tuple(deps.urns) for key, deps in request.propertyDependencies.items()
                },
                custom=request.custom,
                protect=bool(request.protect),
                retain_on_delete=bool(request.retainOnDelete),
                depends_on=tuple(request.dependencies),
                delete_before_replace=bool(request.deleteBeforeReplace),
                ignore_changes=tuple(request.ignoreChanges),
                aliases=tuple(_alias_text(a) for a in request.aliases),
            )
        )
        return response

    def ReadResource(self, request: Any) -> Any:  # noqa: N802 (gRPC method name)
        """Reads of existing resources (StackReference, `.get()`): recorded with what they
        were asked for; they create nothing and carry no options."""
        response = super().ReadResource(request)
        self.recorded.append(
            RecordedResource(
                type=request.type,
                name=request.name,
                urn=response.urn,
                inputs=_plain(rpc.deserialize_properties(request.properties)),
                outputs=_plain(self.resources[response.urn].state),
                parent=request.parent or None,
                provider=request.provider or None,
                property_dependencies={},
                custom=True,
                protect=False,
                retain_on_delete=False,
                depends_on=tuple(request.dependencies),
                delete_before_replace=False,
                ignore_changes=(),
                aliases=(),
            )
        )
        return response


def _alias_text(alias: Any) -> str:
    """An alias as a URN, or the old name (with type, where the alias changes it)."""
    if alias.urn:
        return str(alias.urn)
    return ":".join(part for part in (alias.spec.type, alias.spec.name) if part)


def _plain(value: Any) -> Any:
    """Inputs as plain JSON-like data (secrets unwrapped, integers as integers, file assets
    as their paths, archives as their assets)."""
    if isinstance(value, dict):
        if value.get(rpc._special_sig_key) == rpc._special_secret_sig:  # noqa: SLF001
            return _plain(value.get("value"))
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, pulumi.FileAsset):
        return {"fileAsset": str(value.path)}
    if isinstance(value, pulumi.AssetArchive):
        return {"archive": {name: _plain(asset) for name, asset in value.assets.items()}}
    # The wire format carries every number as a double; give integers back their type.
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def engine_config(config: Mapping[str, Any]) -> dict[str, str]:
    """Config values as the engine passes them to a program: text, objects as JSON."""
    as_text = {}
    for key, value in config.items():
        if isinstance(value, str):
            as_text[key] = value
        elif isinstance(value, bool):
            as_text[key] = "true" if value else "false"
        elif isinstance(value, (dict, list)):
            as_text[key] = json.dumps(value)
        else:
            as_text[key] = str(value)
    return as_text


def evaluate_stack(stack: str) -> StackRecording:
    """Run the program for a committed stack file and record what it would create."""
    return evaluate_config(stack, read_stack_config(stack_file(stack)))


def evaluate_config(stack: str, config: Mapping[str, Any]) -> StackRecording:
    """Run the program for `stack` with this config (`namespace:key` -> value)."""
    # Validate first so a bad config is reported as a SettingsError, not a program failure.
    settings = settings_from_config(config, source=shown(stack_file(stack)))
    context = AwsContext(account_id=settings.aws.account_id, region=settings.aws.region)
    monitor = _RecordingMonitor(_FakeAws(context))
    pulumi_settings.reset_options(project=PROJECT, stack=stack, preview=False)
    pulumi.runtime.set_all_config(engine_config(config))
    mocks.set_mocks(monitor.mocks, project=PROJECT, stack=stack, preview=False, monitor=monitor)

    exported: dict[str, Any] = {}

    def program() -> None:
        runpy.run_path(str(PROGRAM), run_name="__main__")
        root = pulumi_settings.get_root_resource()
        outputs = getattr(root, "outputs", {})
        exported.update(_sync_await(pulumi.Output.from_input(outputs).future()) or {})

    _sync_await(run_pulumi_func(program))
    return StackRecording(
        stack=stack, settings=settings, resources=monitor.recorded, outputs=_plain(exported)
    )
