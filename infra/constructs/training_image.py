"""The training container image: built from training/Dockerfile at deploy time, or an existing ECR image."""

from __future__ import annotations

from aws_cdk import Aws, IgnoreMode
from aws_cdk import aws_ecr as ecr
from aws_cdk import aws_ecr_assets as ecr_assets
from aws_cdk import aws_iam as iam
from constructs import Construct

from infra.bundling import REPO_ROOT
from infra.config import ECR_IMAGE_URI

DOCKERFILE = "training/Dockerfile"
# The build context is the repository root, but the Dockerfile copies only these; everything else (.venv,
# node_modules, cdk.out, .git, tests, ...) stays out of the context, its hash and the upload.
BUILD_CONTEXT = ("training", "functions/__init__.py", "functions/common")


class TrainingImage(Construct):
    """``image_uri`` for CreateTrainingJob and ``grant_pull`` for the role SageMaker runs it with.

    A ``DockerImageAsset`` is only built and pushed when the app is deployed (``cdk deploy`` / asset publishing);
    ``cdk synth`` merely stages the build context, so synthesis needs no Docker.
    """

    def __init__(self, scope: Construct, construct_id: str, *, image_uri: str | None) -> None:
        super().__init__(scope, construct_id)
        if image_uri is None:
            asset = ecr_assets.DockerImageAsset(
                self,
                "Asset",
                directory=str(REPO_ROOT),
                file=DOCKERFILE,
                platform=ecr_assets.Platform.LINUX_AMD64,
                ignore_mode=IgnoreMode.DOCKER,
                exclude=["*", *(f"!{path}" for path in BUILD_CONTEXT), "**/__pycache__", "**/*.pyc"],
            )
            self.image_uri = asset.image_uri
            self.repository: ecr.IRepository = asset.repository
        else:
            match = ECR_IMAGE_URI.fullmatch(image_uri)
            if match is None:
                raise ValueError(f"not an ECR image URI: {image_uri!r}")
            self.image_uri = image_uri
            name = match["repository"]
            self.repository = ecr.Repository.from_repository_attributes(
                self,
                "Repository",
                repository_name=name,
                repository_arn=f"arn:{Aws.PARTITION}:ecr:{match['region']}:{match['account']}:repository/{name}",
            )

    def grant_pull(self, grantee: iam.IGrantable) -> None:
        self.repository.grant_pull(grantee)
