"""Network rules: N6 (no open ingress, closed default security group, flow logs) and N7
(VPC endpoints so jobs need no internet path)."""

from __future__ import annotations

from collections.abc import Iterator

from . import reachability as r
from . import types as t
from .model import StackView
from .registry import Finding, rule

ANYWHERE = ("0.0.0.0/0", "::/0")
PIPELINE = "aws:sagemaker/pipeline:Pipeline"
EKS_CLUSTER = "aws:eks/cluster:Cluster"
LAMBDA_FUNCTION = "aws:lambda/function:Function"


def workloads_of(view: StackView) -> set[str]:
    """The workloads of reachability.NEEDS this stack runs in its VPC, from its resources."""
    found = set()
    pipelines = view.of_type(PIPELINE)
    if pipelines:
        found.add(r.SAGEMAKER_JOBS)
    if any(str(p.props.get("pipelineName", "")).endswith("-deployment") for p in pipelines):
        found.add(r.DEPLOY_STEP)
    if view.of_type(EKS_CLUSTER):
        found |= {r.CLUSTER_NODES, r.CLUSTER_PODS}
    if any(f.props.get("vpcConfig") for f in view.of_type(LAMBDA_FUNCTION)):
        found.add(r.CLUSTER_LAUNCHER)
    return found


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


@rule(
    "N7",
    "vpc-endpoints",
    "Each VPC has an endpoint for every AWS service its workloads call (reachability.NEEDS)",
)
def vpc_endpoints(view: StackView) -> Iterator[Finding]:
    workloads = workloads_of(view)
    for vpc in view.of_type(t.VPC):
        services = set()
        for endpoint in view.dependents(vpc, "vpcId", t.VPC_ENDPOINT):
            name = r.service_of(str(endpoint.props.get("serviceName") or ""))
            kind = endpoint.props.get("vpcEndpointType") or "Gateway"
            if kind == "Interface" and endpoint.props.get("privateDnsEnabled") is not True:
                # Clients call the service's public name; only private DNS sends it here.
                yield endpoint, f"interface endpoint for {name} without private DNS"
                continue
            services.add((name, kind))
        for workload in sorted(workloads):
            for need in r.NEEDS[workload]:
                kind = "Gateway" if need.service in r.GATEWAY_SERVICES else "Interface"
                if (need.service, kind) not in services:
                    yield (
                        vpc,
                        f"{workload} calls {need.service} ({need.why}) and the VPC has no "
                        f"{kind.lower()} endpoint for it",
                    )
