"""Write the model bundle (format: :mod:`functions.common.bundle`) into SageMaker's ``model/`` directory."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import onnx
import pandas as pd

from functions.common.bundle import (
    JOBLIB_FILE,
    MISSING_CATEGORY,
    ONNX_FILE,
    Feature,
    ModelMetadata,
    write_metadata,
)
from training.feature_spec import FeatureSpec
from training.pipeline import CAPPED_BRANCH, CATEGORICAL_BRANCH, PREPROCESS_STEP

LIBRARIES = ("scikit-learn", "skl2onnx", "onnx", "onnxruntime", "numpy", "pandas")


def library_versions() -> dict[str, str]:
    return {name: version(name) for name in LIBRARIES}


def _finite_or_none(value: float) -> float | None:
    # The model saw float32 values; print them the short way (135.52, not 135.52000427246094).
    return float(str(np.float32(value))) if math.isfinite(value) else None


def _encoded_categories(pipeline: Any) -> dict[str, Any]:
    """Feature -> the categories its fitted one-hot encoder tells apart."""
    preprocess = pipeline.named_steps[PREPROCESS_STEP]
    known: dict[str, Any] = {}
    for branch, _, columns in preprocess.transformers_:
        if branch in (CATEGORICAL_BRANCH, CAPPED_BRANCH):
            known.update(zip(columns, preprocess.named_transformers_[branch].categories_, strict=True))
    return known


def describe_features(pipeline: Any, train_inputs: pd.DataFrame, spec: FeatureSpec) -> tuple[Feature, ...]:
    """Categories as the fitted encoders know them (without the missing token), or for a categorical the model
    ignores, as trained on; numeric ranges as trained on; the ONNX input of each."""
    known = _encoded_categories(pipeline)
    features = []
    for name, kind in spec.types.items():
        column = train_inputs[name]
        if kind == "boolean":
            features.append(Feature(name=name, type="boolean", onnx_input=spec.onnx_inputs[name]))
        elif kind == "categorical":
            levels = known[name] if name in known else column.unique()
            seen = tuple(str(c) for c in levels if c != MISSING_CATEGORY)
            features.append(Feature(name=name, type="categorical", categories=seen, onnx_input=spec.onnx_inputs[name]))
        else:
            features.append(
                Feature(
                    name=name,
                    type="numeric",
                    minimum=_finite_or_none(column.min()),
                    maximum=_finite_or_none(column.max()),
                    onnx_input=spec.onnx_inputs[name],
                )
            )
    return tuple(features)


def utc_now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def write_bundle(model_dir: Path, pipeline: Any, onnx_model: onnx.ModelProto, metadata: ModelMetadata) -> ModelMetadata:
    """Write both model files, then seal them with their checksums in ``metadata.json``."""
    model_dir.mkdir(parents=True, exist_ok=True)
    (model_dir / ONNX_FILE).write_bytes(onnx_model.SerializeToString())
    joblib.dump(pipeline, model_dir / JOBLIB_FILE, compress=3)
    return write_metadata(model_dir, metadata)
