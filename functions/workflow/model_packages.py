"""The SageMaker Model Registry mirror: each registered version becomes a model package in the deployment's model
package group, and its approval status follows driftloop's decisions (promoted: Approved; rejected or rolled
back: Rejected).

S3 (:mod:`functions.common.registry`) stays the system of record. The mirror never decides anything and never
fails a step: a SageMaker error is logged and returned as the outcome (``error``), which Register and Reject
record in their decision. Failing the step instead would let a registry that is only a view turn a promotion
into a failed run, or a retry storm into a rejection; every call here is idempotent, so repeating it repairs it.

The package carries no ``InferenceSpecification``: driftloop serves the ONNX bundle from Lambda, there is no
SageMaker serving image to name (the API does not require one; naming the training image would claim a model
SageMaker could host). The archive's URL is in the metadata and the description.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal

from aws_lambda_powertools import Logger
from botocore.exceptions import BotoCoreError, ClientError

from functions.common.registry import Registry, VersionRecord

if TYPE_CHECKING:
    from mypy_boto3_sagemaker import SageMakerClient

logger = Logger(child=True)

Status = Literal["PendingManualApproval", "Approved", "Rejected"]
PENDING: Status = "PendingManualApproval"
APPROVED: Status = "Approved"
REJECTED: Status = "Rejected"
# Where the registered decision's details keep the mirror's outcome (its ``arn`` finds the package).
DETAIL = "model_package"

# SageMaker's limits on CustomerMetadataProperties (CreateModelPackage): at most 50 entries, keys of 1-128 and
# values of 1-256 characters drawn from letters, digits, spaces and ``_.:/=+-@``.
MAX_METADATA_VALUE = 256
METADATA_PUNCTUATION = frozenset("_.:/=+-@")
# ModelPackageDescription and ApprovalDescription limits.
MAX_DESCRIPTION = 1024
MAX_APPROVAL_DESCRIPTION = 1000
TRUNCATED = "..."


@dataclass(frozen=True)
class Mirrored:
    """What the mirror did: the package's ARN and status, or why it could not."""

    arn: str | None
    status: Status | None
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"arn": self.arn, "status": self.status, **({"error": self.error} if self.error else {})}


@dataclass(frozen=True)
class Lineage:
    """What the package's metadata says of where the version came from."""

    training_job: str | None
    data_manifest: str | None
    trigger: str | None
    execution: str | None
    champion_at_training: str | None


class ModelPackages:
    """Model packages, through a SageMaker client."""

    def __init__(self, sagemaker: SageMakerClient) -> None:
        self._sagemaker = sagemaker

    def create(
        self, group: str, record: VersionRecord, model_data_url: str, evaluation_url: str, lineage: Lineage
    ) -> Mirrored:
        """The version's package in ``group``, PendingManualApproval; a retry (same version: the client token)
        gets the same package back rather than a second one."""
        properties = metadata(
            {
                "driftloop_version": record.version,
                "sha256": record.sha256,
                "model_data_url": model_data_url,
                "training_job": lineage.training_job,
                "data_manifest": lineage.data_manifest,
                "trigger": lineage.trigger,
                "execution": lineage.execution,
                "champion_at_training": lineage.champion_at_training,
            }
        )
        description = bounded(
            f"driftloop version {record.version}: {record.algorithm} predicting {record.target} ({record.task}), "
            f"served by driftloop from its ONNX bundle {model_data_url} (sha256 {record.sha256}). driftloop's "
            "registry in S3 is the record; this package mirrors it.",
            MAX_DESCRIPTION,
        )
        try:
            arn = self._sagemaker.create_model_package(
                ModelPackageGroupName=group,
                ModelPackageDescription=description,
                ModelApprovalStatus=PENDING,
                ModelMetrics={
                    "ModelQuality": {"Statistics": {"ContentType": "application/json", "S3Uri": evaluation_url}}
                },
                CustomerMetadataProperties=properties,
                ClientToken=record.version,
            )["ModelPackageArn"]
        except (ClientError, BotoCoreError) as exc:
            return _failed(f"creating the model package of {record.version} in {group}", exc)
        return Mirrored(str(arn), PENDING)

    def set_status(self, arn: str | None, status: Status, why: str) -> Mirrored:
        """Set the package's approval status, ``why`` as its approval description; no package: nothing to do."""
        if arn is None:
            return Mirrored(None, None, "no model package was recorded for this version")
        try:
            self._sagemaker.update_model_package(
                ModelPackageArn=arn,
                ModelApprovalStatus=status,
                ApprovalDescription=bounded(why, MAX_APPROVAL_DESCRIPTION),
            )
        except (ClientError, BotoCoreError) as exc:
            return _failed(f"setting {arn} to {status}", exc, arn)
        return Mirrored(arn, status)


def package_arn(registry: Registry, version: str, since: datetime | None = None) -> str | None:
    """The ARN of ``version``'s package, as its registered decision (recorded at or after ``since``) recorded it;
    None: never mirrored (registered by hand, or the mirror failed)."""
    for decision in registry.decisions(since=since):
        if decision.action == "registered" and decision.version == version:
            recorded = decision.details.get(DETAIL)
            if isinstance(recorded, Mapping) and isinstance(recorded.get("arn"), str):
                return str(recorded["arn"])
    return None


def metadata(values: Mapping[str, str | None]) -> dict[str, str]:
    """CustomerMetadataProperties: each value SageMaker would refuse made acceptable, never dropped unnoticed:
    characters outside its set become ``_`` and a value too long keeps its start and ends with ``...``. Absent
    values are left out (SageMaker refuses empty ones)."""
    return {
        key: bounded("".join(c if _allowed(c) else "_" for c in value), MAX_METADATA_VALUE)
        for key, value in values.items()
        if value
    }


def bounded(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - len(TRUNCATED)] + TRUNCATED


def _allowed(character: str) -> bool:
    return character.isalnum() or character == " " or character in METADATA_PUNCTUATION


def _failed(what: str, exc: ClientError | BotoCoreError, arn: str | None = None) -> Mirrored:
    message = f"{what} failed: {exc}"
    logger.warning("model registry mirror failed; driftloop's decision stands", error=message)
    return Mirrored(arn, None, message)
