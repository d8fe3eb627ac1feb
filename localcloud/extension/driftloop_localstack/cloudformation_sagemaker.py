"""CloudFormation resource provider for ``AWS::SageMaker::ModelPackageGroup`` (the registry mirror's group).

LocalStack's open-source runtime has none (``localcloud/deploy.py`` refuses a deployment it would skip). This one
creates the group through the instance's own SageMaker API, which the extension's provider forwards to moto
(:mod:`driftloop_localstack.sagemaker`), so the workflow's CreateModelPackage calls find it. As on AWS, ``Ref``
gives the group's ARN and ``Fn::GetAtt`` has ``ModelPackageGroupArn``, ``ModelPackageGroupStatus`` and
``CreationTime``; the name is create-only, and a changed name replaces the group.

moto has no DeleteModelPackageGroup: deleting removes the group from moto's store in this process, refused like
AWS refuses it while the group still holds packages. A ``ModelPackageGroupPolicy`` is refused (moto has none).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from localstack.services.cloudformation.resource_provider import (
    OperationStatus,
    ProgressEvent,
    ResourceProvider,
    ResourceRequest,
)

from driftloop_localstack.cloudformation_providers import Properties, done, failed, provider_plugin

TYPE = "AWS::SageMaker::ModelPackageGroup"


class ModelPackageGroupProvider(ResourceProvider[Properties]):
    SCHEMA: Mapping[str, Any] = {
        "typeName": TYPE,
        "primaryIdentifier": ["/properties/ModelPackageGroupArn"],
        "createOnlyProperties": ["/properties/ModelPackageGroupName", "/properties/ModelPackageGroupDescription"],
    }

    def create(self, request: ResourceRequest[Properties]) -> ProgressEvent[Properties]:
        model = request.desired_state
        name = model.get("ModelPackageGroupName")
        if not name:
            return failed(f"{TYPE} needs ModelPackageGroupName")
        if model.get("ModelPackageGroupPolicy"):
            return failed(f"{TYPE}: ModelPackageGroupPolicy is not supported by the local cloud")
        sagemaker = request.aws_client_factory.sagemaker
        arguments: dict[str, Any] = {"ModelPackageGroupName": name}
        if model.get("ModelPackageGroupDescription"):
            arguments["ModelPackageGroupDescription"] = model["ModelPackageGroupDescription"]
        if model.get("Tags"):
            arguments["Tags"] = model["Tags"]
        sagemaker.create_model_package_group(**arguments)
        described = sagemaker.describe_model_package_group(ModelPackageGroupName=name)
        return done(
            {
                **model,
                "ModelPackageGroupArn": described["ModelPackageGroupArn"],
                "ModelPackageGroupStatus": described["ModelPackageGroupStatus"],
                "CreationTime": described["CreationTime"].isoformat(),
            }
        )

    def update(self, request: ResourceRequest[Properties]) -> ProgressEvent[Properties]:
        previous = request.previous_state or {}
        if request.desired_state.get("ModelPackageGroupName") != previous.get("ModelPackageGroupName"):
            created = self.create(request)  # a renamed group: the new one, then the old one goes
            if created.status == OperationStatus.SUCCESS:
                failure = _drop(request.account_id, request.region_name, previous)
                if failure:
                    return failed(failure)
            return created
        sagemaker = request.aws_client_factory.sagemaker
        if request.desired_state.get("Tags"):
            sagemaker.add_tags(ResourceArn=previous["ModelPackageGroupArn"], Tags=request.desired_state["Tags"])
        return done({**previous, **request.desired_state})

    def delete(self, request: ResourceRequest[Properties]) -> ProgressEvent[Properties]:
        failure = _drop(request.account_id, request.region_name, request.previous_state or request.desired_state)
        if failure:
            return failed(failure)
        return done({})


def _drop(account_id: str, region: str, model: Properties) -> str | None:
    """Remove the group from moto's store; why not, when it still holds packages (as AWS refuses)."""
    from moto.sagemaker.models import sagemaker_backends

    backend = sagemaker_backends[account_id][region]
    name = model.get("ModelPackageGroupName")
    held = [p for p in backend.model_packages.values() if p.model_package_group_name == name]
    if held:
        return (
            f"model package group {name} still holds {len(held)} model package(s): delete them first "
            "(aws sagemaker delete-model-package)"
        )
    backend.model_package_groups.pop(str(name), None)
    return None


ModelPackageGroupProviderPlugin = provider_plugin(TYPE, ModelPackageGroupProvider)
