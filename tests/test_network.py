"""Network: private subnets across AZs, endpoints, locked-down security groups, flow logs."""

from __future__ import annotations

import ipaddress
import json

from components.environment import vpc_workloads
from policy.mlops_rules.reachability import endpoint_service_name, interface_services_for
from stacks.offline import StackRecording, evaluate_config
from tests.conftest import stack_config

SUBNET = "aws:ec2/subnet:Subnet"
ENDPOINT = "aws:ec2/vpcEndpoint:VpcEndpoint"
INGRESS = "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule"
EGRESS = "aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule"


def _subnets(recording: StackRecording, tier: str) -> list[dict]:
    return [s.inputs for s in recording.of_type(SUBNET) if s.inputs["tags"]["tier"] == tier]


def test_private_subnet_per_az_inside_the_vpc(recording: StackRecording) -> None:
    network = recording.settings.network
    (vpc,) = recording.of_type("aws:ec2/vpc:Vpc")
    assert vpc.inputs["cidrBlock"] == str(network.cidr)
    assert vpc.inputs["enableDnsHostnames"] is True and vpc.inputs["enableDnsSupport"] is True
    private = _subnets(recording, "private")
    assert len(private) == network.az_count
    azs = [s["availabilityZone"] for s in private]
    assert len(set(azs)) == network.az_count
    assert all(az.startswith(recording.settings.aws.region) for az in azs)
    for subnet in private:
        assert ipaddress.ip_network(subnet["cidrBlock"]).subnet_of(network.cidr)
        assert subnet["mapPublicIpOnLaunch"] is False


def test_az_counts_per_environment(dev, test_stack, prod) -> None:
    assert [len(_subnets(r, "private")) for r in (dev, test_stack, prod)] == [2, 2, 3]


def test_no_public_subnets_without_nat_egress(test_stack, prod) -> None:
    for recording in (test_stack, prod):
        assert _subnets(recording, "public") == []
        assert recording.of_type("aws:ec2/internetGateway:InternetGateway") == []
        assert recording.of_type("aws:ec2/natGateway:NatGateway") == []
        assert recording.of_type("aws:ec2/route:Route") == []


def test_dev_egress_through_one_nat_gateway(dev) -> None:
    assert len(_subnets(dev, "public")) == 1
    (nat,) = dev.of_type("aws:ec2/natGateway:NatGateway")
    (igw,) = dev.of_type("aws:ec2/internetGateway:InternetGateway")
    assert igw.urn in nat.depends_on
    routes = {r.name: r.inputs for r in dev.of_type("aws:ec2/route:Route")}
    assert routes["mlops-network-private-rt-0-egress"]["destinationCidrBlock"] == "0.0.0.0/0"
    assert "natGatewayId" in routes["mlops-network-private-rt-0-egress"]
    assert "gatewayId" in routes["mlops-network-public-rt-internet"]


def test_nat_per_az_gives_each_az_its_own_route_table() -> None:
    config = stack_config("prod")
    config["mlops-platform:network"].update(egress="nat", nat_gateways="per_az")
    recording = evaluate_config("prod", config)
    assert len(recording.of_type("aws:ec2/natGateway:NatGateway")) == 3
    assert len(recording.of_type("aws:ec2/routeTable:RouteTable")) == 3 + 1  # private + public


def test_interface_and_gateway_endpoints(recording: StackRecording) -> None:
    region = recording.settings.aws.region
    endpoints = {e.inputs["serviceName"]: e.inputs for e in recording.of_type(ENDPOINT)}
    s3 = endpoints.pop(f"com.amazonaws.{region}.s3")
    assert s3["vpcEndpointType"] == "Gateway"
    assert len(s3["routeTableIds"]) >= 1
    # What the stack's workloads call (policy/mlops_rules/reachability.py): a managed
    # training cluster and deployed models add what their nodes and deploy steps need.
    services = interface_services_for(set(vpc_workloads(recording.settings)))
    assert set(endpoints) == {endpoint_service_name(region, s) for s in services}
    for service in ("sagemaker.api", "sagemaker.runtime", "sagemaker.featurestore-runtime"):
        assert f"com.amazonaws.{region}.{service}" in endpoints
    # MLflow's endpoint is not a com.amazonaws. service (SageMaker DG, MLflow interface
    # endpoint): without it no step of a no-NAT VPC reaches the tracking server.
    assert f"aws.sagemaker.{region}.experiments" in endpoints
    for endpoint in endpoints.values():
        assert endpoint["vpcEndpointType"] == "Interface"
        assert endpoint["privateDnsEnabled"] is True
        assert len(endpoint["subnetIds"]) == recording.settings.network.az_count


def test_default_security_group_has_no_rules(recording: StackRecording) -> None:
    (default,) = recording.of_type("aws:ec2/defaultSecurityGroup:DefaultSecurityGroup")
    assert default.inputs.get("ingress", []) == []
    assert default.inputs.get("egress", []) == []


