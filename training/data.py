"""Read the ``train`` channel: every CSV and Parquet file under it, concatenated.

CSV cells are read as text (empty cell = missing), so the column types are decided once, by
:mod:`training.validation`, for CSV and Parquet alike, and a stray value is reported instead of silently
turning a numeric column into text. The ``missing_values`` tokens (e.g. ``?``) are missing too, wherever they
are a whole text cell: every CSV cell, and the cells of Parquet's text columns (a Parquet number is never a
token).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from training.errors import TrainingFailure

CSV_SUFFIXES = (".csv",)
PARQUET_SUFFIXES = (".parquet", ".pq")


@dataclass(frozen=True)
class TrainingData:
    frame: pd.DataFrame
    # Relative to the channel directory, in the (sorted) order they were concatenated and hashed.
    files: tuple[str, ...]
    # sha256 over the files' bytes, concatenated in that order.
    sha256: str


def data_files(channel: Path) -> list[Path]:
    """The CSV and Parquet files under ``channel`` (recursively, hidden files skipped), sorted by path."""
    found = [
        path
        for path in channel.rglob("*")
        if path.is_file()
        and path.suffix.lower() in CSV_SUFFIXES + PARQUET_SUFFIXES
        and not any(part.startswith(".") for part in path.relative_to(channel).parts)
    ]
    return sorted(found, key=lambda path: path.relative_to(channel).as_posix())


def _read(path: Path, name: str) -> pd.DataFrame:
    try:
        if path.suffix.lower() in PARQUET_SUFFIXES:
            return pd.read_parquet(path)
        return pd.read_csv(path, dtype=str, keep_default_na=True)
    except pd.errors.EmptyDataError:
        raise TrainingFailure(f"training file {name} is empty (a header row is required)") from None
    except (OSError, ValueError, pd.errors.ParserError) as exc:
        raise TrainingFailure(f"training file {name} cannot be read: {exc}") from exc


def blank_tokens(frame: pd.DataFrame, tokens: Sequence[str]) -> pd.DataFrame:
    """``frame`` with every text cell that equals one of ``tokens`` made missing."""
    if not tokens:
        return frame
    blanked = frame.copy(deep=False)
    for name, column in frame.items():
        if pd.api.types.is_string_dtype(column) or pd.api.types.is_object_dtype(column):
            blanked[name] = column.mask(column.isin(tokens))
    return blanked


def load_training_data(channel: Path, missing_values: Sequence[str] = ()) -> TrainingData:
    if not channel.is_dir():
        raise TrainingFailure(f"the train channel is missing: no directory {channel}")
    paths = data_files(channel)
    if not paths:
        raise TrainingFailure(f"the train channel {channel} holds no .csv or .parquet file")
    names = tuple(path.relative_to(channel).as_posix() for path in paths)
    frames = [_read(path, name) for path, name in zip(paths, names, strict=True)]
    problems = []
    reference = list(frames[0].columns)
    for name, frame in zip(names[1:], frames[1:], strict=True):
        missing = [c for c in reference if c not in frame.columns]
        extra = [c for c in frame.columns if c not in reference]
        if missing or extra:
            problems.append(
                f"{name} has different columns from {names[0]}: missing {missing or 'none'}, extra {extra or 'none'}"
            )
    if problems:
        raise TrainingFailure("the training files disagree on their columns", problems)
    digest = hashlib.sha256()
    for path in paths:
        with path.open("rb") as stream:
            for chunk in iter(lambda: stream.read(1 << 20), b""):
                digest.update(chunk)
    # Reordering by the first file's columns: files may list the same columns in another order.
    frame = pd.concat([f[reference] for f in frames], ignore_index=True) if len(frames) > 1 else frames[0]
    return TrainingData(frame=blank_tokens(frame, missing_values), files=names, sha256=digest.hexdigest())
