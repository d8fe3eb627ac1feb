"""The data bucket's storage layout: the one place that knows the keys under each of its prefixes.

Firehose writes captures and feedback (``infra/constructs/capture_streams.py`` builds its prefix expressions with
the ``firehose_*`` functions below), the monitor reads them and writes its reports, Assemble reads them and writes
a run's training set, and the training program reads that set as its ``train`` channel.

- captures: ``<capture_prefix>model_version=<v>/hour=<YYYY-MM-DD-HH>/...``, the version taken from each record
  by Firehose dynamic partitioning;
- feedback: ``<feedback_prefix>hour=<YYYY-MM-DD-HH>/...``;
- what Firehose could not deliver or partition: ``<prefix>errors/<error type>/hour=<YYYY-MM-DD-HH>/...``, outside
  every partition the readers list (and the Glue tables of :mod:`functions.common.catalog` project);
- Athena's query results: under ``<athena_results_prefix>``, the deployment's workgroup's output location
  (:func:`s3_location`), where Athena names each query's files;
- monitoring reports: ``<report_prefix><version>/<UTC time, e.g. 20261127T111717Z>.<json|png>``;
- assembled training sets: ``<assembled_prefix><version>/`` (``base/...`` and ``feedback/feedback.csv``) and its
  manifest beside it, ``<assembled_prefix><version>.manifest.json`` (so not in the ``train`` channel);
- each run's holdout, which the workflow keeps from the training job, and the Evaluate step's verdict on it:
  ``<holdout_prefix><version>/rows/{base,feedback}/...`` (CSV) and ``<holdout_prefix><version>/evaluation.json``.

Captures and feedback are JSON lines, gzip-compressed by Firehose (objects named ``....gz``). The hour of a
partition (:func:`hour_value`, ``yyyy-MM-dd-HH`` in UTC) is the hour Firehose *received* the record, which can be
just after the time in the record: a prediction served at 10:59:59 may land in the next hour's partition, hence
:data:`ARRIVAL_SLACK`. Prefixes (from the deployment's config) end with ``/``.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

MODEL_VERSION_PARTITION = "model_version"
HOUR_PARTITION = "hour"
# The hour partition's value: Java's pattern (Firehose's !{timestamp:...} and Glue partition projection) and the
# same as Python's strftime.
HOUR_FORMAT = "yyyy-MM-dd-HH"
_HOUR_STRFTIME = "%Y-%m-%d-%H"
# How long after its own time a record may reach Firehose (and so the partition of the next hour).
ARRIVAL_SLACK = timedelta(minutes=15)

# Firehose's expressions for the parts of a key it fills in when it delivers: the arrival hour (as
# :func:`hour_value` writes it), the record's model version (extracted by the JQ query in CAPTURE_PARTITION_KEYS)
# and, for records it failed to deliver, the kind of failure.
FIREHOSE_ARRIVAL_HOUR = f"!{{timestamp:{HOUR_FORMAT}}}"
FIREHOSE_MODEL_VERSION = f"!{{partitionKeyFromQuery:{MODEL_VERSION_PARTITION}}}"
FIREHOSE_ERROR_TYPE = "!{firehose:error-output-type}"
# Dynamic partitioning keys of the capture stream: the partition's name -> the JQ path of the record field
# (functions.common.records.PredictionRecord.model_version) that fills it.
CAPTURE_PARTITION_KEYS = {MODEL_VERSION_PARTITION: ".model_version"}


def hour_value(moment: datetime) -> str:
    """The ``hour`` partition value holding records received at ``moment``: its UTC hour, ``yyyy-MM-dd-HH``."""
    return moment.astimezone(UTC).strftime(_HOUR_STRFTIME)


def hour_values(start: datetime, end: datetime) -> list[str]:
    """Every ``hour`` value from ``start``'s hour to ``end``'s, oldest first: the partitions a window touches."""
    first = start.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    last = end.astimezone(UTC)
    hours = []
    while first <= last:
        hours.append(hour_value(first))
        first += timedelta(hours=1)
    return hours


# -- captures and feedback --------------------------------------------------------------------------------------


def capture_hour_prefix(capture_prefix: str, model_version: str, hour: str) -> str:
    """The captures of ``model_version`` that arrived in ``hour`` (an :func:`hour_value`, or the expression that
    stands for one in a Firehose prefix or a projection template)."""
    return f"{capture_prefix}{MODEL_VERSION_PARTITION}={model_version}/{HOUR_PARTITION}={hour}/"


def feedback_hour_prefix(feedback_prefix: str, hour: str) -> str:
    """The feedback that arrived in ``hour`` (an :func:`hour_value`, or the expression that stands for one)."""
    return f"{feedback_prefix}{HOUR_PARTITION}={hour}/"


def capture_model_version(capture_prefix: str, folder: str) -> str | None:
    """The model version of a folder listed right under ``capture_prefix`` (``<capture_prefix>model_version=<v>/``);
    None for any other folder (``errors/``)."""
    marker = f"{capture_prefix}{MODEL_VERSION_PARTITION}="
    version = folder.removeprefix(marker).removesuffix("/")
    if not folder.startswith(marker) or not folder.endswith("/") or not version or "/" in version:
        return None
    return version


def firehose_capture_prefix(capture_prefix: str) -> str:
    """The capture stream's S3 prefix expression: Firehose evaluates it to :func:`capture_hour_prefix`."""
    return capture_hour_prefix(capture_prefix, FIREHOSE_MODEL_VERSION, FIREHOSE_ARRIVAL_HOUR)


