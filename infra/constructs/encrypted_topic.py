"""An SNS topic encrypted with its own rotating KMS key and closed to plain-HTTP publishing."""

from __future__ import annotations

from aws_cdk import RemovalPolicy
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_sns as sns
from constructs import Construct


class EncryptedTopic(Construct):
    """A customer-managed key rather than ``alias/aws/sns``: only a key policy of our own can later let
    service principals such as CloudWatch alarms publish to the topic."""

    def __init__(
        self, scope: Construct, construct_id: str, *, display_name: str, removal_policy: RemovalPolicy
    ) -> None:
        super().__init__(scope, construct_id)
        self.key = kms.Key(
            self,
            "Key",
            description=f"Encrypts the SNS topic '{display_name}'",
            enable_key_rotation=True,
            removal_policy=removal_policy,
        )
        self.topic = sns.Topic(self, "Topic", display_name=display_name, master_key=self.key, enforce_ssl=True)

    def grant_publish(self, grantee: iam.IGrantable) -> None:
        """``sns:Publish`` plus exactly the two key actions it needs (``Topic.grant_publish`` adds
        ``kms:GenerateDataKey*``)."""
        grantee.grant_principal.add_to_principal_policy(
            iam.PolicyStatement(actions=["sns:Publish"], resources=[self.topic.topic_arn])
        )
        self.key.grant(grantee, "kms:GenerateDataKey", "kms:Decrypt")
