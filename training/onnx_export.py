"""Convert the fitted pipeline to ONNX and prove the two agree before the bundle is written.

The ONNX model has one input per feature of the serving schema (those the model ignores too), named as
:func:`training.feature_spec.onnx_input_names` says, shape [None, 1]: float32 for numeric features (NaN for
missing), string for categorical ones (``MISSING_CATEGORY`` for missing). Its outputs have fixed names
(:data:`functions.common.bundle.ONNX_OUTPUTS`): classifiers ``label`` (string [N]) and ``probabilities``
(float [N, n_classes], columns in metadata.classes order, no zipmap); regressors ``value`` (float [N, 1]).

ONNX tree ensembles hold float32 thresholds. scikit-learn's hist_gradient_boosting keeps float64 ones, and
skl2onnx rounds them to the nearest float32, which can land on a data value and send it the other way (seen:
every prediction of a model off). The model only ever sees float32 inputs (training rounds numbers to float32
as serving sends them), and for a float32 ``x``, ``x <= t`` holds exactly when ``x <= t'``, ``t'`` the largest
float32 not above ``t``. So the exported copy's thresholds are rounded down: the same model, exactly, in
float32, with no looser parity tolerance. (skl2onnx does this itself for the other tree models.)
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime
import pandas as pd
from onnx import numpy_helper
from skl2onnx import convert_sklearn
from skl2onnx.common.data_types import FloatTensorType, StringTensorType
from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor

from functions.common.bundle import (
    LABEL_OUTPUT,
    MISSING_CATEGORY,
    ONNX_OUTPUTS,
    PROBABILITIES_OUTPUT,
    VALUE_OUTPUT,
    FeatureType,
    Task,
)
from functions.common.scoring import thresholded
from training.errors import TrainingFailure
from training.feature_spec import FeatureSpec
from training.features import onnx_feeds
from training.pipeline import ESTIMATOR_STEP

# Upper bounds: skl2onnx uses the lowest opsets the graph needs, so the bundle runs on older runtimes too.
TARGET_OPSET = {"": 18, "ai.onnx.ml": 3}
# Probabilities must agree within this (absolute); regression values within this relative to their scale.
TOLERANCE = 1e-4
# Holdout rows copied into the parity probe with every feature missing, and with unseen categories.
PROBE_ROWS = 25
UNSEEN_CATEGORY = "__category_unseen_in_training__"


def to_onnx(pipeline: Any, spec: FeatureSpec, task: Task) -> onnx.ModelProto:
    exported = _float32_thresholds(pipeline)
    # The converter matches the pipeline's column names against these; the inputs are renamed afterwards.
    initial_types = [
        (name, StringTensorType([None, 1]) if kind == "categorical" else FloatTensorType([None, 1]))
        for name, kind in spec.types.items()
    ]
    options = {id(exported): {"zipmap": False}} if task == "classification" else None
    model: onnx.ModelProto = convert_sklearn(
        exported, initial_types=initial_types, options=options, target_opset=TARGET_OPSET
    )
    inputs = [graph_input.name for graph_input in model.graph.input]
    if len(inputs) != len(spec.types):
        raise TrainingFailure(f"the ONNX converter produced {len(inputs)} inputs for {len(spec.types)} features")
    _rename_values(model, dict(zip(inputs, spec.onnx_inputs.values(), strict=True)))
    outputs = [output.name for output in model.graph.output]
    if len(outputs) != len(ONNX_OUTPUTS[task]):
        raise TrainingFailure(f"the ONNX converter produced outputs {outputs}, expected {len(ONNX_OUTPUTS[task])}")
    _rename_values(model, dict(zip(outputs, ONNX_OUTPUTS[task], strict=True)))
    onnx.checker.check_model(model)
    return model


def bake_threshold(model: onnx.ModelProto, classes: tuple[str, ...], positive: str, threshold: float) -> None:
    """Make the graph's ``label`` the decision threshold's answer (:func:`functions.common.scoring.thresholded`):
    ``positive`` when its probability is at least ``threshold``, else the other class. Serving, batch scoring and
    Evaluate read ``label``, so they all answer by the threshold without knowing it. The converter's own label
    (the most probable class) is left unused."""
    graph = model.graph
    taken = {name for node in graph.node for name in (*node.input, *node.output)}
    prefix = next(
        f"decision{n}_" for n in range(len(taken) + 1) if not any(t.startswith(f"decision{n}_") for t in taken)
    )
    for node in graph.node:
        node.output[:] = [f"{prefix}most_probable" if name == LABEL_OUTPUT else name for name in node.output]
    other = classes[1 - classes.index(positive)]
    graph.initializer.extend(
        [
            numpy_helper.from_array(np.array(classes.index(positive), dtype=np.int64), f"{prefix}column"),
            numpy_helper.from_array(np.array(threshold, dtype=np.float32), f"{prefix}threshold"),
            numpy_helper.from_array(np.array([positive], dtype=object), f"{prefix}positive"),
            numpy_helper.from_array(np.array([other], dtype=object), f"{prefix}other"),
        ]
    )
    graph.node.extend(
        [
            onnx.helper.make_node(
                "Gather", [PROBABILITIES_OUTPUT, f"{prefix}column"], [f"{prefix}probability"], axis=1,
                name=f"{prefix}gather",
            ),
            # Less, not GreaterOrEqual (opset 12): the converters' graphs may be of opset 11.
            onnx.helper.make_node(
                "Less", [f"{prefix}probability", f"{prefix}threshold"], [f"{prefix}below"], name=f"{prefix}compare"
            ),
            onnx.helper.make_node(
                "Where", [f"{prefix}below", f"{prefix}other", f"{prefix}positive"], [LABEL_OUTPUT],
                name=f"{prefix}answer",
            ),
        ]
    )  # fmt: skip
    onnx.checker.check_model(model)


def _float32_thresholds(pipeline: Any) -> Any:
    """``pipeline``, or for hist_gradient_boosting a copy with its thresholds rounded down to float32."""
    estimator = pipeline.named_steps[ESTIMATOR_STEP]
    if not isinstance(estimator, (HistGradientBoostingClassifier, HistGradientBoostingRegressor)):
        return pipeline
    exported = copy.deepcopy(pipeline)
    for trees in exported.named_steps[ESTIMATOR_STEP]._predictors:
        for tree in trees:
            splits = tree.nodes["is_leaf"] == 0
            thresholds = tree.nodes["num_threshold"][splits]
            rounded = thresholds.astype(np.float32)
            above = rounded.astype(np.float64) > thresholds
            rounded[above] = np.nextafter(rounded[above], np.float32(-np.inf))
            tree.nodes["num_threshold"][splits] = rounded
    return exported


def _rename_values(model: onnx.ModelProto, renames: Mapping[str, str]) -> None:
    """Rename graph values everywhere they appear. An intermediate value already called by one of the new
    names is renamed out of the way first, so a feature can be called anything the converter used inside."""
    graph = model.graph
    used = {name for node in graph.node for name in (*node.input, *node.output)}
    used |= {value.name for value in (*graph.input, *graph.output, *graph.initializer, *graph.value_info)}
    taken = used | set(renames.values())
    mapping = dict(renames)
    for name in renames.values():
        if name in used and name not in renames:
            fresh = next(f"{name}_{n}" for n in range(2, len(taken) + 3) if f"{name}_{n}" not in taken)
            taken.add(fresh)
            mapping[name] = fresh
    for node in graph.node:
        node.input[:] = [mapping.get(name, name) for name in node.input]
        node.output[:] = [mapping.get(name, name) for name in node.output]
    for value in (*graph.input, *graph.output, *graph.initializer, *graph.value_info):
        value.name = mapping.get(value.name, value.name)


def parity_probe(inputs: pd.DataFrame, feature_types: Mapping[str, FeatureType]) -> pd.DataFrame:
    """The holdout plus rows with every feature missing, and rows with categories never seen in training."""
    sample = inputs.head(PROBE_ROWS)
    blank = sample.copy()
    unseen = sample.copy()
    for name, kind in feature_types.items():
        blank[name] = MISSING_CATEGORY if kind == "categorical" else np.nan
        if kind == "categorical":
            unseen[name] = UNSEEN_CATEGORY
    extra = [blank, unseen] if "categorical" in feature_types.values() else [blank]
    return pd.concat([inputs, *extra], ignore_index=True)


def session(model: onnx.ModelProto | Path) -> onnxruntime.InferenceSession:
    source = str(model) if isinstance(model, Path) else model.SerializeToString()
    return onnxruntime.InferenceSession(source, providers=["CPUExecutionProvider"])


def run_onnx(
    model: onnxruntime.InferenceSession,
    frame: pd.DataFrame,
    feature_types: Mapping[str, FeatureType],
    input_names: Mapping[str, str],
    task: Task,
) -> dict[str, np.ndarray]:
    """A bundle's ONNX model on ``frame`` (model inputs, training.features) fed as serving feeds it; its outputs
    by name (:data:`functions.common.bundle.ONNX_OUTPUTS`)."""
    names = list(ONNX_OUTPUTS[task])
    return dict(zip(names, model.run(names, onnx_feeds(frame, feature_types, input_names)), strict=True))


def check_parity(
    model: onnx.ModelProto,
    pipeline: Any,
    probe: pd.DataFrame,
    spec: FeatureSpec,
    task: Task,
    decision: tuple[str, float] | None = None,
) -> dict[str, Any]:
    """Run both models on ``probe`` fed as serving feeds ONNX; fail the job unless they agree. ``decision``: the
    positive class and decision threshold baked into the graph (:func:`bake_threshold`), if any."""
    found = run_onnx(session(model), probe, spec.types, spec.onnx_inputs, task)
    if task == "classification":
        return _classification_parity(pipeline, probe, found[LABEL_OUTPUT], found[PROBABILITIES_OUTPUT], decision)
    return _regression_parity(pipeline.predict(probe), np.asarray(found[VALUE_OUTPUT], dtype=np.float64))


def _fail(detail: str) -> TrainingFailure:
    return TrainingFailure(f"ONNX parity check failed: the exported model disagrees with scikit-learn: {detail}")


def _classification_parity(
    pipeline: Any, probe: pd.DataFrame, labels: Any, probabilities: Any, decision: tuple[str, float] | None
) -> dict[str, Any]:
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
    if decision is None:
        answers = expected.argmax(axis=1)
        ordered = np.sort(expected, axis=1)
        # A near-tie between the top two classes may break either way in float32; anything else must match.
        decisive = ordered[:, -1] - ordered[:, -2] > TOLERANCE
    else:
        positive, threshold = list(classes).index(decision[0]), decision[1]
        answers = thresholded(expected, positive, threshold)
        # Likewise a probability next to the threshold.
        decisive = np.abs(expected[:, positive] - threshold) > TOLERANCE
    mismatched = decisive & (np.asarray(labels, dtype=object).ravel() != classes[answers])
    if mismatched.any():
        row = int(np.flatnonzero(mismatched)[0])
        raise _fail(
            f"{int(mismatched.sum())} of {len(probe)} rows get another label "
            f"(e.g. row {row}: ONNX {labels[row]!r}, scikit-learn {classes[answers[row]]!r})"
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
