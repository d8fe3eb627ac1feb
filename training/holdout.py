"""The holdout, and the rows of it the gate judges on.

The gate must compare the challenger with the champion on rows neither was fitted on, and must never rest on
feedback alone (labels API callers sent: they may be wrong or malicious). So each labelled row carries two facts:
whether it is feedback (by the ``train`` channel file it came from, :func:`functions.common.layout.is_feedback`)
and whether the champion was fitted on it (its hash, :mod:`training.row_ids`, is in the champion's fit rows).
The holdout is drawn from the rows the champion never saw first, so the gate scores as many rows as ``test_size``
allows; only when there are too few are rows it saw held out too, and those are not scored.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
from sklearn.model_selection import train_test_split

from functions.common.layout import is_feedback
from functions.common.row_ids import hashed_columns
from training.data import TrainingData, is_parquet
from training.errors import TrainingFailure
from training.row_ids import row_hashes


def _row_count(path: Path) -> int:
    if is_parquet(path):
        return int(pq.read_metadata(path).num_rows)
    # The first column only, with the reader's own rules (quoted newlines, blank lines), so the count matches.
    return sum(len(chunk) for chunk in pd.read_csv(path, dtype=str, usecols=[0], chunksize=1 << 16))


def feedback_rows(channel: Path, files: Sequence[str], rows: int) -> np.ndarray:
    """Which of the ``rows`` rows read from ``files`` (relative to ``channel``, in the order they were
    concatenated) came from feedback files."""
    flags = [is_feedback(name) for name in files]
    if all(flags) or not any(flags):  # one kind of file: no need to know which rows came from which
        return np.full(rows, flags[0])
    counts = [_row_count(channel / name) for name in files]
    if sum(counts) != rows:
        raise TrainingFailure(
            f"cannot tell feedback rows from trusted ones: the training files hold {sum(counts)} rows, {rows} were read"
        )
    return np.repeat(flags, counts)


@dataclass(frozen=True)
class Rows:
    """Facts about each labelled row, in data order."""

    hashes: np.ndarray
    feedback: np.ndarray


def labelled_rows(data: TrainingData, channel: Path, target: str, features: Iterable[str], labelled: int) -> Rows:
    """The hash (over ``target`` and ``features``) and the feedback flag of each row with a target value, as
    validation keeps them (``labelled`` of them, in data order)."""
    kept = data.frame[target].notna().to_numpy()
    if int(kept.sum()) != labelled:
        raise TrainingFailure(
            f"internal error: {int(kept.sum())} rows have a target value but validation kept {labelled}"
        )
    return Rows(
        hashes=row_hashes(data.frame[kept], hashed_columns(target, features)),
        feedback=feedback_rows(channel, data.files, len(data.frame))[kept],
    )


@dataclass(frozen=True)
class Split:
    """Positions of the labelled rows (in data order)."""

    train: np.ndarray
    holdout: np.ndarray
    # The holdout rows both models are scored on: those the champion never saw (all, when that is unknown).
    scored: np.ndarray
    # The scored rows that are not feedback.
    trusted: np.ndarray
    # Holdout rows the champion was fitted on, excluded from scoring; None: unknown or no champion.
    champion_seen: int | None


def _sample(positions: np.ndarray, size: int, strata: pd.Series | None, seed: int) -> np.ndarray:
    if size <= 0:
        return positions[:0]
    if size >= len(positions):
        return positions
    labels = None if strata is None else strata.iloc[positions]
    try:
        _, drawn = train_test_split(positions, test_size=size, random_state=seed, stratify=labels)
    except ValueError:  # a class too rare among these rows to stratify: a plain random draw
        _, drawn = train_test_split(positions, test_size=size, random_state=seed)
    return np.asarray(drawn)


def split(
    seen: np.ndarray | None, feedback: np.ndarray, strata: pd.Series | None, test_size: float, seed: int
) -> Split:
    """Hold out ``test_size`` of the rows (sized as scikit-learn's ``train_test_split``), stratified by
    ``strata`` when given: rows the champion never saw first, then, if they are too few, rows it saw.

    ``seen``: per row, whether the champion was fitted on it; None when there is no champion to compare with or
    its fit rows are unknown. The challenger trains on the rest, in data order.
    """
    rows = len(feedback)
    size = math.ceil(test_size * rows)
    unseen = np.ones(rows, dtype=bool) if seen is None else ~seen
    first = _sample(np.flatnonzero(unseen), size, strata, seed)
    extra = _sample(np.flatnonzero(~unseen), size - len(first), strata, seed)
    held = np.zeros(rows, dtype=bool)
    held[first] = True
    held[extra] = True
    scored = held & unseen
    return Split(
        train=np.flatnonzero(~held),
        holdout=np.flatnonzero(held),
        scored=np.flatnonzero(scored),
        trusted=np.flatnonzero(scored & ~feedback),
        champion_seen=None if seen is None else int((held & seen).sum()),
    )
