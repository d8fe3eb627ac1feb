"""The optional ``champion`` channel: the live model, to be scored on the challenger's holdout, and the rows it
was fitted on (absent from older bundles), which that holdout must leave out.

The channel holds either a ``model.tar.gz`` (as the registry stores it) or an extracted bundle directory.
A champion that is given but unusable fails the job: comparing against nothing would let any challenger
through the gate.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pandas as pd

from functions.common.bundle import JOBLIB_FILE, METADATA_FILE, BundleError, ModelMetadata, open_bundle, read_fit_rows
from functions.common.scoring import Predictions
from training.errors import TrainingFailure
from training.evaluation import pipeline_predictions
from training.row_ids import fit_rows


@dataclass(frozen=True)
class Champion:
    metadata: ModelMetadata
    # The champion's fitted scikit-learn pipeline (model.joblib).
    model: Any
    # The hashes of the rows it was fitted on (training.row_ids); None: its bundle records none (an older one).
    fit_rows: np.ndarray | None


def _bundle_source(channel: Path) -> Path | None:
    """The archive or bundle directory in the channel; None when the channel is absent or empty."""
    if not channel.is_dir():
        return None
    entries = [p for p in channel.iterdir() if not p.name.startswith(".")]
    if not entries:
        return None
    if (channel / METADATA_FILE).is_file():
        return channel
    archives = sorted(p for p in channel.rglob("*.tar.gz") if p.is_file())
    bundles = sorted(p.parent for p in channel.rglob(METADATA_FILE))
    found = archives + bundles
    if len(found) != 1:
        listed = ", ".join(p.relative_to(channel).as_posix() for p in found) or "nothing usable"
        raise TrainingFailure(
            f"the champion channel must hold exactly one model.tar.gz or bundle directory; found {listed}"
        )
    return found[0]


def load_champion(channel: Path, work_dir: Path) -> Champion | None:
    source = _bundle_source(channel)
    if source is None:
        return None
    try:
        bundle_dir, metadata = open_bundle(source, work_dir / "champion")
        recorded = read_fit_rows(bundle_dir, metadata)
        model = joblib.load(bundle_dir / JOBLIB_FILE)
    except BundleError as exc:
        raise TrainingFailure(f"the champion model is unusable: {exc}") from exc
    except Exception as exc:  # unpickling can fail in many ways; all mean the same to the user
        raise TrainingFailure(f"the champion model is unusable: cannot load {JOBLIB_FILE}: {exc!r}") from exc
    if not (hasattr(model, "predict_proba") if metadata.task == "classification" else hasattr(model, "predict")):
        raise TrainingFailure(f"the champion model is unusable: {JOBLIB_FILE} holds no fitted {metadata.task} model")
    return Champion(metadata=metadata, model=model, fit_rows=None if recorded is None else fit_rows(recorded))


def champion_predictions(champion: Champion, inputs: pd.DataFrame, positions: np.ndarray) -> Predictions:
    """The champion's outputs on the rows of ``inputs`` at ``positions``; a champion that cannot be scored fails the
    job (comparing against nothing would let any challenger through)."""
    try:
        return pipeline_predictions(champion.model, champion.metadata.task, inputs, positions)
    except Exception as exc:  # a pickled model can fail in any way; each means "cannot compare"
        raise TrainingFailure(f"the champion model cannot be scored on the holdout: {exc!r}") from exc
