"""Small helpers to read what a training run left behind."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from functions.common.bundle import ModelMetadata, verify_bundle
from functions.common.gate import EVALUATION_FILE, Evaluation
from training.contract import Layout

CHURN = {"target": "churned", "algorithm": "logistic_regression"}


def failure(base: Path) -> str:
    return Layout(base).failure_file.read_text()


def evaluation(base: Path) -> Evaluation:
    return Evaluation.from_dict(evaluation_json(base))


def evaluation_json(base: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((Layout(base).output_data_dir / EVALUATION_FILE).read_text())
    return data


def metadata(base: Path) -> ModelMetadata:
    return verify_bundle(Layout(base).model_dir)
