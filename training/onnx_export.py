"""Convert the fitted pipeline to ONNX and prove the two agree before the bundle is written.

The ONNX model has one input per feature, named exactly as the feature, shape [None, 1]: float32 for
numeric features (NaN for missing), string for categorical ones (``MISSING_CATEGORY`` for missing).
Its outputs have fixed names (:data:`functions.common.bundle.ONNX_OUTPUTS`): classifiers ``label`` (string [N])
and ``probabilities`` (float [N, n_classes], columns in metadata.classes order, no zipmap); regressors
``value`` (float [N, 1]).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import onnx
import onnxruntime
import pandas as pd
from skl2onnx import convert_sklearn
from skl2onnx.common.data_types import FloatTensorType, StringTensorType

from functions.common.bundle import (
    LABEL_OUTPUT,
    MISSING_CATEGORY,
    ONNX_OUTPUTS,
    PROBABILITIES_OUTPUT,
    VALUE_OUTPUT,
    FeatureType,
    Task,
)
from training.errors import TrainingFailure
from training.features import onnx_feeds

# Upper bounds: skl2onnx uses the lowest opsets the graph needs, so the bundle runs on older runtimes too.
TARGET_OPSET = {"": 18, "ai.onnx.ml": 3}
# Probabilities must agree within this (absolute); regression values within this relative to their scale.
TOLERANCE = 1e-4
# Holdout rows copied into the parity probe with every feature missing, and with unseen categories.
PROBE_ROWS = 25
UNSEEN_CATEGORY = "__category_unseen_in_training__"


def to_onnx(pipeline: Any, feature_types: Mapping[str, FeatureType], task: Task) -> onnx.ModelProto:
    initial_types = [
        (name, FloatTensorType([None, 1]) if kind == "numeric" else StringTensorType([None, 1]))
        for name, kind in feature_types.items()
    ]
    options = {id(pipeline): {"zipmap": False}} if task == "classification" else None
    model: onnx.ModelProto = convert_sklearn(
        pipeline, initial_types=initial_types, options=options, target_opset=TARGET_OPSET
    )
    _rename_outputs(model, ONNX_OUTPUTS[task])
    onnx.checker.check_model(model)
    return model


def _rename_outputs(model: onnx.ModelProto, names: tuple[str, ...]) -> None:
    produced = [output.name for output in model.graph.output]
    if len(produced) != len(names):
        raise TrainingFailure(f"the ONNX converter produced outputs {produced}, expected {len(names)}")
    renamed = dict(zip(produced, names, strict=True))
    for node in model.graph.node:
        node.input[:] = [renamed.get(name, name) for name in node.input]
        node.output[:] = [renamed.get(name, name) for name in node.output]
    for output in model.graph.output:
        output.name = renamed[output.name]


def parity_probe(inputs: pd.DataFrame, feature_types: Mapping[str, FeatureType]) -> pd.DataFrame:
    """The holdout plus rows with every feature missing, and rows with categories never seen in training."""
    sample = inputs.head(PROBE_ROWS)
    blank = sample.copy()
    unseen = sample.copy()
    for name, kind in feature_types.items():
        blank[name] = np.nan if kind == "numeric" else MISSING_CATEGORY
        if kind == "categorical":
            unseen[name] = UNSEEN_CATEGORY
    extra = [blank, unseen] if "categorical" in feature_types.values() else [blank]
    return pd.concat([inputs, *extra], ignore_index=True)


def session(model: onnx.ModelProto) -> onnxruntime.InferenceSession:
    return onnxruntime.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])


def check_parity(
    model: onnx.ModelProto, pipeline: Any, probe: pd.DataFrame, feature_types: Mapping[str, FeatureType], task: Task
) -> dict[str, Any]:
    """Run both models on ``probe`` fed as serving feeds ONNX; fail the job unless they agree."""
    outputs = session(model).run(None, onnx_feeds(probe, feature_types))
    found = dict(zip(ONNX_OUTPUTS[task], outputs, strict=True))
    if task == "classification":
        return _classification_parity(pipeline, probe, found[LABEL_OUTPUT], found[PROBABILITIES_OUTPUT])
    return _regression_parity(pipeline.predict(probe), np.asarray(found[VALUE_OUTPUT], dtype=np.float64))


def _fail(detail: str) -> TrainingFailure:
    return TrainingFailure(f"ONNX parity check failed: the exported model disagrees with scikit-learn: {detail}")


def _classification_parity(pipeline: Any, probe: pd.DataFrame, labels: Any, probabilities: Any) -> dict[str, Any]:
    expected = pipeline.predict_proba(probe)
    classes = np.asarray([str(c) for c in pipeline.classes_], dtype=object)
    if probabilities.shape != expected.shape:
        raise _fail(f"probabilities have shape {probabilities.shape}, expected {expected.shape}")
    difference = np.abs(probabilities - expected).max(axis=1)
    worst = int(difference.argmax())
    if difference[worst] > TOLERANCE:
        raise _fail(
            f"{int((difference > TOLERANCE).sum())} of {len(probe)} rows differ by more than {TOLERANCE} in a "
            f"class probability (worst: row {worst}, {difference[worst]:.3g})"
        )
    ordered = np.sort(expected, axis=1)
    # A near-tie between the top two classes may break either way in float32; anything else must match.
    decisive = ordered[:, -1] - ordered[:, -2] > TOLERANCE
    mismatched = decisive & (np.asarray(labels, dtype=object).ravel() != classes[expected.argmax(axis=1)])
    if mismatched.any():
        row = int(np.flatnonzero(mismatched)[0])
        raise _fail(
            f"{int(mismatched.sum())} of {len(probe)} rows get another label "
            f"(e.g. row {row}: ONNX {labels[row]!r}, scikit-learn {classes[expected[row].argmax()]!r})"
        )
    return {"rows": len(probe), "max_probability_difference": float(difference.max())}


def _regression_parity(expected: np.ndarray, values: np.ndarray) -> dict[str, Any]:
    if values.shape != (len(expected), 1):
        raise _fail(f"values have shape {values.shape}, expected ({len(expected)}, 1)")
    scale = np.maximum(np.abs(expected), np.abs(expected).mean())
    relative = np.abs(values.ravel() - expected) / np.where(scale > 0, scale, 1.0)
    worst = int(relative.argmax())
    if relative[worst] > TOLERANCE:
        raise _fail(
            f"{int((relative > TOLERANCE).sum())} of {len(expected)} predictions differ by more than "
            f"{TOLERANCE} relative (worst: row {worst}, ONNX {values[worst, 0]:.6g} vs {expected[worst]:.6g})"
        )
    return {"rows": len(expected), "max_relative_difference": float(relative.max())}
