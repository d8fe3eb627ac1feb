"""CloudWatch metrics from Embedded Metric Format log lines on the local cloud (driftloop_localstack.emf).

The parsing is unit-tested here without LocalStack; the last test runs a Lambda on a real local cloud, where stock
LocalStack stores the EMF line in CloudWatch Logs and makes no metric of it (its ``list_metrics`` stays empty).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from driftloop_localstack.emf import Datum, emf_document, extract, parse, put_metric_data_requests

from localcloud import cloud
from tests.local.test_local_aws import create_function, invoke, managed
from tests.plugins.local_cloud import unique

TIMESTAMP_MS = 1_780_000_000_000


def emf(directives: list[dict[str, Any]], **members: Any) -> dict[str, Any]:
    return {"_aws": {"Timestamp": TIMESTAMP_MS, "CloudWatchMetrics": directives}, **members}


def directive(
    metrics: list[dict[str, Any]], dimensions: list[list[str]] | None = None, namespace: str = "driftloop"
) -> dict[str, Any]:
    return {"Namespace": namespace, "Dimensions": dimensions or [["Service"]], "Metrics": metrics}


def line(document: dict[str, Any]) -> str:
    return json.dumps(document)


def only_problem(document: dict[str, Any]) -> str:
    extraction = extract(line(document))
    assert extraction.data == ()
    assert len(extraction.problems) == 1
    return extraction.problems[0]


# -- which lines are EMF documents --------------------------------------------------------------------------------


def test_ordinary_log_lines_are_not_emf_documents() -> None:
    for text in (
        "START RequestId: 1 Version: $LATEST",
        "plain text mentioning _aws",
        '{"level": "INFO", "message": "no metadata"}',
        '{"_aws": "a string"}',
        '{"_aws": {"Timestamp": 1}}',
        '["_aws"]',
        '{"_aws": {"CloudWatchMetrics": []}} trailing text',
    ):
        assert emf_document(text) is None, text


def test_a_document_after_lambdas_tab_separated_metadata_is_emf() -> None:
    document = emf([directive([{"Name": "Latency"}])], Service="svc", Latency=1)
    prefixed = f"[INFO]\t2026-05-29T10:00:00.000Z\trequest-id\t{line(document)}\r"
    assert emf_document(prefixed) == document


# -- extraction ---------------------------------------------------------------------------------------------------


def test_each_dimension_set_gives_each_metric_its_own_datum_with_the_members_values() -> None:
    document = emf(
        [
            directive(
                [{"Name": "Latency", "Unit": "Milliseconds"}, {"Name": "Predictions", "Unit": "Count"}],
                dimensions=[["Service", "ModelVersion"], ["Service"], []],
            )
        ],
        Service="driftloop-dev-inference",
        ModelVersion="v7",
        Latency=12.5,
        Predictions=3,
        request_id="not a dimension",
    )
    data = parse(document)
    service = ("Service", "driftloop-dev-inference")
    assert [(datum.name, datum.dimensions) for datum in data] == [
        ("Latency", (service, ("ModelVersion", "v7"))),
        ("Predictions", (service, ("ModelVersion", "v7"))),
        ("Latency", (service,)),
        ("Predictions", (service,)),
        ("Latency", ()),
        ("Predictions", ()),
    ]
    assert data[0] == Datum(
        namespace="driftloop",
        name="Latency",
        dimensions=(service, ("ModelVersion", "v7")),
        values=(12.5,),
        unit="Milliseconds",
        storage_resolution=60,
        timestamp_ms=TIMESTAMP_MS,
    )
    assert data[1].values == (3.0,)
    assert data[1].unit == "Count"


def test_an_array_member_gives_one_value_per_element() -> None:
    document = emf([directive([{"Name": "FeatureDrift"}])], Service="svc", FeatureDrift=[0.1, 0, 2])
    (datum,) = parse(document)
    assert datum.values == (0.1, 0.0, 2.0)


def test_unit_defaults_to_none_and_storage_resolution_to_sixty() -> None:
    document = emf(
        [directive([{"Name": "Plain"}, {"Name": "Fine", "Unit": "Percent", "StorageResolution": 1}])],
        Service="svc",
        Plain=1,
        Fine=2,
    )
    plain, fine = parse(document)
    assert (plain.unit, plain.storage_resolution) == ("None", 60)
    assert (fine.unit, fine.storage_resolution) == ("Percent", 1)


def test_every_directive_is_extracted_with_its_own_namespace() -> None:
    document = emf(
        [
            directive([{"Name": "A"}], dimensions=[["Service"]], namespace="first"),
            directive([{"Name": "B"}, {"Name": "A"}], dimensions=[["Feature"]], namespace="second"),
        ],
        Service="svc",
        Feature="age",
        A=1,
        B=2,
    )
    assert [(datum.namespace, datum.name, datum.dimensions) for datum in parse(document)] == [
        ("first", "A", (("Service", "svc"),)),
        ("second", "B", (("Feature", "age"),)),
        ("second", "A", (("Feature", "age"),)),
    ]


def test_members_the_specification_does_not_define_are_ignored() -> None:
    document = emf([{**directive([{"Name": "A", "Extra": True}]), "Extra": 1}], Service="svc", A=1)
    document["_aws"]["LogGroupName"] = "ignored"
    assert [datum.name for datum in parse(document)] == ["A"]


def test_a_reference_names_a_root_member_never_a_nested_one() -> None:
    nested = emf([directive([{"Name": "A.a"}])], Service="svc", A={"a": 1})
    assert "'A.a'" in only_problem(nested)
    dotted = emf([directive([{"Name": "A.a"}])], Service="svc", **{"A.a": 1})
    assert parse(dotted)[0].values == (1.0,)


def test_every_emf_line_of_an_output_is_extracted_and_other_lines_are_skipped() -> None:
    first = emf([directive([{"Name": "A"}])], Service="svc", A=1)
    second = emf([directive([{"Name": "B"}])], Service="svc", B=2)
    output = "\n".join(["START RequestId: r", line(first), "hello", line(second), "END RequestId: r"])
    extraction = extract(output)
    assert [datum.name for datum in extraction.data] == ["A", "B"]
    assert extraction.problems == ()


def test_lines_end_at_newlines_only() -> None:
    document = emf([directive([{"Name": "A"}])], Service="line\u2028separator", A=1)
    extraction = extract(json.dumps(document, ensure_ascii=False) + "\r\n")
    assert [datum.dimensions for datum in extraction.data] == [(("Service", "line\u2028separator"),)]


# -- invalid documents yield nothing ------------------------------------------------------------------------------


def test_a_missing_metric_member_invalidates_the_whole_document() -> None:
    document = emf(
        [directive([{"Name": "Present"}]), directive([{"Name": "Missing"}], namespace="other")],
        Service="svc",
        Present=1,
    )
    assert "'Missing'" in only_problem(document)


def test_a_missing_dimension_member_invalidates_the_document() -> None:
    document = emf([directive([{"Name": "A"}], dimensions=[["Service", "ModelVersion"]])], Service="svc", A=1)
    assert "'ModelVersion'" in only_problem(document)


@pytest.mark.parametrize(
    "value",
    ["1", True, None, {"v": 1}, [], [1, "2"], [1] * 101, float("nan"), float("inf"), 2.0**361, 10**400],
    ids=repr,
)
def test_a_metric_value_must_be_a_number_or_an_array_of_numbers(value: Any) -> None:
    document = emf([directive([{"Name": "A"}])], Service="svc", A=value)
    assert "'A' must be a number or an array of 1-100 numbers" in only_problem(document)


@pytest.mark.parametrize("value", [1, "", "x" * 1025, ["svc"]], ids=repr)
def test_a_dimension_value_must_be_a_string_of_at_most_1024_characters(value: Any) -> None:
    document = emf([directive([{"Name": "A"}])], Service=value, A=1)
    assert "'Service' must be a string" in only_problem(document)


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"Timestamp": None}, "Timestamp"),
        ({"Timestamp": "1780000000000"}, "Timestamp"),
        ({"Timestamp": 1.5}, "Timestamp"),
        ({"Timestamp": -1}, "Timestamp"),
        ({"Timestamp": 10**20}, "Timestamp"),
        ({"CloudWatchMetrics": {"Namespace": "n"}}, "must be an array"),
        ({"CloudWatchMetrics": ["directive"]}, "must be an object"),
    ],
    ids=repr,
)
def test_invalid_metadata_invalidates_the_document(change: dict[str, Any], reason: str) -> None:
    document = emf([directive([{"Name": "A"}])], Service="svc", A=1)
    document["_aws"].update(change)
    assert reason in only_problem(document)


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"Namespace": ""}, "Namespace"),
        ({"Namespace": None}, "Namespace"),
        ({"Namespace": "n" * 256}, "Namespace"),
        ({"Dimensions": []}, "Dimensions must be a non-empty array"),
        ({"Dimensions": ["Service"]}, "Dimensions[0] must be an array"),
        ({"Dimensions": [[f"D{index}" for index in range(31)]]}, "at most 30 dimension names"),
        ({"Dimensions": [[7]]}, "a dimension name"),
        ({"Metrics": {"Name": "A"}}, "Metrics must be an array"),
        ({"Metrics": [{"Name": "A"}] * 101}, "at most 100 MetricDefinitions"),
        ({"Metrics": ["A"]}, "Metrics[0] must be an object"),
        ({"Metrics": [{"Unit": "Count"}]}, "Metrics[0].Name"),
        ({"Metrics": [{"Name": "A", "Unit": "Furlongs"}]}, "'Furlongs' is not a CloudWatch unit"),
        ({"Metrics": [{"Name": "A", "StorageResolution": 30}]}, "StorageResolution must be 1 or 60"),
        ({"Metrics": [{"Name": "A", "StorageResolution": True}]}, "StorageResolution must be 1 or 60"),
    ],
    ids=repr,
)
def test_an_invalid_directive_invalidates_the_document(change: dict[str, Any], reason: str) -> None:
    document = emf([{**directive([{"Name": "A"}]), **change}], Service="svc", A=1)
    assert reason in only_problem(document)


def test_an_invalid_line_does_not_stop_the_next_ones() -> None:
    invalid = emf([directive([{"Name": "Missing"}])], Service="svc")
    valid = emf([directive([{"Name": "A"}])], Service="svc", A=1)
    extraction = extract(f"{line(invalid)}\n{line(valid)}\n")
    assert [datum.name for datum in extraction.data] == ["A"]
    assert len(extraction.problems) == 1


# -- PutMetricData requests ---------------------------------------------------------------------------------------


def test_data_become_put_metric_data_requests_per_namespace() -> None:
    document = emf(
        [
            directive([{"Name": "Latency", "Unit": "Milliseconds"}], dimensions=[["Service", "ModelVersion"]]),
            directive([{"Name": "Drift", "StorageResolution": 1}], namespace="other"),
        ],
        Service="svc",
        ModelVersion="v1",
        Latency=[1, 2],
        Drift=0.5,
    )
    assert put_metric_data_requests(parse(document)) == [
        {
            "Namespace": "driftloop",
            "MetricData": [
                {
                    "MetricName": "Latency",
                    "Dimensions": [{"Name": "Service", "Value": "svc"}, {"Name": "ModelVersion", "Value": "v1"}],
                    "Values": [1.0, 2.0],
                    "Unit": "Milliseconds",
                    "StorageResolution": 60,
                    "Timestamp": datetime.fromtimestamp(TIMESTAMP_MS / 1000, tz=UTC),
                }
            ],
        },
        {
            "Namespace": "other",
            "MetricData": [
                {
                    "MetricName": "Drift",
                    "Dimensions": [{"Name": "Service", "Value": "svc"}],
                    "Values": [0.5],
                    "Unit": "None",
                    "StorageResolution": 1,
                    "Timestamp": datetime.fromtimestamp(TIMESTAMP_MS / 1000, tz=UTC),
                }
            ],
        },
    ]


def test_a_request_holds_at_most_a_thousand_metric_data() -> None:
    datum = Datum("driftloop", "A", (), (1.0,), "Count", 60, TIMESTAMP_MS)
    requests = put_metric_data_requests([datum] * 2500)
    assert [len(request["MetricData"]) for request in requests] == [1000, 1000, 500]
    assert {request["Namespace"] for request in requests} == {"driftloop"}


# -- on a real local cloud ----------------------------------------------------------------------------------------

HANDLER = """
import json, time


