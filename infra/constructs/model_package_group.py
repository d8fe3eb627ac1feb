"""The SageMaker model package group that mirrors the registry (functions/workflow/model_packages.py): one per
deployment, with grants scoped to its packages.

Deleting the stack deletes the group only if it holds no packages (SageMaker refuses otherwise): with
``removal: destroy``, delete the group's packages first (``aws sagemaker delete-model-package``).
"""

from __future__ import annotations

from aws_cdk import RemovalPolicy, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_sagemaker as sagemaker
from constructs import Construct


class ModelPackageGroup(Construct):
    def __init__(self, scope: Construct, construct_id: str, *, name: str, removal_policy: RemovalPolicy) -> None:
        super().__init__(scope, construct_id)
        self.name = name
        self.group = sagemaker.CfnModelPackageGroup(
            self,
            "Group",
            model_package_group_name=name,
            model_package_group_description="driftloop's registered versions, mirrored from its S3 registry (the "
            "record); approval follows driftloop's decisions",
        )
        self.group.apply_removal_policy(removal_policy)
        stack = Stack.of(self)
        self.group_arn = stack.format_arn(service="sagemaker", resource="model-package-group", resource_name=name)
        # The group's versioned packages: model-package/<group>/<version number>.
        self.packages_arn = stack.format_arn(service="sagemaker", resource="model-package", resource_name=f"{name}/*")

    def grant_create(self, grantee: iam.IGrantable) -> None:
        """Create packages in this group (CreateModelPackage is authorized on the group and the new package)."""
        grantee.grant_principal.add_to_principal_policy(
            iam.PolicyStatement(actions=["sagemaker:CreateModelPackage"], resources=[self.group_arn, self.packages_arn])
        )

    def grant_update(self, grantee: iam.IGrantable) -> None:
        """Change the approval status of this group's packages."""
        grantee.grant_principal.add_to_principal_policy(
            iam.PolicyStatement(actions=["sagemaker:UpdateModelPackage"], resources=[self.packages_arn])
        )
