"""Firehose delivery to S3 with custom prefixes and dynamic partitioning (driftloop_localstack.firehose_partitioning).

The capture and feedback streams are created exactly as the serving stack declares them: their properties are
synthesized from ``infra.constructs.capture_streams.CaptureStreams`` with the local stage's config, only the bucket,
role and log group references resolved to this test's resources. The keys they write must be the ones
``functions.common.records`` lays out and the monitor reads.

Stock LocalStack 2026.3.0 writes every call under the literal prefix plus ``YYYY/MM/DD/HH/``
(``captures/model_version=!{partitionKeyFromQuery:model_version}/hour=!{timestamp:yyyy-MM-dd-HH}/2026/11/27/12/``
``...``) and accepts any query. Verified by running this file against an instance without the
``install_firehose_partitioning`` hook (the module present, its entry point not yet registered): every test fails
except the one on a stream without expressions, which guards LocalStack's own layout. Stock LocalStack also ignores
``CompressionFormat`` (its ``_put_records_to_s3_bucket`` writes the bytes as sent, with no ``.gz``): the GZIP
assertions here fail without the hook.
"""

from __future__ import annotations

import base64
import copy
import gzip
import json
import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest
from botocore.exceptions import ClientError

from functions.common.layout import capture_hour_prefix, feedback_hour_prefix, hour_value
from functions.common.records import FeedbackRecord, PredictionRecord, new_prediction_ids, to_json_lines
from infra.bundling import REPO_ROOT
from localcloud.cloud import Cloud
from tests.plugins.local_cloud import unique
from tests.prediction_ids import ID_KEY
from tests.stored_records import CaptureReader

pytestmark = pytest.mark.integration

LOG_GROUP = "/driftloop/test/firehose-delivery"
# LocalStack's object name: <stream>-YYYY-MM-DD-HH-MM-SS-<uuid>; GZIP adds .gz.
OBJECT_NAME = r"-\d{4}-\d\d-\d\d-\d\d-\d\d-\d\d-[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
GZIPPED_NAME = OBJECT_NAME + r"\.gz"


@pytest.fixture(scope="module")
def construct_template() -> dict[str, Any]:
    """A stack of the serving stack's delivery streams (``CaptureStreams``, local stage config) and a data bucket,
    as CloudFormation gets it (bootstrap-free). aws_cdk is imported here, not at collection: jsii takes seconds."""
    os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")
    os.environ.setdefault("JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION", "1")
    from aws_cdk import App, BootstraplessSynthesizer, RemovalPolicy, Stack
    from aws_cdk import aws_s3 as s3
    from aws_cdk.assertions import Template

    from infra.config import load_config
    from infra.constructs.capture_streams import CaptureStreams

    context = json.loads((REPO_ROOT / "cdk.json").read_text())["context"]
    context["stage"] = "local"
    app = App(context=context)
    config = load_config(app.node.try_get_context)
    assert config.data.capture_prefix == "captures/" and config.data.feedback_prefix == "feedback/"
    stack = Stack(app, "FirehoseShapes", synthesizer=BootstraplessSynthesizer())
    CaptureStreams(
        stack,
        "Streams",
        name_prefix=unique("shape"),
        bucket=s3.Bucket(stack, "Data", removal_policy=RemovalPolicy.DESTROY),
        data=config.data,
        capture=config.capture,
        log_retention_days=config.log_retention_days,
        removal_policy=RemovalPolicy.DESTROY,
    )
    return dict(Template.from_stack(stack).to_json())


