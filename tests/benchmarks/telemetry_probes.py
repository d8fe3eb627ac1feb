"""One request's log and metrics line, written two ways, for the benchmark to time in a fresh process.

- ``emf``: the inference Lambda's own telemetry module (hand-written EMF, orjson);
- ``powertools``: AWS Lambda Powertools' Logger and Metrics, the style of the monitor and workflow Lambdas.

Each probe imports what it needs when called, so that the import is part of the time. The benchmark imports
:data:`APP_STACK` first, clock stopped: the app imports it whatever writes its logs, and the standard library
modules it brings (logging, typing, enum, ...) would otherwise be charged to the probe that happens to import
them first.
"""

from __future__ import annotations

from collections.abc import Callable

APP_STACK = ("mangum", "starlette.applications", "starlette.routing", "onnxruntime", "orjson")
SERVICE = "driftloop-bench-inference"
VERSION = "v20260101-000000-abcdef"
STATUS, LATENCY_MS, BATCH = 200, 1.5, 1


def emf() -> None:
    from functions.inference.telemetry import RequestLog, Telemetry

    log = RequestLog("POST", "/predict", "request-1", route="/predict", status=STATUS, latency_ms=LATENCY_MS)
    log.model_version, log.batch_size = VERSION, BATCH
    Telemetry(SERVICE).request(log, predict=True)


def powertools() -> None:
    from aws_lambda_powertools import Logger, Metrics

    from functions.common.metrics import NAMESPACE, Dimension, InferenceMetric

    logger = Logger(service=SERVICE)
    metrics = Metrics(namespace=NAMESPACE)
    metrics.add_dimension(name=Dimension.SERVICE, value=SERVICE)
    metrics.add_dimension(name=Dimension.MODEL_VERSION, value=VERSION)
    values = {
        InferenceMetric.CLIENT_ERRORS: 0,
        InferenceMetric.SERVER_ERRORS: 0,
        InferenceMetric.LATENCY: LATENCY_MS,
        InferenceMetric.BATCH_SIZE: BATCH,
        InferenceMetric.PREDICTIONS: BATCH,
        InferenceMetric.CAPTURE_FAILURES: 0,
    }
    for metric, value in values.items():
        metrics.add_metric(name=metric, unit=metric.unit.value, value=value)
    logger.info("request", extra={"method": "POST", "route": "/predict", "status": STATUS, "model_version": VERSION})
    metrics.flush_metrics()


PROBES: dict[str, Callable[[], None]] = {"emf": emf, "powertools": powertools}
