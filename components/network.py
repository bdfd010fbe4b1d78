"""Network: a private VPC where SageMaker jobs, endpoints and EKS nodes run without an internet
path. AWS APIs are reached through VPC endpoints; NAT egress exists only where the stack asks.
"""

from __future__ import annotations

import functools
import ipaddress
import json
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from components.aws_context import AwsContext
from components.flow_log_policies import flow_logs_trust_policy, flow_logs_write_policy
from components.naming import Names
from components.subnet_plan import plan_subnets
from policy.mlops_rules.reachability import endpoint_service_name, interface_services_for
from stacks.settings import NetworkSettings

SAGEMAKER_JOBS_PURPOSE = "sagemaker-jobs"
# The outputs a VPC-owning stack exports and a stack with `network.shared_stack` reads.
VPC_ID_OUTPUT = "vpc_id"
PRIVATE_SUBNETS_OUTPUT = "private_subnet_ids"
HTTPS = 443
IPSEC_IKE_PORT = 500  # UDP: key exchange for SageMaker inter-container traffic encryption
ESP_PROTOCOL = "50"  # IPsec payload


def _nth(index: int, values: list[str]) -> str:
    return str(values[index])


def _nat_count(settings: NetworkSettings) -> int:
    if settings.egress != "nat":
        return 0
    return settings.az_count if settings.nat_gateways == "per_az" else 1


@dataclass
class NetworkArgs:
    settings: NetworkSettings
    context: AwsContext
    names: Names
    # Flow logs go to a log group encrypted with this key and kept this long.
    logs_key_arn: pulumi.Input[str]
    log_retention_days: int
    # What runs in the VPC (policy/mlops_rules/reachability.py WORKLOADS): each gets an
    # endpoint for every AWS service it calls, so none needs an internet path.
    workloads: frozenset[str] = frozenset()