@pytest.fixture(scope="module")
def declared_streams(construct_template: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The properties of the serving stack's delivery streams, by kind ("captures", "feedback")."""
    declared = {
        resource["Properties"]["DeliveryStreamName"].rsplit("-", 1)[1]: resource["Properties"]
        for resource in construct_template["Resources"].values()
        if resource["Type"] == "AWS::KinesisFirehose::DeliveryStream"
    }
    assert set(declared) == {"captures", "feedback"}, declared
    return declared


@dataclass
class Delivered:
    key: str
    body: bytes

    @property
    def prefix(self) -> str:
        return self.key.rsplit("/", 1)[0] + "/"

    @property
    def name(self) -> str:
        return self.key.rsplit("/", 1)[1]

    @property
    def content(self) -> bytes:
        """The body as written before compression (the streams deliver GZIP)."""
        return gzip.decompress(self.body)


class Destination:
    """A bucket and a delivery role; streams into them."""

    def __init__(self, client: Callable[[str], Any]) -> None:
        self.s3 = client("s3")
        self.firehose = client("firehose")
        self.iam = client("iam")
        self.bucket = unique("driftloop-firehose")
        self.s3.create_bucket(Bucket=self.bucket)
        self.role = unique("firehose-delivery")
        trust = {
            "Version": "2012-10-17",
            "Statement": [
                {"Effect": "Allow", "Principal": {"Service": "firehose.amazonaws.com"}, "Action": "sts:AssumeRole"}
            ],
        }
        self.role_arn = self.iam.create_role(RoleName=self.role, AssumeRolePolicyDocument=json.dumps(trust))["Role"][
            "Arn"
        ]
        self.streams: list[str] = []

    def create(self, properties: dict[str, Any]) -> str:
        """A stream with these CloudFormation properties (references resolved to this bucket and role)."""
        name = unique("stream")
        config = copy.deepcopy(properties["ExtendedS3DestinationConfiguration"])
        config["BucketARN"] = f"arn:aws:s3:::{self.bucket}"
        config["RoleARN"] = self.role_arn
        if "CloudWatchLoggingOptions" in config:
            config["CloudWatchLoggingOptions"]["LogGroupName"] = LOG_GROUP
        assert "Fn::" not in json.dumps(config) and '"Ref"' not in json.dumps(config), config
        encryption = "DeliveryStreamEncryptionConfigurationInput"
        extra = {encryption: properties[encryption]} if encryption in properties else {}
        self.firehose.create_delivery_stream(
            DeliveryStreamName=name,
            DeliveryStreamType=properties.get("DeliveryStreamType", "DirectPut"),
            ExtendedS3DestinationConfiguration=config,
            **extra,
        )
        self.streams.append(name)
        return name

    def put(self, stream: str, payloads: list[bytes]) -> None:
        response = self.firehose.put_record_batch(
            DeliveryStreamName=stream, Records=[{"Data": data} for data in payloads]
        )
        assert response["FailedPutCount"] == 0, response

    def delivered(self, prefix: str = "") -> list[Delivered]:
        found = []
        for page in self.s3.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix):
            for item in page.get("Contents", []):
                body = self.s3.get_object(Bucket=self.bucket, Key=item["Key"])["Body"].read()
                found.append(Delivered(item["Key"], body))
        return found

    def close(self) -> None:
        for name in self.streams:
            self.firehose.delete_delivery_stream(DeliveryStreamName=name)
        for item in self.delivered():
            self.s3.delete_object(Bucket=self.bucket, Key=item.key)
        self.s3.delete_bucket(Bucket=self.bucket)
        self.iam.delete_role(RoleName=self.role)


@pytest.fixture
def destination(local_cloud: Cloud, local_client: Callable[[str], Any]) -> Iterator[Destination]:
    if not local_cloud.managed:
        pytest.skip("tests driftloop's extension: needs the managed local AWS, not DRIFTLOOP_LOCAL_ENDPOINT")
    created = Destination(local_client)
    yield created
    created.close()


def prediction(version: str, now: datetime, tenure: int) -> PredictionRecord:
    [prediction_id] = new_prediction_ids(1, now, ID_KEY)
    return PredictionRecord(
        prediction_id=prediction_id,
        time=now.isoformat(),
        model_version=version,
        features={"tenure": tenure, "plan": "basic"},
        label="yes",
        probabilities={"no": 0.25, "yes": 0.75},
        request_id=unique("request"),
    )


def subscription_batch(lines: list[bytes]) -> bytes:
    """What a CloudWatch Logs subscription puts into the capture stream for these log lines: a gzip envelope."""
    events = [{"id": str(i), "timestamp": 0, "message": line.decode()} for i, line in enumerate(lines)]
    envelope = {
        "messageType": "DATA_MESSAGE",
        "owner": "000000000000",
        "logGroup": "/aws/lambda/inference",
        "logStream": "stream",
        "subscriptionFilters": ["captures"],
        "logEvents": events,
    }
    return gzip.compress(json.dumps(envelope).encode())


def hours(start: datetime, end: datetime) -> set[str]:
    """The UTC hours a call made between ``start`` and ``end`` may be filed under (two around the hour)."""
    return {hour_value(start), hour_value(end)}


def test_captures_land_under_records_py_layout_one_object_per_model_version(
    destination: Destination, declared_streams: dict[str, dict[str, Any]]
) -> None:
    stream = destination.create(declared_streams["captures"])
    start = datetime.now(UTC)
    sent = [prediction(version, start, tenure) for tenure, version in enumerate(["v1", "v2", "v1", "v2", "v1"])]
    payloads = [to_json_lines([record]) for record in sent]

    # One subscription batch: Firehose unpacks it into the logged lines, each ended by its delimiter.
    destination.put(stream, [subscription_batch(payloads)])
    end = datetime.now(UTC)

    delivered = destination.delivered("captures/")
    by_version = {item.key.split("model_version=")[1].split("/")[0]: item for item in delivered}
    assert len(delivered) == 2 and sorted(by_version) == ["v1", "v2"], [item.key for item in delivered]
    for version, item in by_version.items():
        # The prefix is exactly what the readers list, and nothing (no YYYY/MM/DD/HH/) comes between it and the name.
        assert item.prefix in {capture_hour_prefix("captures/", version, hour) for hour in hours(start, end)}
        assert re.fullmatch(re.escape(stream) + GZIPPED_NAME, item.name), item.key
        # One object per partition: the records of the call, in order, each a line, gzipped.
        assert item.content == b"".join(
            p + b"\n" for p, r in zip(payloads, sent, strict=True) if r.model_version == version
        )

    # ... so the monitor's reader finds them.
    reader = CaptureReader(destination.s3, destination.bucket, "captures/", "feedback/")
    for version in ("v1", "v2"):
        found = list(reader.prediction_records(version, sorted(hours(start, end))))
        assert [r.prediction_id for r in found] == [r.prediction_id for r in sent if r.model_version == version]


