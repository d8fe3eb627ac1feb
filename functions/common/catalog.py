"""The Glue Data Catalog's description of captured predictions and feedback: what Athena queries read.

One Glue database per deployment holds two tables over the data bucket's JSON lines (gzip-compressed by Firehose),
in the layout :mod:`functions.common.layout` owns:

- ``captures``: partitioned by ``model_version`` (injected: a query names the versions it reads) and ``hour``;
- ``feedback``: partitioned by ``hour``.

``hour`` is the UTC hour Firehose received the record, ``yyyy-MM-dd-HH`` (e.g. ``2026-12-07-03``; the layout's
:func:`~functions.common.layout.hour_value` and :func:`~functions.common.layout.hour_values` give a query's
values), described by partition projection (no crawler, no partition to add): a query that bounds ``hour`` reads
only those hours' objects.
Every column is a string: the JSON text of a nested object (``features``, ``probabilities``, ``caller``) or of a
number (``value``), so a record with an odd value is read, never fails a query; the SQL casts (``TRY_CAST``) and
extracts (``json_extract_scalar``) what it needs. The CDK data stack creates the tables from this module, the
monitor's and Assemble's queries name their columns from it.
"""

from __future__ import annotations

from dataclasses import dataclass

from functions.common.layout import (
    HOUR_FORMAT,
    HOUR_PARTITION,
    MODEL_VERSION_PARTITION,
    capture_hour_prefix,
    feedback_hour_prefix,
)

CAPTURES_TABLE = "captures"
FEEDBACK_TABLE = "feedback"
# The first hour partition projection lists; queries always bound ``hour`` far above it.
PROJECTION_START = "2024-01-01-00"
JSON_SERDE = "org.openx.data.jsonserde.JsonSerDe"
INPUT_FORMAT = "org.apache.hadoop.mapred.TextInputFormat"
OUTPUT_FORMAT = "org.apache.hadoop.hive.ql.io.HiveIgnoreKeyTextOutputFormat"


@dataclass(frozen=True)
class Column:
    name: str
    comment: str
    type: str = "string"


CAPTURE_COLUMNS = (
    Column("prediction_id", "the prediction's id (functions.common.records)"),
    Column("time", "when it was served: ISO 8601 UTC"),
    Column("features", "the instance as the client sent it: a JSON object"),
    Column("label", "classification: the predicted label"),
    Column("probabilities", "classification: a JSON object, class -> probability"),
    Column("value", "regression: the predicted value (a JSON number's text)"),
    Column("request_id", "the API request that carried the instance"),
    Column("caller", "who sent the request: a JSON object (principal, api_key_id, source_ip, session)"),
)
FEEDBACK_COLUMNS = (
    Column("prediction_id", "the prediction the truth is about"),
    Column("time", "when the feedback was received: ISO 8601 UTC"),
    Column("label", "classification: the true label"),
    Column("value", "regression: the true value (a JSON number's text)"),
    Column("caller", "who sent the feedback: a JSON object (principal, api_key_id, source_ip, session)"),
)
MODEL_VERSION_KEY = Column(MODEL_VERSION_PARTITION, "the model version that served the prediction")
HOUR_KEY = Column(HOUR_PARTITION, f"the UTC hour Firehose received the record, {HOUR_FORMAT}")
CAPTURE_PARTITION_KEYS = (MODEL_VERSION_KEY, HOUR_KEY)
FEEDBACK_PARTITION_KEYS = (HOUR_KEY,)


# Partition projection's placeholders, put in the layout's own key builders: the location template is the layout.
_VERSION_PLACEHOLDER = f"${{{MODEL_VERSION_PARTITION}}}"
_HOUR_PLACEHOLDER = f"${{{HOUR_PARTITION}}}"


def capture_partition_template(capture_prefix: str) -> str:
    """The key prefix of any capture partition, with projection's placeholders for its keys."""
    return capture_hour_prefix(capture_prefix, _VERSION_PLACEHOLDER, _HOUR_PLACEHOLDER)


def feedback_partition_template(feedback_prefix: str) -> str:
    """The key prefix of any feedback partition, with projection's placeholder for its hour."""
    return feedback_hour_prefix(feedback_prefix, _HOUR_PLACEHOLDER)


def projection_parameters(location_template: str, *, injected_version: bool) -> dict[str, str]:
    """The table parameters of partition projection over ``location_template`` (``s3://.../${hour}/``)."""
    parameters = {
        "projection.enabled": "true",
        f"projection.{HOUR_PARTITION}.type": "date",
        f"projection.{HOUR_PARTITION}.format": HOUR_FORMAT,
        f"projection.{HOUR_PARTITION}.range": f"{PROJECTION_START},NOW",
        f"projection.{HOUR_PARTITION}.interval": "1",
        f"projection.{HOUR_PARTITION}.interval.unit": "HOURS",
        "storage.location.template": location_template,
        "classification": "json",
        "compressionType": "gzip",
    }
    if injected_version:
        parameters[f"projection.{MODEL_VERSION_PARTITION}.type"] = "injected"
    return parameters
