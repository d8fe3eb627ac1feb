"""Firehose S3 delivery with AWS's custom prefixes and dynamic partitioning.

LocalStack 2026.3.0's Firehose provider (``services/firehose/provider.py``) writes every PutRecord/PutRecordBatch
call as one object under the *literal* ``Prefix`` plus ``YYYY/MM/DD/HH/``: a prefix such as
``captures/model_version=!{partitionKeyFromQuery:model_version}/hour=!{timestamp:yyyy-MM-dd-HH}/`` is never
evaluated, the ``MetadataExtraction`` processor is skipped with a warning, and nothing reaches
``ErrorOutputPrefix``. Readers of the layout AWS writes find nothing.

At LocalStack start (an ``on_infra_start`` hook) :func:`install` wraps five methods of ``FirehoseProvider``; the
evaluation itself is :mod:`driftloop_localstack.firehose_prefixes` (pure, unit-tested without LocalStack):

- ``create_delivery_stream`` / ``update_destination``: an (Extended)S3 destination whose prefixes or
  partitioning AWS would reject, or which the emulation cannot evaluate (a JQ query beyond an object of simple
  paths, ``partitionKeyFromLambda``, an unknown pattern letter ...), is refused with ``InvalidArgumentException``
  and the reason, also logged as an error;
- ``_put_records_to_s3_bucket``: when ``Prefix`` has expressions, the call's records are grouped by their
  evaluated prefix (timestamps at each record's ``ApproximateArrivalTimestamp``, partition keys from the
  ``MetadataExtractionQuery`` when dynamic partitioning is enabled) and each group is written by LocalStack's own
  method as one object, bytes concatenated as sent, named ``<evaluated prefix><stream>-<time>-<uuid>`` (no
  ``YYYY/MM/DD/HH/`` appended). Records whose partition keys cannot be extracted go under the evaluated
  ``ErrorOutputPrefix`` (``!{firehose:error-output-type}`` = ``processing-failed``) as AWS's failed-record JSON
  lines. A prefix without expressions keeps LocalStack's behaviour exactly;
- ``_get_s3_object_path``: the object name without the date directories, for the groups above only;
- ``_preprocess_records``: ``MetadataExtraction`` processors pass the records through (their query is evaluated
  at delivery) instead of logging "Unsupported Firehose processor type" on every call; the CloudWatch Logs
  processors (``Decompression``, ``CloudWatchLogProcessing``, ``AppendDelimiterToRecord``) unpack what a log
  subscription puts, as :mod:`driftloop_localstack.firehose_cloudwatch_logs` describes;
- ``CompressionFormat``: LocalStack ignores it (objects are always the bytes as sent). ``GZIP`` is applied to every
  object ``_put_records_to_s3_bucket`` writes, with or without expressions, and ``.gz`` appended to its name
  (unless the destination sets ``FileExtension``), as AWS does; formats the emulation cannot apply are refused
  when the stream is created.

Private internals: :func:`install` checks the exact ``localstack-core`` version, that ``firehose`` uses the default
provider, and the signatures of the methods it wraps; anything else aborts LocalStack's start-up.
"""

from __future__ import annotations

import base64
import functools
import inspect
import logging
import uuid
from collections.abc import Callable
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any, Final

from localstack.runtime import hooks

from driftloop_localstack.pinning import (
    provider_problems,
    refuse_unless_clean,
    version_problems,
)

from . import firehose_cloudwatch_logs as cloudwatch_logs
from .firehose_prefixes import Compression, ConfigurationError, DeliveryPlan, Record

LOG = logging.getLogger(__name__)

_MARKER: Final[str] = "driftloop_firehose_partitioning"

# Set while LocalStack's _put_records_to_s3_bucket writes one group whose prefix is already evaluated.
_EVALUATED_PREFIX: ContextVar[bool] = ContextVar("driftloop_evaluated_prefix", default=False)

