"""Least-privilege S3 grants scoped to one key prefix (``s3.Bucket``'s ``grant_*`` helpers cover the whole bucket
or add wildcard actions such as ``s3:GetObject*``)."""

from __future__ import annotations

from typing import Literal

from aws_cdk import aws_iam as iam
from aws_cdk import aws_s3 as s3

PrefixAccess = Literal["list", "read", "write", "read-write"]
_OBJECT_ACTIONS: dict[PrefixAccess, list[str]] = {
    "list": [],
    "read": ["s3:GetObject"],
    "write": ["s3:PutObject"],
    "read-write": ["s3:GetObject", "s3:PutObject"],
}


def objects_arn(bucket: s3.IBucket, prefix: str) -> str:
    """The ARN pattern of every object under ``prefix``."""
    return bucket.arn_for_objects(f"{prefix}*")


def grant_prefix(grantee: iam.IGrantable, bucket: s3.IBucket, prefix: str, access: PrefixAccess) -> None:
    """``list``: list keys under ``prefix``; ``read``: list and get its objects; ``write``: put objects there."""
    principal = grantee.grant_principal
    if access != "write":
        principal.add_to_principal_policy(
            iam.PolicyStatement(
                actions=["s3:ListBucket"],
                resources=[bucket.bucket_arn],
                conditions={"StringLike": {"s3:prefix": [f"{prefix}*"]}},
            )
        )
    if actions := _OBJECT_ACTIONS[access]:
        principal.add_to_principal_policy(iam.PolicyStatement(actions=actions, resources=[objects_arn(bucket, prefix)]))


def grant_object(
    grantee: iam.IGrantable, bucket: s3.IBucket, key: str, access: Literal["read", "write", "read-write"]
) -> None:
    """Get and/or put exactly one key, such as the registry's champion pointer; nothing beside it."""
    grantee.grant_principal.add_to_principal_policy(
        iam.PolicyStatement(actions=_OBJECT_ACTIONS[access], resources=[bucket.arn_for_objects(key)])
    )


def grant_missing_key_lookups(grantee: iam.IGrantable, bucket: s3.IBucket) -> None:
    """Let a GetObject of a missing key fail with 404 (NoSuchKey) rather than 403.

    S3 reveals that a key is absent only to callers allowed to list the bucket, and it checks that without the
    request's prefix, so a prefix-conditioned ListBucket is not enough. The registry reads "no champion yet" from
    that 404. The caller can list the bucket's keys; object contents stay limited by :func:`grant_prefix`.
    """
    grantee.grant_principal.add_to_principal_policy(
        iam.PolicyStatement(actions=["s3:ListBucket"], resources=[bucket.bucket_arn])
    )
