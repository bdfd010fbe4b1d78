"""IAM documents of the training cluster (pure data): trust policies, the autoscaler's
permissions, each team's artifact-store access and the EBS CSI driver's key use."""

from __future__ import annotations

from typing import Any

from components.aws_context import AwsContext

# AWS managed policies the EKS roles attach: what AWS documents for each role, none of them
# a *FullAccess policy (SECURITY.md A4).
CLUSTER_ROLE_POLICIES = ("AmazonEKSClusterPolicy",)
NODE_ROLE_POLICIES = (
    "AmazonEKSWorkerNodePolicy",
    "AmazonEC2ContainerRegistryPullOnly",
    # The VPC CNI runs on the host network before any pod identity exists, so it uses the
    # node role (AWS's default for the add-on).
    "AmazonEKS_CNI_Policy",
)
EBS_CSI_POLICY = "service-role/AmazonEBSCSIDriverPolicy"
# EKS Pod Identity: the agent assumes the role and tags the session with the pod's cluster,
# namespace and service account.
POD_IDENTITY_SERVICE = "pods.eks"
TEAM_PREFIX = "teams"  # a team's objects live under teams/<team>/ in the artifact buckets


def managed_policy_arn(ctx: AwsContext, name: str) -> str:
    return f"arn:{ctx.partition}:iam::aws:policy/{name}"


def pod_identity_trust_policy(
    ctx: AwsContext, cluster_name: str, namespace: str, service_account: str
) -> dict[str, Any]:
    """One service account of one cluster may assume the role. EKS Pod Identity tags the
    session with the cluster, namespace and service account (EKS User Guide, "Create IAM
    role with trust policy required by EKS Pod Identity", and "Enable or disable session
    tags"); without these conditions any association in the account could use the role."""
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "AllowEksAuthToAssumeRoleForPodIdentity",
                "Effect": "Allow",
                "Principal": {"Service": ctx.service_principal(POD_IDENTITY_SERVICE)},
                "Action": ["sts:AssumeRole", "sts:TagSession"],
                "Condition": {
                    "StringEquals": {
                        "aws:SourceAccount": ctx.account_id,
                        "aws:RequestTag/eks-cluster-arn": ctx.arn("eks", f"cluster/{cluster_name}"),
                        "aws:RequestTag/kubernetes-namespace": namespace,
                        "aws:RequestTag/kubernetes-service-account": service_account,
                    }
                },
            }
        ],
    }


def autoscaler_policy(ctx: AwsContext, cluster_name: str) -> dict[str, Any]:
    """cluster-autoscaler: read groups and instance types; resize and terminate only the
    Auto Scaling groups EKS made for this cluster's node groups (they carry its tag)."""
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "DiscoverGroupsAndInstanceTypes",
                "Effect": "Allow",
                "Action": [
                    "autoscaling:DescribeAutoScalingGroups",
                    "autoscaling:DescribeAutoScalingInstances",
                    "autoscaling:DescribeLaunchConfigurations",
                    "autoscaling:DescribeScalingActivities",
                    "autoscaling:DescribeTags",
                    "ec2:DescribeImages",
                    "ec2:DescribeInstanceTypes",
                    "ec2:DescribeLaunchTemplateVersions",
                    "ec2:GetInstanceTypesFromInstanceRequirements",
                ],
                "Resource": "*",
            },
            {
                # Labels and taints of a managed node group at zero nodes (scale from zero).
                "Sid": "ReadNodeGroupTemplates",
                "Effect": "Allow",
                "Action": "eks:DescribeNodegroup",  # labels/taints survive the ASG tag limit
                "Resource": ctx.arn("eks", f"nodegroup/{cluster_name}/*/*"),
            },
            {
                "Sid": "ResizeThisClustersGroups",
                "Effect": "Allow",
                "Action": [
                    "autoscaling:SetDesiredCapacity",
                    "autoscaling:TerminateInstanceInAutoScalingGroup",
                ],
                "Resource": ctx.arn("autoscaling", "autoScalingGroup:*:autoScalingGroupName/eks-*"),
                "Condition": {
                    "StringEquals": {
                        "aws:ResourceTag/k8s.io/cluster-autoscaler/enabled": "true",
                        f"aws:ResourceTag/k8s.io/cluster-autoscaler/{cluster_name}": "owned",
                    }
                },
            },
        ],
    }


def team_artifact_policy(team: str, *, bucket_arns: list[str], key_arn: str) -> dict[str, Any]:
    """A team's pods read and write only `teams/<team>/` of the artifact buckets."""
    prefix = f"{TEAM_PREFIX}/{team}/"
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "ListOwnPrefix",
                "Effect": "Allow",
                "Action": "s3:ListBucket",
                "Resource": bucket_arns,
                "Condition": {"StringLike": {"s3:prefix": [f"{prefix}*"]}},
            },
            {
                "Sid": "ReadWriteOwnPrefix",
                "Effect": "Allow",
                "Action": [
                    "s3:GetObject",
                    "s3:GetObjectVersion",
                    "s3:PutObject",
                    "s3:DeleteObject",
                    "s3:AbortMultipartUpload",
                ],
                "Resource": [f"{arn}/{prefix}*" for arn in bucket_arns],
            },
            {
                # The buckets encrypt with the environment key; S3 calls KMS for the pod.
                "Sid": "UseDataKeyThroughS3",
                "Effect": "Allow",
                "Action": ["kms:Decrypt", "kms:GenerateDataKey"],
                "Resource": key_arn,
                "Condition": {"StringLike": {"kms:ViaService": "s3.*.amazonaws.com"}},
            },
        ],
    }


def ebs_key_policy(key_arn: str) -> dict[str, Any]:
    """The EBS CSI driver creates volumes encrypted with the environment key (the default
    StorageClass names it); EC2 holds a grant on the key for each attached volume."""
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "EncryptVolumes",
                "Effect": "Allow",
                "Action": [
                    "kms:Encrypt",
                    "kms:Decrypt",
                    "kms:ReEncrypt*",
                    "kms:GenerateDataKey*",
                    "kms:DescribeKey",
                ],
                "Resource": key_arn,
            },
            {
                "Sid": "GrantsForAttachedVolumes",
                "Effect": "Allow",
                "Action": ["kms:CreateGrant", "kms:ListGrants", "kms:RevokeGrant"],
                "Resource": key_arn,
                "Condition": {"Bool": {"kms:GrantIsForAWSResource": "true"}},
            },
        ],
    }
