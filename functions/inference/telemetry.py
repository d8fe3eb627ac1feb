"""Structured JSON logs and CloudWatch metrics in the Embedded Metric Format (EMF), one line per event.

In Lambda, whatever goes to stdout lands in CloudWatch Logs, and a log line carrying an ``_aws`` block becomes
metrics as well: no API call, no agent. Each request writes exactly one line that is both its log record and
its metrics. Names, units, namespace and dimensions are the metrics contract's (``functions.common.metrics``),
with two dimension sets, (Service, ModelVersion) and (Service): per-version views for comparing models,
service-wide ones for alarms.

The log level (``POWERTOOLS_LOG_LEVEL``) filters the events (``event``, ``exception``); a line that carries
metrics (each request's, a refused model's) is always written, or the metric would be lost with it.
"""

from __future__ import annotations

import sys
import time
import traceback
from dataclasses import dataclass
from typing import Any, TextIO

import orjson

from functions.common.env import LOG_LEVELS
from functions.common.metrics import NAMESPACE, Dimension, InferenceMetric

SERVICE = Dimension.SERVICE.value
MODEL_VERSION = Dimension.MODEL_VERSION.value
DIMENSIONS = [[SERVICE, MODEL_VERSION], [SERVICE]]
NO_MODEL = "none"


@dataclass(slots=True)
class RequestLog:
    """What one request did; the app fills it in as the request goes and writes it once at the end."""

    method: str
    path: str
    request_id: str
    # The matched route (None: no route matched the path).
    route: str | None = None
    lambda_request_id: str | None = None
    status: int = 0
    latency_ms: float = 0.0
    model_version: str | None = None
    # Set once a prediction batch passed validation.
    batch_size: int | None = None
    capture_failures: int = 0
    # Set once a feedback body passed validation: its items, and how many of them could not be recorded.
    feedback: int | None = None
    feedback_failures: int = 0
    error: str | None = None


# Hand-written, not Powertools as in the monitor and workflow Lambdas: `make bench` measured the first request
# line at cold start, imports included, at 18-27 ms with this module and 60-85 ms with Powertools Logger + Metrics,
# which would add 42-57 ms (about 5%) to the inference cold start, and import botocore besides.
class Telemetry:
    def __init__(self, service: str, stream: TextIO | None = None, *, level: str = "INFO") -> None:
        self.service = service
        # None: whatever sys.stdout is at write time (the Lambda runtime's, or a test's capture).
        self._stream = stream
        # The events written: those of this level and above (LOG_LEVELS runs from the least severe).
        self._levels = frozenset(LOG_LEVELS[LOG_LEVELS.index(level) :])

    def request(self, log: RequestLog, *, predict: bool) -> None:
        metrics: dict[InferenceMetric, float] = {
            InferenceMetric.CLIENT_ERRORS: 1 if 400 <= log.status < 500 else 0,
            InferenceMetric.SERVER_ERRORS: 1 if log.status >= 500 else 0,
        }
        if predict:
            metrics[InferenceMetric.LATENCY] = round(log.latency_ms, 3)
            if log.batch_size is not None and log.status < 400:
                metrics[InferenceMetric.BATCH_SIZE] = log.batch_size
                metrics[InferenceMetric.PREDICTIONS] = log.batch_size
                metrics[InferenceMetric.CAPTURE_FAILURES] = log.capture_failures
        if log.feedback is not None:
            metrics[InferenceMetric.FEEDBACK] = log.feedback - log.feedback_failures
            metrics[InferenceMetric.FEEDBACK_FAILURES] = log.feedback_failures
        level = "ERROR" if log.status >= 500 else "WARNING" if log.status >= 400 else "INFO"
        fields = {
            "method": log.method,
            "route": log.route,
            "path": log.path,
            "status": log.status,
            "latency_ms": round(log.latency_ms, 3),
            "request_id": log.request_id,
            "lambda_request_id": log.lambda_request_id,
            "batch_size": log.batch_size,
            "feedback_items": log.feedback,
            "error": log.error,
        }
        self._write(self._emf("request", level, log.model_version, metrics, fields))

    def model_load_failed(self, what: str, exc: BaseException) -> None:
        fields = {"model": what, "exception": _describe(exc), "stack": _stack(exc)}
        self._write(self._emf("model load failed", "ERROR", None, {InferenceMetric.MODEL_LOAD_FAILURES: 1}, fields))

    def exception(self, message: str, exc: BaseException, **fields: Any) -> None:
        self.event("ERROR", message, exception=_describe(exc), stack=_stack(exc), **fields)

    def event(self, level: str, message: str, **fields: Any) -> None:
        if level in self._levels:
            self._write({"level": level, "message": message, SERVICE: self.service, "timestamp": time.time(), **fields})

    def _emf(
        self,
        message: str,
        level: str,
        version: str | None,
        metrics: dict[InferenceMetric, float],
        fields: dict[str, Any],
    ) -> dict[str, Any]:
        return {
            "_aws": {
                "Timestamp": time.time_ns() // 1_000_000,
                "CloudWatchMetrics": [
                    {
                        "Namespace": NAMESPACE,
                        "Dimensions": DIMENSIONS,
                        "Metrics": [{"Name": metric.value, "Unit": metric.unit.value} for metric in metrics],
                    }
                ],
            },
            "level": level,
            "message": message,
            SERVICE: self.service,
            MODEL_VERSION: version or NO_MODEL,
            **fields,
            **{metric.value: value for metric, value in metrics.items()},
        }

    def _write(self, document: dict[str, Any]) -> None:
        stream = self._stream or sys.stdout
        stream.write(orjson.dumps(document, option=orjson.OPT_APPEND_NEWLINE).decode())
        stream.flush()


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


def _stack(exc: BaseException) -> str:
    return "".join(traceback.format_exception(exc))
