"""Read the ``train`` channel: every CSV and Parquet file under it, concatenated.

Files are CSV or Parquet by their suffix; under ``feedback/`` (Assemble's, :mod:`functions.common.layout`) a file
without one is Parquet by its magic bytes: Athena's UNLOAD names its files without a suffix. UNLOAD also writes
column names in lower case, so a feedback file's columns match the first file's ignoring case (Assemble refuses a
header whose names differ only in case).

CSV cells are read as text, so the column types are decided once, by :mod:`training.validation`, for CSV and
Parquet alike, and a stray value is reported instead of silently turning a numeric column into text. The missing
tokens (:func:`functions.common.bundle.missing_tokens`: the empty text and the ``missing_values``, e.g. ``?``) are
missing wherever they are a whole text cell: every CSV cell, and the cells of Parquet's text columns (a Parquet
number is never a token; a Parquet null stays missing). No other text is: pandas' own spellings (``NA``,
``null``, ``n/a``...) are values unless declared, as they are for serving, which takes the same tokens from the
bundle's metadata.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from functions.common.bundle import missing_tokens
from functions.common.layout import is_feedback
from training.errors import TrainingFailure

CSV_SUFFIXES = (".csv",)
PARQUET_SUFFIXES = (".parquet", ".pq")
PARQUET_MAGIC = b"PAR1"


@dataclass(frozen=True)
class TrainingData:
    frame: pd.DataFrame
    # Relative to the channel directory, in the (sorted) order they were concatenated and hashed.
    files: tuple[str, ...]
    # sha256 over the files' bytes, concatenated in that order.
    sha256: str


def is_parquet(path: Path) -> bool:
    """A Parquet file: by its suffix, or without a CSV or Parquet suffix by its magic bytes."""
    suffix = path.suffix.lower()
    if suffix in CSV_SUFFIXES + PARQUET_SUFFIXES:
        return suffix in PARQUET_SUFFIXES
    with path.open("rb") as stream:
        return stream.read(len(PARQUET_MAGIC)) == PARQUET_MAGIC


def _is_data(path: Path, relative: str) -> bool:
    if path.suffix.lower() in CSV_SUFFIXES + PARQUET_SUFFIXES:
        return True
    if not is_feedback(relative) or path.stat().st_size == 0:
        return False
    if not is_parquet(path):
        raise TrainingFailure(f"training file {relative} has no .csv or .parquet suffix and is not Parquet")
    return True


def data_files(channel: Path) -> list[Path]:
    """The CSV and Parquet files under ``channel`` (recursively, hidden files skipped), sorted by path."""
    found = [
        path
        for path in channel.rglob("*")
        if path.is_file()
        and not any(part.startswith(".") for part in path.relative_to(channel).parts)
        and _is_data(path, path.relative_to(channel).as_posix())
    ]
    return sorted(found, key=lambda path: path.relative_to(channel).as_posix())


def _read(path: Path, name: str) -> pd.DataFrame:
    try:
        if is_parquet(path):
            return pd.read_parquet(path)
        return pd.read_csv(path, dtype=str, keep_default_na=False)
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


def _reference_case(frame: pd.DataFrame, reference: Sequence[str]) -> pd.DataFrame:
    """``frame`` with each column named as the reference column it equals ignoring case, when exactly one does."""
    by_lower: dict[str, list[str]] = {}
    for name in reference:
        by_lower.setdefault(str(name).lower(), []).append(name)
    renames = {}
    for column in frame.columns:
        matches = by_lower.get(str(column).lower(), [])
        if column not in reference and len(matches) == 1:
            renames[column] = matches[0]
    return frame.rename(columns=renames) if renames else frame


def load_training_data(channel: Path, missing_values: Sequence[str] = ()) -> TrainingData:
    """Every data file under ``channel``; a text cell is missing when empty or one of ``missing_values``."""
    if not channel.is_dir():
        raise TrainingFailure(f"the train channel is missing: no directory {channel}")
    paths = data_files(channel)
    if not paths:
        raise TrainingFailure(f"the train channel {channel} holds no .csv or .parquet file")
    names = tuple(path.relative_to(channel).as_posix() for path in paths)
    frames = [_read(path, name) for path, name in zip(paths, names, strict=True)]
    problems = []
    reference = list(frames[0].columns)
    frames[1:] = [
        _reference_case(frame, reference) if is_feedback(name) else frame
        for name, frame in zip(names[1:], frames[1:], strict=True)
    ]
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
    frame = blank_tokens(frame, missing_tokens(missing_values))
    return TrainingData(frame=frame, files=names, sha256=digest.hexdigest())
