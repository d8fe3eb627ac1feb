"""The data bucket's storage layout: the one place that knows the keys under each of its prefixes.

Firehose writes captures and feedback (``infra/constructs/capture_streams.py`` builds its prefix expressions with
the ``firehose_*`` functions below), the monitor reads them and writes its reports, Assemble reads them and writes
a run's training set, and the training program reads that set as its ``train`` channel.

- captures: ``<capture_prefix>model_version=<v>/date=<YYYY-MM-DD>/...``, the version taken from each record by
  Firehose dynamic partitioning;
- feedback: ``<feedback_prefix>date=<YYYY-MM-DD>/...``;
- what Firehose could not deliver or partition: ``<prefix>errors/<error type>/date=<YYYY-MM-DD>/...``, outside
  every partition the readers list;
- monitoring reports: ``<report_prefix><version>/<UTC time, e.g. 20261127T111717Z>.<json|png>``;
- assembled training sets: ``<assembled_prefix><version>/`` (``base/...`` and ``feedback/feedback.csv``) and its
  manifest beside it, ``<assembled_prefix><version>.manifest.json`` (so not in the ``train`` channel).

The date of a capture or feedback partition is the day Firehose *received* the record, which can be just after
the time in the record: a prediction served at 23:59:59 may land in the next day's partition, hence
:data:`ARRIVAL_SLACK` and :func:`capture_days`. Prefixes (from the deployment's config) end with ``/``.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

MODEL_VERSION_PARTITION = "model_version"
DATE_PARTITION = "date"
HOUR_PARTITION = "hour"
# How long after its own time a record may reach Firehose (and so the partition of the next day).
ARRIVAL_SLACK = timedelta(minutes=15)

# Firehose's expressions for the parts of a key it fills in when it delivers: the arrival day (as
# ``%Y-%m-%d`` writes it), the record's model version (extracted by the JQ query in CAPTURE_PARTITION_KEYS) and,
# for records it failed to deliver, the kind of failure.
FIREHOSE_ARRIVAL_DATE = "!{timestamp:yyyy-MM-dd}"
FIREHOSE_MODEL_VERSION = f"!{{partitionKeyFromQuery:{MODEL_VERSION_PARTITION}}}"
FIREHOSE_ERROR_TYPE = "!{firehose:error-output-type}"
# Dynamic partitioning keys of the capture stream: the partition's name -> the JQ path of the record field
# (functions.common.records.PredictionRecord.model_version) that fills it.
CAPTURE_PARTITION_KEYS = {MODEL_VERSION_PARTITION: ".model_version"}


def _day(day: date) -> str:
    return f"{day:%Y-%m-%d}"


# -- captures and feedback --------------------------------------------------------------------------------------


def _capture_partition(capture_prefix: str, model_version: str, day: str) -> str:
    return f"{capture_prefix}{MODEL_VERSION_PARTITION}={model_version}/{DATE_PARTITION}={day}/"


def _feedback_partition(feedback_prefix: str, day: str) -> str:
    return f"{feedback_prefix}{DATE_PARTITION}={day}/"


def capture_day_prefix(capture_prefix: str, model_version: str, day: date) -> str:
    """The captures of ``model_version`` that arrived on ``day``."""
    return _capture_partition(capture_prefix, model_version, _day(day))


def feedback_day_prefix(feedback_prefix: str, day: date) -> str:
    """The feedback that arrived on ``day``."""
    return _feedback_partition(feedback_prefix, _day(day))


def capture_model_version(capture_prefix: str, folder: str) -> str | None:
    """The model version of a folder listed right under ``capture_prefix`` (``<capture_prefix>model_version=<v>/``);
    None for any other folder (``errors/``)."""
    marker = f"{capture_prefix}{MODEL_VERSION_PARTITION}="
    version = folder.removeprefix(marker).removesuffix("/")
    if not folder.startswith(marker) or not folder.endswith("/") or not version or "/" in version:
        return None
    return version


def days_between(start: datetime, end: datetime) -> list[date]:
    """Every UTC day a window touches, oldest first: the day partitions that may hold its records."""
    first, last = start.astimezone(UTC).date(), end.astimezone(UTC).date()
    return [first + timedelta(days=offset) for offset in range((last - first).days + 1)]


def capture_days(served: datetime) -> tuple[date, ...]:
    """The capture partitions that may hold a prediction served at ``served``."""
    return tuple(days_between(served, served + ARRIVAL_SLACK))


def firehose_capture_prefix(capture_prefix: str) -> str:
    """The capture stream's S3 prefix expression: Firehose evaluates it to :func:`capture_day_prefix`."""
    return _capture_partition(capture_prefix, FIREHOSE_MODEL_VERSION, FIREHOSE_ARRIVAL_DATE)


def firehose_feedback_prefix(feedback_prefix: str) -> str:
    """The feedback stream's S3 prefix expression: Firehose evaluates it to :func:`feedback_day_prefix`."""
    return _feedback_partition(feedback_prefix, FIREHOSE_ARRIVAL_DATE)


def firehose_error_prefix(prefix: str) -> str:
    """The error output prefix expression of the stream writing below ``prefix``."""
    return f"{prefix}errors/{FIREHOSE_ERROR_TYPE}/{DATE_PARTITION}={FIREHOSE_ARRIVAL_DATE}/"


# -- monitoring reports -----------------------------------------------------------------------------------------


def report_key(report_prefix: str, version: str, time: datetime, suffix: str) -> str:
    """``<report_prefix><version>/<UTC time, e.g. 20261127T111717Z>.<suffix>``."""
    return f"{report_prefix}{version}/{time.astimezone(UTC):%Y%m%dT%H%M%SZ}.{suffix}"


# -- assembled training sets ------------------------------------------------------------------------------------
# A run's folder is the training program's ``train`` channel. ``base/`` holds copies of the training data prefix
# (data an operator put there: trusted); ``feedback/`` holds captured predictions joined with labels that API
# callers sent (untrusted: they may be wrong or malicious). A ``train`` channel without these folders (a local
# run on a plain directory) is all trusted data.

BASE_FOLDER = "base/"
FEEDBACK_FOLDER = "feedback/"
FEEDBACK_FILE = FEEDBACK_FOLDER + "feedback.csv"


def assembled_folder(assembled_prefix: str, version: str) -> str:
    return f"{assembled_prefix}{version}/"


def assembled_manifest_key(assembled_prefix: str, version: str) -> str:
    return f"{assembled_prefix}{version}.manifest.json"


def is_feedback(relative_path: str) -> bool:
    """Whether a file of the ``train`` channel (its path relative to the channel, ``/``-separated) is feedback."""
    return relative_path.startswith(FEEDBACK_FOLDER)