def handler(event, context):
    now = int(time.time() * 1000)
    metrics = [{"Name": "Latency", "Unit": "Milliseconds"}, {"Name": "Predictions", "Unit": "Count"}]
    directive = {"Namespace": event["namespace"], "Dimensions": [["Service", "ModelVersion"], ["Service"]],
                 "Metrics": metrics}
    # Invalid (no "Latency" member): AWS extracts nothing from it.
    invalid = {"_aws": {"Timestamp": now, "CloudWatchMetrics": [{**directive, "Namespace": event["invalid"]}]},
               "Service": "svc", "ModelVersion": "v1", "Predictions": 1}
    print(json.dumps(invalid))
    print(json.dumps({"_aws": {"Timestamp": now, "CloudWatchMetrics": [directive]},
                      "Service": "svc", "ModelVersion": "v1", "Latency": [10, 30], "Predictions": 4}))
    return {"printed": 2}
"""

Client = Callable[..., Any]


@pytest.mark.integration
def test_emf_lines_a_lambda_prints_become_metrics_in_the_local_cloudwatch(
    local_cloud: cloud.Cloud, local_client: Client
) -> None:
    managed(local_cloud)
    namespace, invalid = unique("emf"), unique("emf-invalid")
    function = create_function(local_client, {"app.py": HANDLER})
    result, error, _ = invoke(local_client, function, {"namespace": namespace, "invalid": invalid})
    assert (result, error) == ({"printed": 2}, None)

    cloudwatch = local_client("cloudwatch")
    metrics: list[dict[str, Any]] = []
    deadline = time.monotonic() + 30
    while len(metrics) < 4 and time.monotonic() < deadline:
        metrics = cloudwatch.list_metrics(Namespace=namespace)["Metrics"]
        time.sleep(0.2)
    found = {
        (metric["MetricName"], tuple(sorted((item["Name"], item["Value"]) for item in metric["Dimensions"])))
        for metric in metrics
    }
    service, version = ("Service", "svc"), ("ModelVersion", "v1")
    assert found == {
        ("Latency", (version, service)),
        ("Latency", (service,)),
        ("Predictions", (version, service)),
        ("Predictions", (service,)),
    }
    # Both lines are one invocation's output, published in one go: the invalid one's metrics would be here by now.
    assert cloudwatch.list_metrics(Namespace=invalid)["Metrics"] == []

    now = datetime.now(UTC)
    # Both dimensions: LocalStack's statistics match any metric holding the dimensions asked for (AWS: exactly those).
    statistics = cloudwatch.get_metric_statistics(
        Namespace=namespace,
        MetricName="Latency",
        Dimensions=[{"Name": "Service", "Value": "svc"}, {"Name": "ModelVersion", "Value": "v1"}],
        StartTime=now - timedelta(minutes=10),
        EndTime=now + timedelta(minutes=10),
        Period=60,
        Statistics=["SampleCount", "Sum", "Maximum"],
        Unit="Milliseconds",
    )
    (point,) = statistics["Datapoints"]
    assert (point["SampleCount"], point["Sum"], point["Maximum"]) == (2, 40, 30)
