"""Row identities: the canonical 64-bit hash of a training row, and the fit-rows bundle member built from them.

A row's hash is over its raw cells as read from the ``train`` channel (before any type conversion), in a fixed
column order: the target first, then the features sorted by name. Each cell is its text as read (CSV cells are
text; other values, e.g. Parquet numbers, as Python's ``str``), or JSON null when missing. The row is encoded
as the compact JSON array of those cells (``json.dumps(cells, ensure_ascii=False, separators=(",", ":"))``) in
UTF-8, and its hash is the first 8 bytes of the SHA-256 of that, read as an unsigned little-endian integer.
The same file copied into a later training set thus gives the same hashes; 64 bits keep collisions negligible
(about n^2 / 2^65 for n rows: 3e-8 for a million rows).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd

from functions.common.bundle import FIT_ROWS_DTYPE, FIT_ROWS_FILE


def hashed_columns(target: str, features: Iterable[str]) -> list[str]:
    """The columns a row hash covers, in hashing order."""
    return [target, *sorted(features)]


def _cells(column: pd.Series) -> list[str | None]:
    missing = column.isna().tolist()
    return [
        None if gone else value if isinstance(value, str) else str(value)
        for value, gone in zip(column.tolist(), missing, strict=True)
    ]


def row_hashes(frame: pd.DataFrame, columns: list[str]) -> np.ndarray:
    """The canonical hash of each row of ``frame`` over ``columns`` (see the module docstring), as uint64."""
    hashes = np.empty(len(frame), dtype=np.uint64)
    rows = zip(*(_cells(frame[name]) for name in columns), strict=True)
    for position, row in enumerate(rows):
        text = json.dumps(row, ensure_ascii=False, separators=(",", ":"))
        hashes[position] = int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest()[:8], "little")
    return hashes


def write_fit_rows(model_dir: Path, hashes: np.ndarray) -> None:
    """Write the fit-rows member; before the bundle is sealed, which then records its checksum."""
    model_dir.mkdir(parents=True, exist_ok=True)
    (model_dir / FIT_ROWS_FILE).write_bytes(np.unique(hashes).astype(FIT_ROWS_DTYPE).tobytes())


def fit_rows(data: bytes) -> np.ndarray:
    """The row hashes of a fit-rows member (as :func:`functions.common.bundle.read_fit_rows` returns it)."""
    return np.frombuffer(data, dtype=FIT_ROWS_DTYPE).astype(np.uint64)
