"""CloudWatch metrics from a Lambda function's Embedded Metric Format (EMF) log lines, as CloudWatch Logs extracts
them on AWS.

On AWS a line a function writes to stdout that is an EMF document (a JSON object with ``_aws.CloudWatchMetrics``)
becomes CloudWatch metrics; LocalStack 2026.3.0 stores the line in CloudWatch Logs and nothing more. The local
Lambda executor hands each invocation's output to :func:`publish`, which puts the metrics to LocalStack's own
CloudWatch in the function's account and region, from one background thread (AWS extracts asynchronously too,
and the invocation does not wait for CloudWatch's database).

Extraction follows AWS's specification ("Specification: Embedded metric format", CloudWatch User Guide):

- a document is a line that is one JSON object, or one after Lambda's tab-separated metadata (``[INFO]\\t<time>\\t
  <request id>\\t{...}``); it is EMF when its ``_aws`` member is an object holding ``CloudWatchMetrics``;
- for each MetricDirective, each DimensionSet and each MetricDefinition: one metric datum in the directive's
  ``Namespace``, named ``Name``, with the set's dimensions (values from the root's members of those names), the
  values of the root member ``Name`` (a number, or an array of numbers: one sample each), ``Unit`` (``None`` when
  absent), ``StorageResolution`` (60 when absent) and the time ``_aws.Timestamp`` (milliseconds since the epoch).

An EMF document that breaks a rule yields no metric at all (AWS counts it as an EMF validation error and stores
only the log line); the reason is logged. The rules checked:

- ``_aws.Timestamp`` is an integer (milliseconds since 1970, up to the year 9999);
- ``CloudWatchMetrics`` is an array of objects, each with ``Namespace`` (a string of 1-255 characters),
  ``Dimensions`` (a non-empty array of DimensionSets, each an array of at most 30 names) and ``Metrics`` (an array
  of at most 100 objects with ``Name``, an optional ``Unit`` among CloudWatch's units, an optional
  ``StorageResolution`` of 1 or 60); names are strings of 1-255 characters;
- every referenced name is a member of the root node; a dimension's value is a string of 1-1024 characters; a
  metric's value is a number or an array of 1-100 numbers, each finite and within CloudWatch's range (+-2^360).

Members the specification does not define are ignored. Not checked: the size limit of a log event, and the age of
``Timestamp`` (CloudWatch accepts two weeks back to two hours ahead; LocalStack takes any).

Everything but :func:`publish` is standard library only, so it is unit-tested in the project's venv.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

LOG = logging.getLogger(__name__)

MAX_NAME_LENGTH: Final = 255  # namespace, dimension and metric names
MAX_DIMENSION_VALUE_LENGTH: Final = 1024
MAX_DIMENSIONS: Final = 30  # per DimensionSet
MAX_METRICS: Final = 100  # MetricDefinitions per directive
MAX_VALUES: Final = 100  # per metric member
MAX_MAGNITUDE: Final = 2.0**360  # PutMetricData rejects values beyond
MAX_TIMESTAMP_MS: Final = 253_402_300_799_999  # the end of year 9999, the last time a datetime holds
MAX_DATA_PER_REQUEST: Final = 1000  # PutMetricData's limit of MetricDatum per call
STORAGE_RESOLUTIONS: Final = (1, 60)
UNITS: Final = frozenset(
    {
        "Seconds",
        "Microseconds",
        "Milliseconds",
        "Bytes",
        "Kilobytes",
        "Megabytes",
        "Gigabytes",
        "Terabytes",
        "Bits",
        "Kilobits",
        "Megabits",
        "Gigabits",
        "Terabits",
        "Percent",
        "Count",
        "Bytes/Second",
        "Kilobytes/Second",
        "Megabytes/Second",
        "Gigabytes/Second",
        "Terabytes/Second",
        "Bits/Second",
        "Kilobits/Second",
        "Megabits/Second",
        "Gigabits/Second",
        "Terabits/Second",
        "Count/Second",
        "None",
    }
)


class InvalidEmf(ValueError):
    """An EMF document that breaks the specification: it yields no metrics."""


@dataclass(frozen=True)
class Datum:
    """One metric datum extracted from an EMF document."""

    namespace: str
    name: str
    dimensions: tuple[tuple[str, str], ...]  # (name, value), in the DimensionSet's order
    values: tuple[float, ...]
    unit: str
    storage_resolution: int
    timestamp_ms: int


@dataclass(frozen=True)
class Extraction:
    """What a function's output held: the metrics of its valid EMF documents, one problem per invalid one."""

    data: tuple[Datum, ...]
    problems: tuple[str, ...]


