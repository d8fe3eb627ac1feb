"""The data stack's buckets (encryption, versioning, privacy, TLS, access logs, lifecycle, removal), and the Glue
catalog and Athena workgroup over captures and feedback."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import pytest
from aws_cdk import App, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_s3 as s3
from aws_cdk.assertions import Capture, Match, Template

from functions.common import layout
from functions.common.catalog import (
    CAPTURE_COLUMNS,
    CAPTURE_PARTITION_KEYS,
    CAPTURES_TABLE,
    FEEDBACK_COLUMNS,
    FEEDBACK_PARTITION_KEYS,
    FEEDBACK_TABLE,
    INPUT_FORMAT,
    JSON_SERDE,
    OUTPUT_FORMAT,
    Column,
    projection_parameters,
)
from infra.constructs.capture_catalog import CATALOG_ACTIONS, QUERY_ACTIONS, RESULT_UPLOAD_ACTIONS
from infra.nag import flatten_reference
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


# -- the Glue catalog and the Athena workgroup -------------------------------------------------------------------


def joined(value: Any, bucket_id: str) -> str:
    """A synthesized string, the data bucket's name written as ``<data bucket>``."""
    if isinstance(value, str):
        return value
    parts = value["Fn::Join"][1]
    return "".join("<data bucket>" if part == {"Ref": bucket_id} else part for part in parts)


def one(template: Template, kind: str, name: str | None = None) -> dict[str, Any]:
    """The properties of the one resource of ``kind`` (the table ``name``, for Glue tables)."""
    found: list[dict[str, Any]] = [
        resource["Properties"]
        for resource in template.find_resources(kind).values()
        if name is None or resource["Properties"]["TableInput"]["Name"] == name
    ]
    [properties] = found
    return properties


def columns(described: Sequence[Column]) -> list[dict[str, str]]:
    return [{"Name": c.name, "Type": c.type, "Comment": c.comment} for c in described]


def test_one_glue_database_per_deployment_named_after_it(data_template: Template, dev: DriftloopStacks) -> None:
    database = one(data_template, "AWS::Glue::Database")
    assert database["DatabaseInput"]["Name"] == "driftloop_dev" == dev.data.catalog.database_name
    assert database["CatalogId"] == {"Ref": "AWS::AccountId"}
    renamed = Template.from_stack(build(cdk_context(overrides={"athena": {"glue_database": "ml_loop"}})).data)
    assert one(renamed, "AWS::Glue::Database")["DatabaseInput"]["Name"] == "ml_loop"


@pytest.mark.parametrize(
    ("table", "described", "keys", "location", "template"),
    [
        (
            CAPTURES_TABLE,
            CAPTURE_COLUMNS,
            CAPTURE_PARTITION_KEYS,
            "s3://<data bucket>/captures/",
            "s3://<data bucket>/captures/model_version=${model_version}/hour=${hour}/",
        ),
        (
            FEEDBACK_TABLE,
            FEEDBACK_COLUMNS,
            FEEDBACK_PARTITION_KEYS,
            "s3://<data bucket>/feedback/",
            "s3://<data bucket>/feedback/hour=${hour}/",
        ),
    ],
)
def test_the_tables_are_catalog_pys_over_the_hourly_layout_with_partition_projection(
    data_template: Template,
    table: str,
    described: Sequence[Column],
    keys: Sequence[Column],
    location: str,
    template: str,
) -> None:
    data_bucket = bucket(data_template, "DataBucket")["LogicalId"]
    properties = one(data_template, "AWS::Glue::Table", table)
    table_input = properties["TableInput"]

    assert properties["DatabaseName"] == "driftloop_dev"
    assert table_input["TableType"] == "EXTERNAL_TABLE"
    assert table_input["PartitionKeys"] == columns(keys)
    storage = table_input["StorageDescriptor"]
    assert storage["Columns"] == columns(described)
    assert joined(storage["Location"], data_bucket) == location
    assert (storage["InputFormat"], storage["OutputFormat"]) == (INPUT_FORMAT, OUTPUT_FORMAT)
    assert storage["SerdeInfo"] == {"SerializationLibrary": JSON_SERDE}
    parameters = dict(table_input["Parameters"])
    assert joined(parameters.pop("storage.location.template"), data_bucket) == template
    expected = projection_parameters("", injected_version=table == CAPTURES_TABLE)
    expected.pop("storage.location.template")
    assert parameters == {"EXTERNAL": "TRUE", **expected}
    # What Firehose writes is what the projection reads: the template is the layout's partition, filled in.
    filled = template.replace("${model_version}", "v1").replace("${hour}", "2026-03-01-17")
    assert filled.removeprefix("s3://<data bucket>/") in {
        layout.capture_hour_prefix("captures/", "v1", "2026-03-01-17"),
        layout.feedback_hour_prefix("feedback/", "2026-03-01-17"),
    }


