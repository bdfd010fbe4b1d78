"""Network rules: N6 (no open ingress, closed default security group, flow logs) and N7
(VPC endpoints so jobs need no internet path)."""

from __future__ import annotations

from collections.abc import Iterator

from . import types as t
from .model import StackView
from .registry import Finding, rule

ANYWHERE = ("0.0.0.0/0", "::/0")
# Services every VPC the stack creates reaches through interface endpoints (plus S3 gateway).
REQUIRED_INTERFACE_ENDPOINTS = (
    "sagemaker.api",
    "sagemaker.runtime",
    "ecr.api",
    "ecr.dkr",
    "sts",
    "logs",
    "monitoring",
    "kms",
)


@rule("N6", "no-open-ingress", "No security group accepts ingress from 0.0.0.0/0 or ::/0")
def no_open_ingress(view: StackView) -> Iterator[Finding]:
    for ingress in view.of_type(t.INGRESS_RULE):
        if ingress.props.get("cidrIpv4") in ANYWHERE or ingress.props.get("cidrIpv6") in ANYWHERE:
            yield ingress, "ingress open to the internet"
    for group in view.of_type(t.SECURITY_GROUP, t.DEFAULT_SECURITY_GROUP):
        for inline in group.props.get("ingress") or []:
            cidrs = [*(inline.get("cidrBlocks") or []), *(inline.get("ipv6CidrBlocks") or [])]
            if any(c in ANYWHERE for c in cidrs):
                yield group, "inline ingress open to the internet"
    for legacy in view.of_type(t.SECURITY_GROUP_RULE):
        cidrs = [
            *(legacy.props.get("cidrBlocks") or []),
            *(legacy.props.get("ipv6CidrBlocks") or []),
        ]
        if legacy.props.get("type") == "ingress" and any(c in ANYWHERE for c in cidrs):
            yield legacy, "ingress open to the internet"


@rule("N6", "default-sg-closed", "Each VPC's default security group has no rules")
def default_sg_closed(view: StackView) -> Iterator[Finding]:
    for vpc in view.of_type(t.VPC):
        defaults = view.dependents(vpc, "vpcId", t.DEFAULT_SECURITY_GROUP)
        if not defaults:
            yield vpc, "default security group is not managed (it allows traffic by default)"
        for group in defaults:
            if group.props.get("ingress") or group.props.get("egress"):
                yield group, "default security group has rules"


@rule("N6", "vpc-flow-logs", "Each VPC has flow logs")
def vpc_flow_logs(view: StackView) -> Iterator[Finding]:
    for vpc in view.of_type(t.VPC):
        if not view.dependents(vpc, "vpcId", t.FLOW_LOG):
            yield vpc, "VPC has no flow logs"


@rule("N7", "vpc-endpoints", "Each VPC has the S3 gateway and AWS interface endpoints")
def vpc_endpoints(view: StackView) -> Iterator[Finding]:
    for vpc in view.of_type(t.VPC):
        services = set()
        for endpoint in view.dependents(vpc, "vpcId", t.VPC_ENDPOINT):
            # com.amazonaws.<region>.<service>
            name = str(endpoint.props.get("serviceName") or "").split(".", 3)[-1]
            services.add((name, endpoint.props.get("vpcEndpointType") or "Gateway"))
        if ("s3", "Gateway") not in services:
            yield vpc, "no S3 gateway endpoint"
        missing = [s for s in REQUIRED_INTERFACE_ENDPOINTS if (s, "Interface") not in services]
        if missing:
            yield vpc, f"no interface endpoints for: {', '.join(missing)}"
