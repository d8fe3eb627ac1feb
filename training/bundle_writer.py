"""Write the model bundle (format: :mod:`functions.common.bundle`) into SageMaker's ``model/`` directory."""

from __future__ import annotations

import math
from collections.abc import Mapping
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
    FeatureType,
    ModelMetadata,
    write_metadata,
)
from training.pipeline import PREPROCESS_STEP

LIBRARIES = ("scikit-learn", "skl2onnx", "onnx", "onnxruntime", "numpy", "pandas")


def library_versions() -> dict[str, str]:
    return {name: version(name) for name in LIBRARIES}


def _finite_or_none(value: float) -> float | None:
    # The model saw float32 values; print them the short way (135.52, not 135.52000427246094).
    return float(str(np.float32(value))) if math.isfinite(value) else None


def describe_features(
    pipeline: Any, train_inputs: pd.DataFrame, feature_types: Mapping[str, FeatureType]
) -> tuple[Feature, ...]:
    """Categories as the fitted encoder knows them (without the missing token); numeric ranges as trained on."""
    transformers = pipeline.named_steps[PREPROCESS_STEP].named_transformers_
    categorical = [name for name, kind in feature_types.items() if kind == "categorical"]
    known = dict(zip(categorical, transformers["categorical"].categories_, strict=True)) if categorical else {}
    features = []
    for name, kind in feature_types.items():
        if kind == "categorical":
            seen = tuple(str(c) for c in known[name] if c != MISSING_CATEGORY)
            features.append(Feature(name=name, type="categorical", categories=seen))
        else:
            column = train_inputs[name]
            features.append(
                Feature(
                    name=name,
                    type="numeric",
                    minimum=_finite_or_none(column.min()),
                    maximum=_finite_or_none(column.max()),
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