def firehose_feedback_prefix(feedback_prefix: str) -> str:
    """The feedback stream's S3 prefix expression: Firehose evaluates it to :func:`feedback_hour_prefix`."""
    return feedback_hour_prefix(feedback_prefix, FIREHOSE_ARRIVAL_HOUR)


def firehose_error_prefix(prefix: str) -> str:
    """The error output prefix expression of the stream writing below ``prefix``."""
    return f"{prefix}errors/{FIREHOSE_ERROR_TYPE}/{HOUR_PARTITION}={FIREHOSE_ARRIVAL_HOUR}/"


def s3_location(bucket: str, prefix: str) -> str:
    """The ``s3://`` URL of a prefix of ``bucket``, as Glue table locations and Athena output locations take it."""
    return f"s3://{bucket}/{prefix}"


# -- monitoring reports -----------------------------------------------------------------------------------------


def split_s3_uri(uri: str) -> tuple[str, str]:
    """``s3://bucket/key`` as (bucket, key)."""
    if not uri.startswith("s3://") or "/" not in uri[5:]:
        raise ValueError(f"not an s3://bucket/key URI: {uri!r}")
    bucket, key = uri[5:].split("/", 1)
    return bucket, key


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


def remote_channel_folder(assembled_prefix: str, run: str, channel: str) -> str:
    """A channel of a ``driftloop train --remote`` job: beside the runs' assembled sets, where the training role
    reads (``run`` starts with the job prefix, so it is never a version)."""
    return f"{assembled_prefix}{run}/{channel}/"


def is_feedback(relative_path: str) -> bool:
    """Whether a file of the ``train`` channel (its path relative to the channel, ``/``-separated) is feedback."""
    return relative_path.startswith(FEEDBACK_FOLDER)


# -- holdouts ---------------------------------------------------------------------------------------------------
# The rows the HoldOut step takes out of a run's assembled set, in the same ``base/`` and ``feedback/`` folders
# (so :func:`is_feedback` tells them apart), and the Evaluate step's evaluation of both models on them. Outside
# the assembled prefix: the training job's role cannot read them.

HOLDOUT_ROWS_FOLDER = "rows/"
HOLDOUT_EVALUATION_FILE = "evaluation.json"


def holdout_rows_folder(holdout_prefix: str, version: str) -> str:
    return f"{holdout_prefix}{version}/{HOLDOUT_ROWS_FOLDER}"


def holdout_evaluation_key(holdout_prefix: str, version: str) -> str:
    return f"{holdout_prefix}{version}/{HOLDOUT_EVALUATION_FILE}"
