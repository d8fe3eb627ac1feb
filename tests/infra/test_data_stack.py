"""The data stack's buckets: encryption, versioning, privacy, TLS, access logs, lifecycle, removal."""

from __future__ import annotations

import json
from typing import Any

import pytest
from aws_cdk.assertions import Capture, Match, Template

from infra.stacks.wiring import DriftloopStacks
from tests.infra.conftest import build, cdk_context

BUCKETS = ("AccessLogBucket", "DataBucket", "ModelBucket")


def bucket(template: Template, name: str) -> dict[str, Any]:
    [(logical_id, resource)] = [
        (logical_id, resource)
        for logical_id, resource in template.find_resources("AWS::S3::Bucket").items()
        if logical_id.startswith(name)
    ]
    return {"LogicalId": logical_id, **resource}


def rules(template: Template, name: str) -> list[dict[str, Any]]:
    return list(bucket(template, name)["Properties"]["LifecycleConfiguration"]["Rules"])


def test_there_are_exactly_three_buckets(data_template: Template) -> None:
    data_template.resource_count_is("AWS::S3::Bucket", 3)


@pytest.mark.parametrize("name", BUCKETS)
def test_bucket_is_versioned_encrypted_and_blocks_public_access(data_template: Template, name: str) -> None:
    properties = bucket(data_template, name)["Properties"]
    assert properties["VersioningConfiguration"] == {"Status": "Enabled"}
    assert properties["BucketEncryption"]["ServerSideEncryptionConfiguration"] == [
        {"ServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}
    ]
    assert properties["PublicAccessBlockConfiguration"] == {
        "BlockPublicAcls": True,
        "BlockPublicPolicy": True,
        "IgnorePublicAcls": True,
        "RestrictPublicBuckets": True,
    }
    assert properties["OwnershipControls"] == {"Rules": [{"ObjectOwnership": "BucketOwnerEnforced"}]}


@pytest.mark.parametrize("name", BUCKETS)
def test_bucket_denies_insecure_transport(data_template: Template, name: str) -> None:
    data_template.has_resource_properties(
        "AWS::S3::BucketPolicy",
        {
            "Bucket": {"Ref": bucket(data_template, name)["LogicalId"]},
            "PolicyDocument": {
                "Statement": Match.array_with(
                    [
                        Match.object_like(
                            {
                                "Effect": "Deny",
                                "Action": "s3:*",
                                "Principal": {"AWS": "*"},
                                "Condition": {"Bool": {"aws:SecureTransport": "false"}},
                            }
                        ),
                        Match.object_like({"Effect": "Deny", "Condition": {"NumericLessThan": {"s3:TlsVersion": 1.2}}}),
                    ]
                )
            },
        },
    )


@pytest.mark.parametrize("name", ["DataBucket", "ModelBucket"])
def test_bucket_writes_server_access_logs_to_the_log_bucket(data_template: Template, name: str) -> None:
    logging = bucket(data_template, name)["Properties"]["LoggingConfiguration"]
    assert logging == {
        "DestinationBucketName": {"Ref": bucket(data_template, "AccessLogBucket")["LogicalId"]},
        "LogFilePrefix": f"{name}/",
    }


@pytest.mark.parametrize("name", BUCKETS)
def test_lifecycle_expires_noncurrent_versions_and_aborts_incomplete_uploads(
    data_template: Template, name: str
) -> None:
    assert {
        "Id": "housekeeping",
        "Status": "Enabled",
        "NoncurrentVersionExpiration": {"NoncurrentDays": 30},
        "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 7},
        "ExpiredObjectDeleteMarker": True,
    } in rules(data_template, name)


def test_training_outputs_expire_after_the_configured_days(data_template: Template) -> None:
    assert {
        "Id": "expire-training-outputs",
        "Status": "Enabled",
        "Prefix": "training-jobs/",
        "ExpirationInDays": 30,
    } in rules(data_template, "ModelBucket")


def test_registry_objects_never_expire(data_template: Template) -> None:
    # Only prefix-scoped rules may expire current objects, and none of them covers the registry.
    expiring = [rule for rule in rules(data_template, "ModelBucket") if "ExpirationInDays" in rule]
    assert [rule.get("Prefix") for rule in expiring] == ["training-jobs/"]


def test_captured_predictions_and_feedback_expire_after_the_configured_days(data_template: Template) -> None:
    data_rules = rules(data_template, "DataBucket")
    for name, prefix in (("captures", "captures/"), ("feedback", "feedback/")):
        assert {"Id": f"expire-{name}", "Status": "Enabled", "Prefix": prefix, "ExpirationInDays": 90} in data_rules
    # The base training data never expires.
    assert all(rule.get("Prefix") for rule in data_rules if "ExpirationInDays" in rule)


def test_access_logs_expire_after_the_configured_days(data_template: Template) -> None:
    assert {"Id": "expire-access-logs", "Status": "Enabled", "ExpirationInDays": 90} in rules(
        data_template, "AccessLogBucket"
    )


def test_buckets_are_retained_by_default(data_template: Template) -> None:
    for resource in data_template.find_resources("AWS::S3::Bucket").values():
        assert resource["DeletionPolicy"] == "Retain"
        assert resource["UpdateReplacePolicy"] == "Retain"
    data_template.resource_count_is("Custom::S3AutoDeleteObjects", 0)


def test_local_stage_deletes_its_buckets_with_the_stack(local: DriftloopStacks) -> None:
    template = Template.from_stack(local.data)
    for resource in template.find_resources("AWS::S3::Bucket").values():
        assert resource["DeletionPolicy"] == "Delete"
    # Emptying them would need CDK's Node.js custom resource, which the local Lambda runtime cannot run.
    template.resource_count_is("Custom::S3AutoDeleteObjects", 0)


def test_bucket_names_are_exported_under_fixed_names(data_template: Template) -> None:
    bucket_ref = Capture()
    data_template.has_output(
        "ModelBucketName", {"Value": {"Ref": bucket_ref}, "Export": {"Name": "driftloop-dev-ModelBucketName"}}
    )
    assert bucket_ref.as_string() == bucket(data_template, "ModelBucket")["LogicalId"]
    data_template.has_output("DataBucketName", {"Export": {"Name": "driftloop-dev-DataBucketName"}})


def model_bucket_statements(template: Template) -> dict[str, dict[str, Any]]:
    """Sid -> statement of the model bucket's policy."""
    [policy] = [
        resource["Properties"]["PolicyDocument"]
        for resource in template.find_resources("AWS::S3::BucketPolicy").values()
        if resource["Properties"]["Bucket"] == {"Ref": bucket(template, "ModelBucket")["LogicalId"]}
    ]
    found = {}
    for statement in policy["Statement"]:
        statement = dict(statement)
        if isinstance(statement["Resource"], list):
            statement["Resource"] = sorted(statement["Resource"], key=json.dumps)
        found[statement.pop("Sid", "")] = statement
    return found


def history_arns(template: Template) -> list[dict[str, Any]]:
    model = bucket(template, "ModelBucket")["LogicalId"]
    arns = [
        {"Fn::Join": ["", [{"Fn::GetAtt": [model, "Arn"]}, f"/registry/{folder}/*"]]}
        for folder in ("versions", "decisions")
    ]
    return sorted(arns, key=json.dumps)


def test_model_bucket_refuses_registry_history_writes_without_if_none_match(data_template: Template) -> None:
    # Even a principal allowed s3:PutObject on the whole bucket cannot replace a version or a decision.
    assert model_bucket_statements(data_template)["DenyUnconditionalWritesToRegistryHistory"] == {
        "Effect": "Deny",
        "Principal": {"AWS": "*"},
        "Action": "s3:PutObject",
        "Resource": history_arns(data_template),
        "Condition": {"Null": {"s3:if-none-match": "true"}},
    }


def test_model_bucket_refuses_deleting_registry_history_unless_it_empties_itself_on_delete(
    data_template: Template,
) -> None:
    assert model_bucket_statements(data_template)["DenyDeletingRegistryHistory"] == {
        "Effect": "Deny",
        "Principal": {"AWS": "*"},
        "Action": ["s3:DeleteObject", "s3:DeleteObjectVersion"],
        "Resource": history_arns(data_template),
    }
    emptied = Template.from_stack(
        build(cdk_context(overrides={"removal": "destroy", "auto_delete_objects": True})).data
    )
    statements = model_bucket_statements(emptied)
    assert "DenyDeletingRegistryHistory" not in statements
    assert "DenyUnconditionalWritesToRegistryHistory" in statements
