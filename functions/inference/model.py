"""The served model: a verified bundle's ONNX graph in an onnxruntime session.

The graph takes one input per feature, named by ``Feature.onnx_input`` (float32 or string, shape [N, 1]), and
names its outputs as the bundle contract says (``functions.common.bundle.ONNX_OUTPUTS``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

from functions.common.bundle import (
    LABEL_OUTPUT,
    ONNX_FILE,
    ONNX_OUTPUTS,
    BundleError,
    ModelMetadata,
    verify_bundle,
)
from functions.inference.schema import RequestSchema

INPUT_TYPES = {"numeric": "tensor(float)", "categorical": "tensor(string)", "boolean": "tensor(float)"}


@dataclass(frozen=True, slots=True)
class Classification:
    labels: list[str]
    # One row per instance, columns in the order of metadata.classes.
    probabilities: list[list[float]]


@dataclass(frozen=True, slots=True)
class Regression:
    # None where the graph's output is not finite: features far beyond the training range can overflow float32.
    values: list[float | None]
    # The indexes of those values (empty on the usual path).
    not_finite: list[int] = field(default_factory=list)


# Reads a served version's model card (functions.common.model_card); None: the version has none.
CardReader = Callable[[], dict[str, Any] | None]


class Model:
    def __init__(
        self,
        version: str,
        metadata: ModelMetadata,
        session: ort.InferenceSession,
        source: str,
        card: CardReader | None = None,
    ) -> None:
        self.version = version
        self.metadata = metadata
        self.source = source
        self.loaded_at = datetime.now(UTC).isoformat(timespec="seconds")
        self.schema = RequestSchema(metadata.features, metadata.missing_tokens)
        self._session = session
        self._outputs = list(ONNX_OUTPUTS[metadata.task])
        # Column names are free text; the graph's inputs carry sanitised names (Feature.onnx_input).
        self._inputs = {feature.name: feature.onnx_input for feature in metadata.features}
        self._read_card = card
        self._card: dict[str, Any] | None = None
        self._card_read = card is None

    def card(self) -> dict[str, Any] | None:
        """The model card, read on first use (``GET /model``), never while loading: loading and predicting do not
        wait for it. A failed read raises and is tried again next time."""
        if not self._card_read:
            assert self._read_card is not None
            self._card, self._card_read = self._read_card(), True
        return self._card

    @property
    def task(self) -> str:
        return self.metadata.task

    def outputs(self, columns: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """The graph's outputs by name (``ONNX_OUTPUTS``): each row's label and class probabilities (columns in the
        order of ``metadata.classes``), or each row's value."""
        feeds = {self._inputs[name]: column for name, column in columns.items()}
        return dict(zip(self._outputs, self._session.run(self._outputs, feeds), strict=True))

    def predict(self, columns: dict[str, np.ndarray]) -> Classification | Regression:
        feeds = {self._inputs[name]: column for name, column in columns.items()}
        outputs = self._session.run(self._outputs, feeds)
        if self.metadata.task == "classification":
            return Classification(outputs[0].ravel().tolist(), outputs[1].tolist())
        values = outputs[0].ravel()
        finite = np.isfinite(values)
        if finite.all():
            return Regression(values.tolist())
        not_finite = np.flatnonzero(~finite).tolist()
        answers: list[float | None] = values.tolist()
        for index in not_finite:
            answers[index] = None
        return Regression(answers, not_finite)


def load_model(bundle_dir: Path, source: str, version: str | None = None, card: CardReader | None = None) -> Model:
    """Verify the bundle, open its ONNX graph and check the graph against the metadata.

    Only ``model.onnx`` is checked and loaded: serving never reads ``model.joblib``, and hashing it would only
    slow the cold start (a registry archive is checksummed as a whole before extraction anyway).
    ``version`` defaults to ``local-<sha256 prefix of model.onnx>``: stable for a given model file. ``card`` reads
    its model card when it is first asked for (None: it has none).
    """
    metadata = verify_bundle(bundle_dir, require=(ONNX_FILE,))
    try:
        session = ort.InferenceSession(
            str(bundle_dir / ONNX_FILE), _session_options(), providers=["CPUExecutionProvider"]
        )
    except Exception as exc:  # onnxruntime raises its own untyped errors for unreadable graphs
        raise BundleError(f"{ONNX_FILE} cannot be loaded by onnxruntime: {exc}") from exc
    _check_signature(session, metadata)
    return Model(version or f"local-{metadata.files[ONNX_FILE][:12]}", metadata, session, source, card)


def _session_options() -> ort.SessionOptions:
    options = ort.SessionOptions()
    # One thread: a Lambda has one or two vCPUs, and a thread pool costs start-up time and memory for no gain
    # on graphs this small.
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    return options


def _check_signature(session: ort.InferenceSession, metadata: ModelMetadata) -> None:
    inputs = {node.name: node.type for node in session.get_inputs()}
    expected = {feature.onnx_input: INPUT_TYPES[feature.type] for feature in metadata.features}
    if inputs != expected:
        raise BundleError(f"{ONNX_FILE} inputs {inputs} do not match the metadata features {expected}")
    outputs = {node.name: node.type for node in session.get_outputs()}
    missing = [name for name in ONNX_OUTPUTS[metadata.task] if name not in outputs]
    if missing:
        raise BundleError(f"{ONNX_FILE} lacks the {metadata.task} outputs {missing} (it has {sorted(outputs)})")
    if metadata.task == "classification" and outputs[LABEL_OUTPUT] != "tensor(string)":
        raise BundleError(f"{ONNX_FILE} output {LABEL_OUTPUT!r} must be strings, not {outputs[LABEL_OUTPUT]}")
    if metadata.task == "classification" and not metadata.classes:
        raise BundleError("a classification bundle must list its classes")