def test_a_capture_without_model_version_goes_to_the_error_prefix(
    destination: Destination, declared_streams: dict[str, dict[str, Any]]
) -> None:
    properties = declared_streams["captures"]
    stream = destination.create(properties)
    start = datetime.now(UTC)
    good = to_json_lines([prediction("v1", start, 1)])
    orphan = prediction("v1", start, 2).to_dict()
    del orphan["model_version"]
    bad = json.dumps(orphan).encode() + b"\n"

    destination.put(stream, [subscription_batch([bad, good])])
    end = datetime.now(UTC)

    [captured] = destination.delivered("captures/model_version=")
    assert captured.prefix in {capture_hour_prefix("captures/", "v1", hour) for hour in hours(start, end)}
    assert captured.content == good + b"\n"

    [failed] = destination.delivered("captures/errors/")
    error_prefix = properties["ExtendedS3DestinationConfiguration"]["ErrorOutputPrefix"]
    assert failed.prefix in {
        error_prefix.replace("!{firehose:error-output-type}", "processing-failed").replace(
            "!{timestamp:yyyy-MM-dd-HH}", hour
        )
        for hour in hours(start, end)
    }
    assert re.fullmatch(re.escape(stream) + GZIPPED_NAME, failed.name), failed.key
    [document] = [json.loads(line) for line in failed.content.splitlines()]
    assert document["errorCode"] == "DynamicPartitioning.MetadataExtractionFailed"
    assert "model_version" in document["errorMessage"]
    # The record as processed (AWS keeps the compressed envelope there: a documented difference).
    assert base64.b64decode(document["rawData"]) == bad + b"\n"
    assert document["attemptsMade"] == 1
    assert start.timestamp() * 1000 - 1000 <= document["arrivalTimestamp"] <= end.timestamp() * 1000 + 1000


def test_feedback_lands_under_records_py_layout(
    destination: Destination, declared_streams: dict[str, dict[str, Any]]
) -> None:
    stream = destination.create(declared_streams["feedback"])
    start = datetime.now(UTC)
    sent = [
        FeedbackRecord(prediction_id=prediction("v1", start, n).prediction_id, time=start.isoformat(), label="yes")
        for n in range(3)
    ]
    payloads = [to_json_lines([record]) for record in sent]

    destination.put(stream, payloads)
    end = datetime.now(UTC)

    [item] = destination.delivered()
    assert item.prefix in {feedback_hour_prefix("feedback/", hour) for hour in hours(start, end)}
    assert re.fullmatch(re.escape(stream) + GZIPPED_NAME, item.name), item.key
    assert item.content == b"".join(payloads)
    reader = CaptureReader(destination.s3, destination.bucket, "captures/", "feedback/")
    found = list(reader.feedback_records(sorted(hours(start, end))))
    assert [r.prediction_id for r in found] == [r.prediction_id for r in sent]


def test_a_prefix_without_expressions_keeps_localstacks_layout(destination: Destination) -> None:
    stream = destination.create(
        {"ExtendedS3DestinationConfiguration": {"Prefix": "plain/", "CompressionFormat": "UNCOMPRESSED"}}
    )
    payloads = [b'{"n": 1}\n', b'{"n": 2}\n']

    destination.put(stream, payloads)

    [item] = destination.delivered()
    assert re.fullmatch(r"plain/\d{4}/\d\d/\d\d/\d\d/" + re.escape(stream) + OBJECT_NAME, item.key), item.key
    assert item.body == b"".join(payloads)


def test_a_gzip_stream_without_expressions_keeps_localstacks_layout_but_writes_gzip_named_gz(
    destination: Destination,
) -> None:
    configuration = {"Prefix": "plain/", "CompressionFormat": "GZIP"}
    stream = destination.create({"ExtendedS3DestinationConfiguration": configuration})
    payloads = [b'{"n": 1}\n', b'{"n": 2}\n']

    destination.put(stream, payloads)

    [item] = destination.delivered()
    assert re.fullmatch(r"plain/\d{4}/\d\d/\d\d/\d\d/" + re.escape(stream) + GZIPPED_NAME, item.key), item.key
    assert item.content == b"".join(payloads)


