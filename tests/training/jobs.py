"""Small helpers to read what a training run left behind."""

from __future__ import annotations

import json
import pickle
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from functions.common.bundle import (
    JOBLIB_FILE,
    ModelMetadata,
    pack_archive,
    read_metadata,
    verify_bundle,
    write_metadata,
)
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


class WritesAMarker:
    """Unpickled, opens (so creates) the marker file: code an attacker with write access to a bundle could run."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, tuple[str, str]]:
        return open, (str(self.marker), "w")


def poisoned_champion(bundle: Path, work: Path) -> tuple[Path, Path]:
    """A copy of ``bundle`` as a model.tar.gz whose model.joblib, resealed in its metadata, writes a marker file
    when unpickled; returns the archive and the marker's path."""
    poisoned, marker = work / "poisoned", work / "unpickled"
    shutil.copytree(bundle, poisoned)
    with (poisoned / JOBLIB_FILE).open("wb") as stream:
        pickle.dump(WritesAMarker(marker), stream)
    write_metadata(poisoned, read_metadata(poisoned))  # the checksums vouch for the pickle
    archive = work / "model.tar.gz"
    pack_archive(poisoned, archive)
    return archive, marker


def with_paperless(churn_data: pd.DataFrame, rows: int = 400) -> pd.DataFrame:
    """Churn data with a boolean ``paperless`` (a few missing) that moves the label."""
    data = churn_data.head(rows).reset_index(drop=True)
    rng = np.random.default_rng(3)
    paperless = (data["churned"].to_numpy() == 1) ^ (rng.random(rows) < 0.2)
    column = pd.Series(paperless, dtype=object)
    column[rng.random(rows) < 0.05] = None
    return data.assign(paperless=column)
