"""The training program's row identities: the hash of each row it reads (:mod:`functions.common.row_ids`, over
the target and the features by name, cells as read from the ``train`` channel before any type conversion), and the
fit-rows bundle member built from them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from functions.common.bundle import FIT_ROWS_DTYPE, FIT_ROWS_FILE
from functions.common.row_ids import row_hash


def _cells(column: pd.Series) -> list[object]:
    """The column's values, None where missing (pandas' NaN, None or NA)."""
    missing = column.isna().tolist()
    return [None if gone else value for value, gone in zip(column.tolist(), missing, strict=True)]


def row_hashes(frame: pd.DataFrame, columns: list[str]) -> np.ndarray:
    """The canonical hash of each row of ``frame`` over ``columns`` (:func:`functions.common.row_ids.row_hash`), as
    uint64."""
    rows = zip(*(_cells(frame[name]) for name in columns), strict=True)
    return np.fromiter((row_hash(row) for row in rows), dtype=np.uint64, count=len(frame))


def write_fit_rows(model_dir: Path, hashes: np.ndarray) -> None:
    """Write the fit-rows member; before the bundle is sealed, which then records its checksum."""
    model_dir.mkdir(parents=True, exist_ok=True)
    (model_dir / FIT_ROWS_FILE).write_bytes(np.unique(hashes).astype(FIT_ROWS_DTYPE).tobytes())


def fit_rows(data: bytes) -> np.ndarray:
    """The row hashes of a fit-rows member (as :func:`functions.common.bundle.read_fit_rows` returns it)."""
    return np.frombuffer(data, dtype=FIT_ROWS_DTYPE).astype(np.uint64)