def test_the_tables_are_created_after_their_database(data_template: Template) -> None:
    [database_id] = data_template.find_resources("AWS::Glue::Database")
    for resource in data_template.find_resources("AWS::Glue::Table").values():
        assert resource["DependsOn"] == [database_id]


def test_the_workgroup_enforces_encrypted_results_in_the_data_bucket_and_a_scan_cutoff(
    data_template: Template, dev: DriftloopStacks
) -> None:
    data_bucket = bucket(data_template, "DataBucket")["LogicalId"]
    [(_, workgroup)] = data_template.find_resources("AWS::Athena::WorkGroup").items()
    properties = workgroup["Properties"]
    configuration = properties["WorkGroupConfiguration"]
    results = configuration["ResultConfiguration"]

    assert properties["Name"] == "driftloop-dev" == dev.data.catalog.workgroup_name
    assert properties["State"] == "ENABLED"
    assert configuration["EnforceWorkGroupConfiguration"] is True
    assert configuration["BytesScannedCutoffPerQuery"] == 100 * 10**9
    assert configuration["EngineVersion"] == {"SelectedEngineVersion": "AUTO"}
    assert joined(results["OutputLocation"], data_bucket) == "s3://<data bucket>/athena/"
    assert results["EncryptionConfiguration"] == {"EncryptionOption": "SSE_S3"}
    assert results["ExpectedBucketOwner"] == {"Ref": "AWS::AccountId"}
    tighter = build(cdk_context(overrides={"athena": {"bytes_scanned_cutoff_gb": 5}})).data
    [(_, capped)] = Template.from_stack(tighter).find_resources("AWS::Athena::WorkGroup").items()
    assert capped["Properties"]["WorkGroupConfiguration"]["BytesScannedCutoffPerQuery"] == 5 * 10**9


def test_the_catalog_is_metadata_deleted_with_the_stack_even_when_the_buckets_are_retained(
    data_template: Template,
) -> None:
    for kind in ("AWS::Glue::Database", "AWS::Glue::Table", "AWS::Athena::WorkGroup"):
        for resource in data_template.find_resources(kind).values():
            assert resource["DeletionPolicy"] == "Delete"


def test_athena_results_expire_after_the_configured_days(data_template: Template) -> None:
    assert {"Id": "expire-athena-results", "Status": "Enabled", "Prefix": "athena/", "ExpirationInDays": 7} in rules(
        data_template, "DataBucket"
    )


def granted(stack: Stack) -> set[tuple[tuple[str, ...], tuple[str, ...], str]]:
    """Each statement of the stack's one policy: (actions, resources as cdk-nag names them, condition)."""
    [policy] = Template.from_stack(stack).find_resources("AWS::IAM::Policy").values()
    found = set()
    for statement in policy["Properties"]["PolicyDocument"]["Statement"]:
        assert statement["Effect"] == "Allow"
        actions, resources = statement["Action"], statement["Resource"]
        found.add(
            (
                tuple(actions) if isinstance(actions, list) else (actions,),
                tuple(flatten_reference(r) for r in (resources if isinstance(resources, list) else [resources])),
                json.dumps(statement.get("Condition")),
            )
        )
    return found


def test_a_querier_is_granted_the_workgroup_the_two_tables_the_captures_and_the_results_and_nothing_else(
    dev: DriftloopStacks,
) -> None:
    stack = Stack(App(), "Querier")
    role = iam.Role(stack, "Role", assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"))

    dev.data.catalog.grant_query(role, s3.Bucket.from_bucket_name(stack, "Data", "data"))

    glue = "arn:<AWS::Partition>:glue:<AWS::Region>:<AWS::AccountId>"
    bucket_arn = "arn:<AWS::Partition>:s3:::data"

    def listing(prefix: str) -> tuple[tuple[str, ...], tuple[str, ...], str]:
        return (("s3:ListBucket",), (bucket_arn,), json.dumps({"StringLike": {"s3:prefix": [f"{prefix}*"]}}))

    assert granted(stack) == {
        (
            QUERY_ACTIONS,
            ("arn:<AWS::Partition>:athena:<AWS::Region>:<AWS::AccountId>:workgroup/driftloop-dev",),
            "null",
        ),
        (
            CATALOG_ACTIONS,
            (
                f"{glue}:catalog",
                f"{glue}:database/driftloop_dev",
                f"{glue}:table/driftloop_dev/captures",
                f"{glue}:table/driftloop_dev/feedback",
            ),
            "null",
        ),
        listing("captures/"),
        (("s3:GetObject",), (f"{bucket_arn}/captures/*",), "null"),
        listing("feedback/"),
        (("s3:GetObject",), (f"{bucket_arn}/feedback/*",), "null"),
        listing("athena/"),
        (("s3:GetObject", "s3:PutObject"), (f"{bucket_arn}/athena/*",), "null"),
        (RESULT_UPLOAD_ACTIONS, (f"{bucket_arn}/athena/*",), "null"),
        (("s3:GetBucketLocation",), (bucket_arn,), "null"),
    }
