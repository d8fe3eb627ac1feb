"""The optional ``champion`` channel: the live model, to be scored on the challenger's holdout, and the rows it
was fitted on (absent from older bundles), which that holdout must leave out.

The channel holds either a ``model.tar.gz`` (as the registry stores it) or an extracted bundle directory. The
champion is scored through its ``model.onnx`` with ONNX Runtime, fed as serving feeds it, and described by its
``metadata.json``: its ``model.joblib`` is a pickle, which runs code when loaded, so it is never read (and may
be absent). A champion that is given but unusable fails the job: comparing against nothing would let any
challenger through the gate.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnxruntime
import pandas as pd

from functions.common.bundle import (
    LABEL_OUTPUT,
    METADATA_FILE,
    ONNX_FILE,
    PROBABILITIES_OUTPUT,
    VALUE_OUTPUT,
    BundleError,
    ModelMetadata,
    open_bundle,
    read_fit_rows,
)
from functions.common.scoring import Predictions
from training.errors import TrainingFailure
from training.evaluation import spread
from training.onnx_export import run_onnx, session
from training.row_ids import fit_rows


@dataclass(frozen=True)
class Champion:
    metadata: ModelMetadata
    # The champion's model.onnx, loaded.
    model: onnxruntime.InferenceSession
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
        bundle_dir, metadata = open_bundle(source, work_dir / "champion", require=(ONNX_FILE,))
        recorded = read_fit_rows(bundle_dir, metadata)
    except BundleError as exc:
        raise TrainingFailure(f"the champion model is unusable: {exc}") from exc
    try:
        model = session(bundle_dir / ONNX_FILE)
    except Exception as exc:  # onnxruntime raises its own untyped errors for unreadable graphs
        raise TrainingFailure(f"the champion model is unusable: ONNX Runtime cannot load {ONNX_FILE}: {exc}") from exc
    return Champion(metadata=metadata, model=model, fit_rows=None if recorded is None else fit_rows(recorded))


def champion_predictions(champion: Champion, inputs: pd.DataFrame, positions: np.ndarray) -> Predictions:
    """The champion's outputs on the rows of ``inputs`` (model inputs with every feature of its schema) at
    ``positions`` (see training.evaluation.spread). A champion that cannot be scored fails the job."""
    metadata = champion.metadata
    types = {feature.name: feature.type for feature in metadata.features}
    names = {feature.name: feature.onnx_input for feature in metadata.features}
    try:
        outputs = run_onnx(champion.model, inputs.iloc[positions], types, names, metadata.task)
        if metadata.task == "classification":
            # Its own answers (a decision threshold may set them), placed as spread places the probabilities.
            probabilities = spread(outputs[PROBABILITIES_OUTPUT], positions, len(inputs))
            answers = np.full(len(inputs), metadata.classes[0], dtype=object)
            answers[positions] = np.asarray(outputs[LABEL_OUTPUT], dtype=object).ravel()
            return Predictions.answered(metadata.classes, probabilities, answers)
        return Predictions(values=spread(outputs[VALUE_OUTPUT].reshape(-1), positions, len(inputs)))
    except Exception as exc:  # a graph can fail on these inputs in any way; each means "cannot compare"
        raise TrainingFailure(f"the champion model cannot be scored on the holdout: {exc!r}") from exc