# -- parsing (pure) ----------------------------------------------------------------------------------------------


def emf_document(line: str) -> dict[str, Any] | None:
    """The EMF document a log line is, or None for an ordinary line."""
    if "_aws" not in line:  # most lines: no JSON parsing
        return None
    text = line.strip()
    if not text.startswith("{"):
        # Lambda's metadata before the document is tab-separated, and a JSON text holds no raw tab in its strings.
        start = text.find("\t{")
        if start < 0:
            return None
        text = text[start + 1 :]
    try:
        document = json.loads(text)
    except ValueError:
        return None
    if not isinstance(document, dict):
        return None
    metadata = document.get("_aws")
    if not isinstance(metadata, dict) or "CloudWatchMetrics" not in metadata:
        return None
    return document


def parse(document: Mapping[str, Any]) -> list[Datum]:
    """The metric data of one EMF document; :class:`InvalidEmf` when it breaks a rule (then it yields none)."""
    metadata = document["_aws"]
    timestamp = metadata.get("Timestamp")
    if not _is_number(timestamp) or not 0 <= timestamp <= MAX_TIMESTAMP_MS or timestamp != int(timestamp):
        raise InvalidEmf(f"_aws.Timestamp must be an integer number of milliseconds since 1970, not {timestamp!r}")
    directives = metadata["CloudWatchMetrics"]
    if not isinstance(directives, list):
        raise InvalidEmf("_aws.CloudWatchMetrics must be an array")
    data: list[Datum] = []
    for index, directive in enumerate(directives):
        where = f"_aws.CloudWatchMetrics[{index}]"
        if not isinstance(directive, dict):
            raise InvalidEmf(f"{where} must be an object")
        data += _directive(document, directive, int(timestamp), where)
    return data


def extract(output: str) -> Extraction:
    """The metrics of every EMF line in a function's output."""
    data: list[Datum] = []
    problems: list[str] = []
    # Lambda ends a log event at "\n" only (not at the other breaks str.splitlines knows, which JSON holds raw).
    for line in output.split("\n"):
        document = emf_document(line)
        if document is None:
            continue
        try:
            data += parse(document)
        except InvalidEmf as exc:
            problems.append(str(exc))
    return Extraction(tuple(data), tuple(problems))


def put_metric_data_requests(data: Iterable[Datum]) -> list[dict[str, Any]]:
    """The ``PutMetricData`` calls that publish the data: one namespace each, at most 1000 metric data each."""
    by_namespace: dict[str, list[dict[str, Any]]] = {}
    for datum in data:
        by_namespace.setdefault(datum.namespace, []).append(
            {
                "MetricName": datum.name,
                "Dimensions": [{"Name": name, "Value": value} for name, value in datum.dimensions],
                "Values": list(datum.values),
                "Unit": datum.unit,
                "StorageResolution": datum.storage_resolution,
                "Timestamp": datetime.fromtimestamp(datum.timestamp_ms / 1000, tz=UTC),
            }
        )
    return [
        {"Namespace": namespace, "MetricData": metric_data[start : start + MAX_DATA_PER_REQUEST]}
        for namespace, metric_data in by_namespace.items()
        for start in range(0, len(metric_data), MAX_DATA_PER_REQUEST)
    ]


def _directive(document: Mapping[str, Any], directive: Mapping[str, Any], timestamp: int, where: str) -> list[Datum]:
    namespace = _name(directive.get("Namespace"), f"{where}.Namespace")
    dimension_sets = directive.get("Dimensions")
    if not isinstance(dimension_sets, list) or not dimension_sets:
        raise InvalidEmf(f"{where}.Dimensions must be a non-empty array of DimensionSets")
    definitions = directive.get("Metrics")
    if not isinstance(definitions, list) or len(definitions) > MAX_METRICS:
        raise InvalidEmf(f"{where}.Metrics must be an array of at most {MAX_METRICS} MetricDefinitions")
    dimensions = [
        _dimensions(document, dimension_set, f"{where}.Dimensions[{index}]")
        for index, dimension_set in enumerate(dimension_sets)
    ]
    metrics = [
        _metric(document, definition, f"{where}.Metrics[{index}]") for index, definition in enumerate(definitions)
    ]
    return [
        Datum(namespace, name, dimension_values, values, unit, resolution, timestamp)
        for dimension_values in dimensions
        for name, values, unit, resolution in metrics
    ]


