"""What the API does, free of HTTP and Lambda: predict, describe the model, report health.

Each served prediction gets an id (32 hex digits, 128 random bits) that the client keeps to send ground
truth later, and goes through the capture sink once; a capture failure is logged and counted, and the
client still gets its predictions.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime
from typing import Any

from functions.inference import openapi
from functions.inference.capture import CaptureSink, PredictionRecord
from functions.inference.model import Classification, Model
from functions.inference.sources import ModelProvider
from functions.inference.telemetry import RequestLog, Telemetry


class InferenceService:
    def __init__(
        self, provider: ModelProvider, sink: CaptureSink, telemetry: Telemetry, max_instances: int, max_body_bytes: int
    ) -> None:
        self._provider = provider
        self._sink = sink
        self._telemetry = telemetry
        self.max_instances = max_instances
        self.max_body_bytes = max_body_bytes

    def model(self, log: RequestLog) -> Model:
        model = self._provider.current()
        log.model_version = model.version
        return model

    def predict(self, body: bytes, log: RequestLog) -> dict[str, Any]:
        model = self.model(log)
        batch = model.schema.parse(body, self.max_instances)
        log.batch_size = len(batch.instances)
        result = model.predict(batch.columns)
        ids = prediction_ids(len(batch.instances))
        served_at = datetime.now(UTC).isoformat(timespec="milliseconds")
        version = model.version
        predictions: list[dict[str, Any]]
        if isinstance(result, Classification):
            classes = model.metadata.classes
            probabilities = [dict(zip(classes, row, strict=True)) for row in result.probabilities]
            predictions = [
                {"prediction_id": pid, "label": label, "probabilities": probs}
                for pid, label, probs in zip(ids, result.labels, probabilities, strict=True)
            ]
            records = [
                PredictionRecord(
                    pid, served_at, version, features, label=label, probabilities=probs, request_id=log.request_id
                )
                for pid, features, label, probs in zip(ids, batch.instances, result.labels, probabilities, strict=True)
            ]
        else:
            predictions = [
                {"prediction_id": pid, "value": value} for pid, value in zip(ids, result.values, strict=True)
            ]
            records = [
                PredictionRecord(pid, served_at, version, features, value=value, request_id=log.request_id)
                for pid, features, value in zip(ids, batch.instances, result.values, strict=True)
            ]
        for index, warnings in batch.warnings.items():
            predictions[index]["warnings"] = warnings
        log.capture_failures = self._capture(records)
        return {"model_version": version, "predictions": predictions}

    def _capture(self, records: list[PredictionRecord]) -> int:
        """Hand the records to the sink; returns how many were lost."""
        try:
            self._sink.capture(records)
        except Exception as exc:
            self._telemetry.exception(
                "capture failed; the predictions were served but not captured",
                exc,
                request_id=records[0].request_id,
                lost=len(records),
            )
            return len(records)
        return 0

    def health(self, log: RequestLog) -> dict[str, Any]:
        model = self.model(log)
        return {"status": "ok", "model_version": model.version, "task": model.task, "loaded_at": model.loaded_at}

    def describe(self, log: RequestLog) -> dict[str, Any]:
        model = self.model(log)
        metadata = model.metadata
        return {
            "version": model.version,
            "task": metadata.task,
            "target": metadata.target,
            "algorithm": metadata.algorithm,
            "features": [feature.to_dict() for feature in metadata.features],
            "classes": list(metadata.classes),
            "primary_metric": metadata.primary_metric,
            "metrics": metadata.metrics,
            "created_at": metadata.created_at,
            "loaded_at": model.loaded_at,
        }

    def openapi(self, log: RequestLog) -> dict[str, Any]:
        return openapi.document(self.model(log), self.max_instances, self.max_body_bytes)


def prediction_ids(count: int) -> list[str]:
    # One system call for the whole batch: uuid4() per row costs ~2 us each.
    digits = os.urandom(16 * count).hex()
    return [digits[start : start + 32] for start in range(0, 32 * count, 32)]