def test_no_ingress_from_anywhere(recording: StackRecording) -> None:
    for rule in recording.of_type(INGRESS):
        assert rule.inputs.get("cidrIpv4") not in ("0.0.0.0/0",)
        assert "cidrIpv6" not in rule.inputs


def test_sagemaker_group_allows_itself_ike_and_esp(recording: StackRecording) -> None:
    rules = {r.name: r.inputs for r in recording.of_type(INGRESS)}
    ike = rules["mlops-network-sagemaker-ike-in"]
    esp = rules["mlops-network-sagemaker-esp-in"]
    assert (ike["ipProtocol"], ike["fromPort"], ike["toPort"]) == ("udp", 500, 500)
    assert esp["ipProtocol"] == "50"
    for rule in (ike, esp, rules["mlops-network-sagemaker-tcp-in"]):
        assert rule["referencedSecurityGroupId"] == rule["securityGroupId"]


def test_endpoints_accept_https_from_the_vpc_only(recording: StackRecording) -> None:
    rule = recording.named("mlops-network-endpoints-https-in").inputs
    assert (rule["fromPort"], rule["toPort"]) == (443, 443)
    assert rule["cidrIpv4"] == str(recording.settings.network.cidr)


def test_https_egress_stays_in_the_vpc_without_nat(test_stack, dev) -> None:
    assert test_stack.named("mlops-network-sagemaker-https-out").inputs["cidrIpv4"] == str(
        test_stack.settings.network.cidr
    )
    assert dev.named("mlops-network-sagemaker-https-out").inputs["cidrIpv4"] == "0.0.0.0/0"
    s3_out = test_stack.named("mlops-network-sagemaker-s3-out").inputs
    assert s3_out["prefixListId"].startswith("pl-")


def test_flow_logs_to_an_encrypted_log_group(recording: StackRecording) -> None:
    (flow_log,) = recording.of_type("aws:ec2/flowLog:FlowLog")
    group = recording.named("mlops-network-flow-logs")
    assert flow_log.inputs["trafficType"] == "ALL"
    assert flow_log.inputs["logDestination"] == group.outputs["arn"]
    assert group.inputs["kmsKeyId"] == recording.outputs["logs_key_arn"]
    assert group.inputs["retentionInDays"] == recording.settings.logging.retention_days
    assert group.inputs["name"] == f"/mlops/{recording.stack}/vpc-flow-logs"


def test_flow_log_role_is_scoped(recording: StackRecording) -> None:
    role = recording.named("mlops-network-flow-logs-role")
    trust = json.loads(role.inputs["assumeRolePolicy"])["Statement"][0]
    assert trust["Principal"] == {"Service": "vpc-flow-logs.amazonaws.com"}
    assert trust["Condition"]["StringEquals"] == {
        "aws:SourceAccount": recording.settings.aws.account_id
    }
    policy = json.loads(recording.named("mlops-network-flow-logs-write").inputs["policy"])
    (statement,) = policy["Statement"]
    group = recording.named("mlops-network-flow-logs")
    assert statement["Resource"] == [group.outputs["arn"], f"{group.outputs['arn']}:log-stream:*"]
    assert "*" not in statement["Action"]


def test_existing_vpc_is_reused_not_created() -> None:
    config = stack_config("test")
    config["mlops-platform:network"]["existing_vpc"] = {
        "vpc_id": "vpc-0123456789abcdef0",
        "private_subnet_ids": ["subnet-0123456789abcdef0", "subnet-0123456789abcdef1"],
        "private_route_table_ids": ["rtb-0123456789abcdef0"],
    }
    recording = evaluate_config("test", config)
    for absent in ("aws:ec2/vpc:Vpc", SUBNET, "aws:ec2/defaultSecurityGroup:DefaultSecurityGroup"):
        assert recording.of_type(absent) == []
    assert recording.outputs["vpc_id"] == "vpc-0123456789abcdef0"
    s3 = next(e for e in recording.of_type(ENDPOINT) if e.inputs["vpcEndpointType"] == "Gateway")
    assert s3.inputs["routeTableIds"] == ["rtb-0123456789abcdef0"]
    (flow_log,) = recording.of_type("aws:ec2/flowLog:FlowLog")
    assert flow_log.inputs["vpcId"] == "vpc-0123456789abcdef0"


def test_existing_vpc_can_skip_endpoints() -> None:
    config = stack_config("test")
    config["mlops-platform:network"]["existing_vpc"] = {
        "vpc_id": "vpc-0123456789abcdef0",
        "private_subnet_ids": ["subnet-0123456789abcdef0", "subnet-0123456789abcdef1"],
        "private_route_table_ids": ["rtb-0123456789abcdef0"],
        "create_endpoints": False,
    }
    assert evaluate_config("test", config).of_type(ENDPOINT) == []