def _dimensions(document: Mapping[str, Any], dimension_set: Any, where: str) -> tuple[tuple[str, str], ...]:
    if not isinstance(dimension_set, list) or len(dimension_set) > MAX_DIMENSIONS:
        raise InvalidEmf(f"{where} must be an array of at most {MAX_DIMENSIONS} dimension names")
    dimensions: list[tuple[str, str]] = []
    for key in dimension_set:
        name = _name(key, f"a dimension name in {where}")
        value = _member(document, name, where)
        if not isinstance(value, str) or not 1 <= len(value) <= MAX_DIMENSION_VALUE_LENGTH:
            raise InvalidEmf(
                f"dimension {name!r} must be a string of 1-{MAX_DIMENSION_VALUE_LENGTH} characters, not {value!r}"
            )
        dimensions.append((name, value))
    return tuple(dimensions)


def _metric(document: Mapping[str, Any], definition: Any, where: str) -> tuple[str, tuple[float, ...], str, int]:
    if not isinstance(definition, dict):
        raise InvalidEmf(f"{where} must be an object")
    name = _name(definition.get("Name"), f"{where}.Name")
    unit = definition.get("Unit", "None")
    if unit not in UNITS:
        raise InvalidEmf(f"{where}.Unit {unit!r} is not a CloudWatch unit")
    resolution = definition.get("StorageResolution", 60)
    if not _is_number(resolution) or resolution not in STORAGE_RESOLUTIONS:
        raise InvalidEmf(f"{where}.StorageResolution must be 1 or 60, not {resolution!r}")
    value = _member(document, name, where)
    values = value if isinstance(value, list) else [value]
    if not 1 <= len(values) <= MAX_VALUES or not all(_is_metric_value(item) for item in values):
        raise InvalidEmf(f"metric {name!r} must be a number or an array of 1-{MAX_VALUES} numbers, not {value!r}")
    return name, tuple(float(item) for item in values), unit, int(resolution)


def _member(document: Mapping[str, Any], name: str, where: str) -> Any:
    # A reference names a member of the root node: "A.a" is the member "A.a", never "a" inside "A".
    if name not in document:
        raise InvalidEmf(f"{where} references {name!r}, which is not a member of the root node")
    return document[name]


def _name(value: Any, where: str) -> str:
    if not isinstance(value, str) or not 1 <= len(value) <= MAX_NAME_LENGTH:
        raise InvalidEmf(f"{where} must be a string of 1-{MAX_NAME_LENGTH} characters, not {value!r}")
    return value


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _is_metric_value(value: Any) -> bool:
    try:
        return _is_number(value) and math.isfinite(value) and abs(float(value)) <= MAX_MAGNITUDE
    except OverflowError:  # an integer too large for a float
        return False


# -- publishing (inside LocalStack) -------------------------------------------------------------------------------

# One thread: metrics are put in the order the functions wrote them.
_publisher = ThreadPoolExecutor(max_workers=1, thread_name_prefix="driftloop-emf")


def publish(output: str, *, account_id: str, region: str, source: str) -> None:
    """Extract the metrics of a function's output (``source``: its ARN, for the log) and put them to LocalStack's
    CloudWatch in the background."""
    try:
        extraction = extract(output)
        requests = put_metric_data_requests(extraction.data)
    except Exception:  # a bug here must not fail the invocation
        LOG.exception("%s: EMF log lines not read", source)
        return
    for problem in extraction.problems:
        LOG.warning("%s: an EMF log line yields no metrics: %s", source, problem)
    if requests:
        _publisher.submit(_put, requests, account_id, region, source)


def _put(requests: list[dict[str, Any]], account_id: str, region: str, source: str) -> None:
    from localstack.aws.connect import connect_to

    try:
        cloudwatch = connect_to(aws_access_key_id=account_id, region_name=region).cloudwatch
        for request in requests:
            cloudwatch.put_metric_data(**request)
    except Exception as exc:  # CloudWatch may be disabled in this instance; the invocation is not affected
        LOG.warning("%s: EMF metrics not published to CloudWatch: %s", source, exc)
