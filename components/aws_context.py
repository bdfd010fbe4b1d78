"""Where an environment lives (account, region, partition) and the ARNs that follow from it.

Derived from settings, not looked up, so policy documents are plain data the tests can read.
"""

from __future__ import annotations

from dataclasses import dataclass


def partition_of(region: str) -> str:
    if region.startswith("cn-"):
        return "aws-cn"
    if region.startswith("us-gov-"):
        return "aws-us-gov"
    return "aws"


@dataclass(frozen=True)
class AwsContext:
    account_id: str
    region: str

    @property
    def partition(self) -> str:
        return partition_of(self.region)

    @property
    def account_root(self) -> str:
        return f"arn:{self.partition}:iam::{self.account_id}:root"

    def service_principal(self, service: str, regional: bool = False) -> str:
        """`logs.eu-west-1.amazonaws.com` for regional principals, else `sns.amazonaws.com`."""
        return f"{service}.{self.region}.amazonaws.com" if regional else f"{service}.amazonaws.com"

    def endpoint_service(self, service: str) -> str:
        """The VPC endpoint service name, e.g. `com.amazonaws.eu-west-1.sagemaker.api`."""
        return f"com.amazonaws.{self.region}.{service}"

    def arn(self, service: str, resource: str, regional: bool = True) -> str:
        region = self.region if regional else ""
        return f"arn:{self.partition}:{service}:{region}:{self.account_id}:{resource}"
