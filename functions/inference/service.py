"""What the API does, free of HTTP and Lambda: predict, record feedback, describe the model, report health.

Each served prediction gets an id (``functions.common.records.new_prediction_ids``: serving time, randomness and
a MAC under the deployment's key, ``functions.inference.id_keys``) that the client keeps to send ground truth
later, and that only this service can mint. The sampled predictions of a request go through
the capture sink once; a capture failure is logged and counted, and the client still gets its predictions.
Feedback goes through its own sink; if that fails the client gets a 503 and sends it again. Both kinds of record
carry the request's caller (who sent it, as the HTTP adapter found it; None when unknown).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from functions.common.records import Caller, FeedbackRecord, IdKey, IdKeys, PredictionRecord, new_prediction_ids
from functions.inference import openapi
from functions.inference.capture import NoCapture, Sampler, Sink, lost_records
from functions.inference.errors import FeedbackUnavailable
from functions.inference.feedback import FeedbackSchema
from functions.inference.model import Classification, Model, Regression
from functions.inference.schema import Batch
from functions.inference.sources import ModelProvider
from functions.inference.telemetry import RequestLog, Telemetry

NOT_FINITE_WARNING = {
    "field": "value",
    "problem": "the model's output is not a finite number: the instance's features are far outside what it was "
    "trained on",
}


class InferenceService:
    def __init__(
        self,
        provider: ModelProvider,
        *,
        capture: Sink,
        sampler: Sampler,
        feedback: Sink,
        telemetry: Telemetry,
        max_instances: int,
        max_body_bytes: int,
        feedback_max_age: timedelta,
        keys: IdKeys,
    ) -> None:
        self._provider = provider
        self._keys = keys
        self._capture_sink = capture
        self._sampler = sampler
        # Nothing to sample for: no record is built at all.
        self._capturing = not isinstance(capture, NoCapture) and sampler.rate > 0
        self._feedback_sink = feedback
        self._telemetry = telemetry
        self.max_instances = max_instances
        self.max_body_bytes = max_body_bytes
        self.feedback_max_age = feedback_max_age

    def model(self, log: RequestLog) -> Model:
        model = self._provider.current()
        log.model_version = model.version
        return model

    def predict(self, body: bytes, log: RequestLog, caller: Caller | None) -> dict[str, Any]:
        model = self.model(log)
        batch = model.schema.parse(body, self.max_instances)
        count = len(batch.instances)
        log.batch_size = count
        now = datetime.now(UTC)
        predictions = answer(model, batch, now, self._keys.minting())
        if self._capturing:
            log.capture_failures = self._capture(
                prediction_records(
                    model.version, now, batch.instances, predictions, self._sampler.pick(count), log.request_id, caller
                )
            )
        return {"model_version": model.version, "predictions": predictions}

    def _capture(self, records: list[PredictionRecord]) -> int:
        """Hand the records to the sink; returns how many were lost."""
        if not records:
            return 0
        try:
            self._capture_sink.write(records)
        except Exception as exc:
            lost = lost_records(exc, records)
            self._telemetry.exception(
                "capture failed; the predictions were served but not captured",
                exc,
                request_id=records[0].request_id,
                lost=lost,
            )
            return lost
        return 0

    def feedback(self, body: bytes, log: RequestLog, caller: Caller | None) -> dict[str, Any]:
        model = self.model(log)
        schema = FeedbackSchema(
            model.task, model.metadata.classes, self.max_instances, self.feedback_max_age, self._keys
        )
        now = datetime.now(UTC)
        items = schema.parse(body, now)
        log.feedback = len(items)
        received = now.isoformat(timespec="milliseconds")
        records = [
            FeedbackRecord(item.prediction_id, received, label=item.label, value=item.value, caller=caller)
            for item in items
        ]
        try:
            self._feedback_sink.write(records)
        except Exception as exc:
            lost = lost_records(exc, records)
            log.feedback_failures = lost
            self._telemetry.exception(
                "recording feedback failed; the client was asked to retry", exc, request_id=log.request_id, lost=lost
            )
            raise FeedbackUnavailable(
                f"the feedback could not be recorded ({lost} of {len(records)} items failed): "
                "send the same request again shortly",
                headers={"Retry-After": "1"},
            ) from exc
        return {"accepted": len(records)}

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
            "card": self._card(model),
        }

    def _card(self, model: Model) -> dict[str, Any] | None:
        try:
            return model.card()
        except Exception as exc:  # the description stands without it; the next GET /model reads it again
            self._telemetry.exception("reading the model card failed; /model answers without it", exc)
            return None

    def openapi(self, log: RequestLog) -> dict[str, Any]:
        return openapi.document(self.model(log), self.max_instances, self.max_body_bytes, self.feedback_max_age.days)


def answer(model: Model, batch: Batch, now: datetime, key: IdKey) -> list[dict[str, Any]]:
    """The model's answers to a validated batch, one per instance, each with a fresh prediction id minted with
    ``key``: what /predict returns (and batch scoring writes)."""
    result = model.predict(batch.columns)
    ids = new_prediction_ids(len(batch.instances), now, key)
    predictions: list[dict[str, Any]]
    if isinstance(result, Classification):
        classes = model.metadata.classes
        probabilities = [dict(zip(classes, row, strict=True)) for row in result.probabilities]
        predictions = [
            {"prediction_id": pid, "label": label, "probabilities": probs}
            for pid, label, probs in zip(ids, result.labels, probabilities, strict=True)
        ]
    else:
        predictions = [{"prediction_id": pid, "value": value} for pid, value in zip(ids, result.values, strict=True)]
    for index, warnings in batch.warnings.items():
        predictions[index]["warnings"] = warnings
    if isinstance(result, Regression):
        for index in result.not_finite:
            predictions[index].setdefault("warnings", []).append(dict(NOT_FINITE_WARNING))
    return predictions


def prediction_records(
    version: str,
    served: datetime,
    instances: Sequence[dict[str, Any]],
    predictions: Sequence[dict[str, Any]],
    picked: Sequence[int],
    request_id: str | None,
    caller: Caller | None,
) -> list[PredictionRecord]:
    """The capture records of the picked predictions (the instances as sent, the answers as served)."""
    time = served.isoformat(timespec="milliseconds")
    return [
        PredictionRecord(
            predictions[index]["prediction_id"],
            time,
            version,
            instances[index],
            label=predictions[index].get("label"),
            probabilities=predictions[index].get("probabilities"),
            value=predictions[index].get("value"),
            request_id=request_id,
            caller=caller,
        )
        for index in picked
    ]