class Network(pulumi.ComponentResource):
    vpc_id: pulumi.Output[str]
    private_subnet_ids: list[pulumi.Output[str]]
    sagemaker_security_group_id: pulumi.Output[str]

    def __init__(
        self, name: str, args: NetworkArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("mlops:network:Network", name, None, opts)
        self._name = name
        self._args = args
        settings = args.settings
        child = pulumi.ResourceOptions(parent=self)

        if settings.shared_stack is not None:
            self._read_shared_vpc(settings.shared_stack, child)
        elif settings.existing_vpc is None:
            self._create_vpc(child)
        else:
            self.vpc_id = pulumi.Output.from_input(settings.existing_vpc.vpc_id)
            self.private_subnet_ids = [
                pulumi.Output.from_input(s) for s in settings.existing_vpc.private_subnet_ids
            ]
            self._private_route_table_ids = [
                pulumi.Output.from_input(r) for r in settings.existing_vpc.private_route_table_ids
            ]

        self._create_security_groups(child)
        # A shared VPC's endpoints and flow logs belong to the stack that owns it: a second
        # interface endpoint with private DNS for the same service would fail to create.
        if settings.shared_stack is None:
            if settings.existing_vpc is None or settings.existing_vpc.create_endpoints:
                self._create_endpoints(child)
            self._create_flow_logs(child)

        self.register_outputs(
            {
                "vpc_id": self.vpc_id,
                "private_subnet_ids": self.private_subnet_ids,
                "sagemaker_security_group_id": self.sagemaker_security_group_id,
            }
        )

    def _read_shared_vpc(self, stack: str, child: pulumi.ResourceOptions) -> None:
        owner = pulumi.StackReference(f"{self._name}-owner", stack, opts=child)
        self.vpc_id = owner.require_output(VPC_ID_OUTPUT).apply(str)
        subnets = owner.require_output(PRIVATE_SUBNETS_OUTPUT)
        # One private subnet per AZ, as in the owning stack (its az_count is copied here).
        self.private_subnet_ids = [
            subnets.apply(functools.partial(_nth, i)) for i in range(self._args.settings.az_count)
        ]

    def _create_vpc(self, child: pulumi.ResourceOptions) -> None:
        name, settings = self._name, self._args.settings
        plan = plan_subnets(settings.cidr, settings.az_count, public_count=_nat_count(settings))
        vpc = aws.ec2.Vpc(
            f"{name}-vpc",
            cidr_block=str(settings.cidr),
            # Private DNS of interface endpoints needs both.
            enable_dns_hostnames=True,
            enable_dns_support=True,
            tags={"Name": f"{self._args.names.base}-vpc"},
            opts=child,
        )
        self.vpc_id = vpc.id
        # Adopting the default security group with no rules makes it deny everything.
        aws.ec2.DefaultSecurityGroup(
            f"{name}-default-sg", vpc_id=vpc.id, ingress=[], egress=[], opts=child
        )
        zones = aws.get_availability_zones_output(
            state="available", opts=pulumi.InvokeOutputOptions(parent=self)
        )

        private_subnets = [
            aws.ec2.Subnet(
                f"{name}-private-{index}",
                vpc_id=vpc.id,
                cidr_block=str(cidr),
                availability_zone=zones.names[index],
                map_public_ip_on_launch=False,
                tags={"Name": f"{self._args.names.base}-private-{index}", "tier": "private"},
                opts=child,
            )
            for index, cidr in enumerate(plan.private)
        ]
        self.private_subnet_ids = [s.id for s in private_subnets]

        nat_gateway_ids = self._create_nat_egress(child, vpc, plan.public, zones)
        # One route table per AZ when each AZ has its own NAT gateway, else one for all.
        table_count = max(len(nat_gateway_ids), 1)
        tables = [
            aws.ec2.RouteTable(f"{name}-private-rt-{index}", vpc_id=vpc.id, opts=child)
            for index in range(table_count)
        ]
        for index, table in enumerate(tables):
            if nat_gateway_ids:
                aws.ec2.Route(
                    f"{name}-private-rt-{index}-egress",
                    route_table_id=table.id,
                    destination_cidr_block="0.0.0.0/0",
                    nat_gateway_id=nat_gateway_ids[index],
                    opts=child,
                )
        for index, subnet in enumerate(private_subnets):
            aws.ec2.RouteTableAssociation(
                f"{name}-private-{index}-rt",
                subnet_id=subnet.id,
                route_table_id=tables[index % table_count].id,
                opts=child,
            )
        self._private_route_table_ids = [t.id for t in tables]

    def _create_nat_egress(
        self,
        child: pulumi.ResourceOptions,
        vpc: aws.ec2.Vpc,
        public_cidrs: tuple[ipaddress.IPv4Network, ...],
        zones: pulumi.Output[aws.GetAvailabilityZonesResult],
    ) -> list[pulumi.Output[str]]:
        """One public subnet per NAT gateway, holding nothing else; returns the NAT ids."""
        if not public_cidrs:
            return []
        name = self._name
        gateway = aws.ec2.InternetGateway(f"{name}-igw", vpc_id=vpc.id, opts=child)
        public_table = aws.ec2.RouteTable(f"{name}-public-rt", vpc_id=vpc.id, opts=child)
        aws.ec2.Route(
            f"{name}-public-rt-internet",
            route_table_id=public_table.id,
            destination_cidr_block="0.0.0.0/0",
            gateway_id=gateway.id,
            opts=child,
        )
        nat_ids = []
        for index, cidr in enumerate(public_cidrs):
            subnet = aws.ec2.Subnet(
                f"{name}-public-{index}",
                vpc_id=vpc.id,
                cidr_block=str(cidr),
                availability_zone=zones.names[index],
                # NAT gateways get Elastic IPs; nothing else lives here.
                map_public_ip_on_launch=False,
                tags={"Name": f"{self._args.names.base}-public-{index}", "tier": "public"},
                opts=child,
            )
            aws.ec2.RouteTableAssociation(
                f"{name}-public-{index}-rt",
                subnet_id=subnet.id,
                route_table_id=public_table.id,
                opts=child,
            )
            address = aws.ec2.Eip(f"{name}-nat-{index}-eip", domain="vpc", opts=child)
            nat = aws.ec2.NatGateway(
                f"{name}-nat-{index}",
                subnet_id=subnet.id,
                allocation_id=address.id,
                opts=pulumi.ResourceOptions(parent=self, depends_on=[gateway]),
            )
            nat_ids.append(nat.id)
        return nat_ids

    def _create_security_groups(self, child: pulumi.ResourceOptions) -> None:
        name, settings = self._name, self._args.settings
        vpc_cidr = str(settings.cidr)
        jobs_sg = aws.ec2.SecurityGroup(
            f"{name}-sagemaker-sg",
            vpc_id=self.vpc_id,
            description="SageMaker jobs and endpoints: talk to each other and to AWS endpoints",
            # Rule N3 finds the group that must allow encrypted inter-container traffic by it.
            tags={"purpose": SAGEMAKER_JOBS_PURPOSE},
            opts=child,
        )
        # Distributed training talks on arbitrary TCP ports between containers; with
        # inter-container traffic encryption SageMaker also needs IKE (UDP 500) and ESP.
        self_rules = {
            "tcp": ("tcp", 0, 65535),
            "ike": ("udp", IPSEC_IKE_PORT, IPSEC_IKE_PORT),
            "esp": (ESP_PROTOCOL, None, None),
        }
        directions = (
            ("in", aws.vpc.SecurityGroupIngressRule),
            ("out", aws.vpc.SecurityGroupEgressRule),
        )
        for label, (protocol, low, high) in self_rules.items():
            for direction, rule_type in directions:
                rule_type(
                    f"{name}-sagemaker-{label}-{direction}",
                    security_group_id=jobs_sg.id,
                    referenced_security_group_id=jobs_sg.id,
                    ip_protocol=protocol,
                    from_port=low,
                    to_port=high,
                    description=f"{label} between SageMaker containers",
                    opts=child,
                )
        aws.vpc.SecurityGroupEgressRule(
            f"{name}-sagemaker-https-out",
            security_group_id=jobs_sg.id,
            ip_protocol="tcp",
            from_port=HTTPS,
            to_port=HTTPS,
            # Inside the VPC (endpoints) unless the stack gives the VPC a NAT path out.
            cidr_ipv4="0.0.0.0/0" if settings.egress == "nat" else vpc_cidr,
            description="HTTPS to AWS APIs",
            opts=child,
        )
        self.sagemaker_security_group_id = jobs_sg.id
        self._sagemaker_sg = jobs_sg

    def _create_endpoints(self, child: pulumi.ResourceOptions) -> None:
        name, ctx = self._name, self._args.context
        endpoints_sg = aws.ec2.SecurityGroup(
            f"{name}-endpoints-sg",
            vpc_id=self.vpc_id,
            description="HTTPS from inside the VPC to AWS interface endpoints",
            opts=child,
        )
        aws.vpc.SecurityGroupIngressRule(
            f"{name}-endpoints-https-in",
            security_group_id=endpoints_sg.id,
            ip_protocol="tcp",
            from_port=HTTPS,
            to_port=HTTPS,
            cidr_ipv4=str(self._args.settings.cidr),
            description="HTTPS from the VPC",
            opts=child,
        )
        s3 = aws.ec2.VpcEndpoint(
            f"{name}-s3-endpoint",
            vpc_id=self.vpc_id,
            service_name=ctx.endpoint_service("s3"),
            vpc_endpoint_type="Gateway",
            route_table_ids=self._private_route_table_ids,
            opts=child,
        )
        # S3 is reached through the gateway endpoint's prefix list, not the VPC CIDR.
        aws.vpc.SecurityGroupEgressRule(
            f"{name}-sagemaker-s3-out",
            security_group_id=self._sagemaker_sg.id,
            ip_protocol="tcp",
            from_port=HTTPS,
            to_port=HTTPS,
            prefix_list_id=s3.prefix_list_id,
            description="HTTPS to S3 through the gateway endpoint",
            opts=child,
        )
        for service in interface_services_for(set(self._args.workloads)):
            aws.ec2.VpcEndpoint(
                f"{name}-{service.replace('.', '-')}-endpoint",
                vpc_id=self.vpc_id,
                service_name=endpoint_service_name(ctx.region, service),
                vpc_endpoint_type="Interface",
                private_dns_enabled=True,
                subnet_ids=self.private_subnet_ids,
                security_group_ids=[endpoints_sg.id],
                opts=child,
            )

    def _create_flow_logs(self, child: pulumi.ResourceOptions) -> None:
        name, args = self._name, self._args
        log_group = aws.cloudwatch.LogGroup(
            f"{name}-flow-logs",
            name=args.names.log_group("vpc-flow-logs"),
            kms_key_id=args.logs_key_arn,
            retention_in_days=args.log_retention_days,
            opts=child,
        )
        role = aws.iam.Role(
            f"{name}-flow-logs-role",
            assume_role_policy=json.dumps(flow_logs_trust_policy(args.context)),
            description="VPC Flow Logs writes to its encrypted log group",
            opts=child,
        )
        aws.iam.RolePolicy(
            f"{name}-flow-logs-write",
            role=role.id,
            policy=log_group.arn.apply(lambda arn: json.dumps(flow_logs_write_policy(arn))),
            opts=child,
        )
        aws.ec2.FlowLog(
            f"{name}-flow-log",
            vpc_id=self.vpc_id,
            traffic_type="ALL",
            log_destination_type="cloud-watch-logs",
            log_destination=log_group.arn,
            iam_role_arn=role.arn,
            max_aggregation_interval=60,
            opts=child,
        )