_SIGNATURES: Final[dict[str, list[str]]] = {
    "_put_records_to_s3_bucket": ["self", "stream_name", "records", "s3_destination_description"],
    "_get_s3_object_path": ["self", "stream_name", "prefix", "file_extension"],
    "_preprocess_records": ["self", "processor", "records"],
}
# Parameters the API wrappers read (by name, through the original's signature).
_DESTINATION_PARAMETERS: Final[dict[str, tuple[str, ...]]] = {
    "create_delivery_stream": ("extended_s3_destination_configuration", "s3_destination_configuration"),
    "update_destination": ("extended_s3_destination_update", "s3_destination_update"),
}


def arrival_time(record: dict[str, Any], default: datetime) -> datetime:
    """A record's approximate arrival time: LocalStack stamps DirectPut records in epoch milliseconds."""
    value: Any = record.get("ApproximateArrivalTimestamp") or record.get("approximateArrivalTimestamp")
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    try:
        number = float(value)
    except (TypeError, ValueError):
        return default
    return datetime.fromtimestamp(number / 1000 if number > 1e11 else number, UTC)


def record_data(record: dict[str, Any]) -> bytes:
    return base64.b64decode(record.get("Data") or record.get("data") or b"")


def unpacked(kind: str, records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """LocalStack's records through one CloudWatch Logs processor (a record may become several, or none)."""
    result = []
    for record in records:
        try:
            pieces = cloudwatch_logs.process(kind, record_data(record))
        except cloudwatch_logs.ProcessingFailed as exc:
            LOG.error(
                "Firehose: a record failed %s and is dropped (AWS writes it under the error prefix): %s", kind, exc
            )
            continue
        fields = {name: value for name, value in record.items() if name not in ("Data", "data")}
        result += [{**fields, "Data": base64.b64encode(piece)} for piece in pieces]
    return result


def check_processors(destination: dict[str, Any]) -> None:
    """Refuse CloudWatch Logs processors configured as AWS refuses or as the emulation cannot apply."""
    for processor in (destination.get("ProcessingConfiguration") or {}).get("Processors") or []:
        parameters = {
            str(p.get("ParameterName")): str(p.get("ParameterValue")) for p in processor.get("Parameters") or []
        }
        try:
            cloudwatch_logs.check(str(processor.get("Type")), parameters)
        except ValueError as exc:
            raise ConfigurationError(str(exc)) from None


def object_name(stream_name: str, file_extension: str) -> str:
    """LocalStack's object name (``<stream>-YYYY-MM-DD-HH-MM-SS-<uuid>``), without its date directories."""
    return f"{stream_name}-{datetime.now(UTC):%Y-%m-%d-%H-%M-%S}-{uuid.uuid4()}{file_extension or ''}"


def _check_internals() -> Any:
    from localstack.services.firehose.provider import FirehoseProvider

    problems = version_problems()
    problems += provider_problems("firehose", ("default",))
    for name, parameters in _SIGNATURES.items():
        method = getattr(FirehoseProvider, name, None)
        if method is None or list(inspect.signature(method).parameters) != parameters:
            problems.append(f"FirehoseProvider.{name} changed")
    for name, needed in _DESTINATION_PARAMETERS.items():
        method = getattr(FirehoseProvider, name, None)
        found = list(inspect.signature(method).parameters) if method is not None else []
        if found[:2] != ["self", "context"] or not set(needed) <= set(found):
            problems.append(f"FirehoseProvider.{name} changed")
    refuse_unless_clean("driftloop_localstack.firehose_partitioning", problems)
    return FirehoseProvider


def _validating(name: str, original: Callable[..., Any]) -> Callable[..., Any]:
    """``original`` (an API operation), refusing a destination :class:`DeliveryPlan` cannot take."""
    from localstack.aws.api.firehose import InvalidArgumentException

    signature = inspect.signature(original)
    parameters = _DESTINATION_PARAMETERS[name]

    @functools.wraps(original)  # keeps the signature (_check_internals reads it again on a second install)
    def operation(self: Any, *args: Any, **kwargs: Any) -> Any:
        arguments = signature.bind_partial(self, *args, **kwargs).arguments
        stream = arguments.get("delivery_stream_name")
        for parameter in parameters:
            destination = arguments.get(parameter)
            if not destination:
                continue
            try:
                DeliveryPlan.from_destination(destination)
                Compression.from_destination(destination)
                check_processors(destination)
            except ConfigurationError as exc:
                LOG.error("Firehose: delivery stream %s refused (%s): %s", stream, name, exc)
                raise InvalidArgumentException(str(exc)) from None
        return original(self, *args, **kwargs)

    setattr(operation, _MARKER, True)
    return operation


def install() -> None:
    """Wrap ``FirehoseProvider``'s S3 delivery and stream creation (idempotent)."""
    provider_class = _check_internals()
    if getattr(provider_class._put_records_to_s3_bucket, _MARKER, False):
        return
    put_to_s3 = provider_class._put_records_to_s3_bucket
    object_path = provider_class._get_s3_object_path
    preprocess = provider_class._preprocess_records

    def _put_records_to_s3_bucket(
        self: Any, stream_name: str, records: list[dict[str, Any]], s3_destination_description: dict[str, Any]
    ) -> None:
        plan = DeliveryPlan.from_destination(s3_destination_description)
        compression = Compression.from_destination(s3_destination_description)
        if plan is None:
            if compression.compresses:
                body = compression.apply(b"".join(record_data(r) for r in records))
                records = [{"Data": base64.b64encode(body)}]
            description = {**s3_destination_description, "FileExtension": compression.extension}
            put_to_s3(self, stream_name, records, description)
            return
        now = datetime.now(UTC)
        batches = plan.batches([Record(record_data(r), arrival_time(r, now)) for r in records], now)
        for batch in batches:
            if batch.failed:
                LOG.warning(
                    "Firehose %s: %d record(s) not partitioned, written under %s: %s",
                    stream_name,
                    batch.records,
                    batch.prefix,
                    batch.error,
                )
            description = {
                **s3_destination_description,
                "Prefix": batch.prefix,
                "FileExtension": compression.extension,
            }
            token = _EVALUATED_PREFIX.set(True)
            try:
                put_to_s3(self, stream_name, [{"Data": base64.b64encode(compression.apply(batch.body))}], description)
            finally:
                _EVALUATED_PREFIX.reset(token)

    def _get_s3_object_path(self: Any, stream_name: str, prefix: str, file_extension: str) -> str:
        if _EVALUATED_PREFIX.get():
            return f"{prefix}{object_name(stream_name, file_extension)}"
        return str(object_path(self, stream_name, prefix, file_extension))

    def _preprocess_records(self: Any, processor: dict[str, Any], records: list[Any]) -> list[Any]:
        if processor.get("Type") == "MetadataExtraction":
            return records  # evaluated at delivery (_put_records_to_s3_bucket)
        if processor.get("Type") in cloudwatch_logs.PROCESSORS:
            return unpacked(str(processor["Type"]), [dict(record) for record in records])
        return list(preprocess(self, processor, records))

    setattr(_put_records_to_s3_bucket, _MARKER, True)
    provider_class._put_records_to_s3_bucket = _put_records_to_s3_bucket
    provider_class._get_s3_object_path = _get_s3_object_path
    provider_class._preprocess_records = _preprocess_records
    for name in _DESTINATION_PARAMETERS:
        setattr(provider_class, name, _validating(name, getattr(provider_class, name)))
    LOG.info("Firehose: S3 prefixes with expressions and dynamic partitioning are evaluated as AWS does")


@hooks.on_infra_start()
def install_firehose_partitioning() -> None:
    install()