def test_the_construct_deployed_by_cloudformation_delivers_to_records_py_layout(
    local_cloud: Cloud, local_client: Callable[[str], Any], construct_template: dict[str, Any]
) -> None:
    """What ``driftloop local deploy`` does: the construct's template through LocalStack's CloudFormation (its own
    roles, log groups and bucket), then a capture and a feedback record."""
    if not local_cloud.managed:
        pytest.skip("tests driftloop's extension: needs the managed local AWS, not DRIFTLOOP_LOCAL_ENDPOINT")
    cfn, s3, firehose = local_client("cloudformation"), local_client("s3"), local_client("firehose")
    stack = unique("firehose-shapes")
    cfn.create_stack(StackName=stack, TemplateBody=json.dumps(construct_template), Capabilities=["CAPABILITY_IAM"])
    try:
        cfn.get_waiter("stack_create_complete").wait(StackName=stack, WaiterConfig={"Delay": 1, "MaxAttempts": 60})
        resources = cfn.describe_stack_resources(StackName=stack)["StackResources"]
        [bucket] = [r["PhysicalResourceId"] for r in resources if r["ResourceType"] == "AWS::S3::Bucket"]
        names = {
            r["PhysicalResourceId"].rsplit("-", 1)[1]: r["PhysicalResourceId"]
            for r in resources
            if r["ResourceType"] == "AWS::KinesisFirehose::DeliveryStream"
        }
        start = datetime.now(UTC)
        captured = prediction("v7", start, 1)
        feedback = FeedbackRecord(prediction_id=captured.prediction_id, time=start.isoformat(), label="no")
        for kind, data in (
            ("captures", subscription_batch([to_json_lines([captured])])),
            ("feedback", to_json_lines([feedback])),
        ):
            response = firehose.put_record_batch(DeliveryStreamName=names[kind], Records=[{"Data": data}])
            assert response["FailedPutCount"] == 0, response
        end = datetime.now(UTC)

        keys = [item["Key"] for item in s3.list_objects_v2(Bucket=bucket).get("Contents", [])]
        assert len(keys) == 2, keys
        expected = {capture_hour_prefix("captures/", "v7", hour) for hour in hours(start, end)} | {
            feedback_hour_prefix("feedback/", hour) for hour in hours(start, end)
        }
        assert {key.rsplit("/", 1)[0] + "/" for key in keys} <= expected, keys
        reader = CaptureReader(s3, bucket, "captures/", "feedback/")
        assert list(reader.prediction_records("v7", sorted(hours(start, end)))) == [captured]
        assert [r.prediction_id for r in reader.feedback_records(sorted(hours(start, end)))] == [captured.prediction_id]
    finally:
        # The bucket's removal policy is DESTROY: CloudFormation deletes it once it is empty.
        for resource in cfn.describe_stack_resources(StackName=stack)["StackResources"]:
            if resource["ResourceType"] == "AWS::S3::Bucket" and resource.get("PhysicalResourceId"):
                name = resource["PhysicalResourceId"]
                for item in s3.list_objects_v2(Bucket=name).get("Contents", []):
                    s3.delete_object(Bucket=name, Key=item["Key"])
        cfn.delete_stack(StackName=stack)


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (
            {"MetadataExtractionQuery": "{model_version: .model_version | ascii_downcase}"},
            "only a JQ object of simple paths",
        ),
        ({"Prefix": "captures/v=!{partitionKeyFromLambda:model_version}/"}, "partitionKeyFromLambda is not supported"),
    ],
    ids=["jq-beyond-simple-paths", "partition-key-from-lambda"],
)
def test_what_cannot_be_evaluated_is_refused_at_creation(
    destination: Destination,
    declared_streams: dict[str, dict[str, Any]],
    local_cloud: Cloud,
    change: dict[str, str],
    reason: str,
) -> None:
    properties = copy.deepcopy(declared_streams["captures"])
    config = properties["ExtendedS3DestinationConfiguration"]
    if "Prefix" in change:
        config["Prefix"] = change["Prefix"]
    [extraction] = [p for p in config["ProcessingConfiguration"]["Processors"] if p["Type"] == "MetadataExtraction"]
    for parameter in extraction["Parameters"]:
        parameter["ParameterValue"] = change.get(parameter["ParameterName"], parameter["ParameterValue"])

    with pytest.raises(ClientError) as refused:
        destination.create(properties)

    assert refused.value.response["Error"]["Code"] == "InvalidArgumentException"
    assert reason in refused.value.response["Error"]["Message"]
    assert local_cloud.log_file is not None
    assert reason in local_cloud.log_file.read_text(errors="replace")
