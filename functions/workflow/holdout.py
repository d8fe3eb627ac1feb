"""HoldOut: the workflow, not the training job, takes a run's holdout out of its assembled training set.

Every data file under the run's folder (``base/`` and ``feedback/``, :mod:`functions.common.layout`) is read in
record batches; each row whose content hash falls below the holdout share is moved to the run's holdout folder
(as CSV, under the same relative path), and the file is rewritten in place with the rows kept. The training job
reads the run's folder only: it never sees a holdout row, so it cannot fit to it or score itself on it, and the
Evaluate step (:mod:`functions.workflow.evaluation`) scores both models on rows that neither was fitted on.

Membership depends on a row's content alone, not on the run: a row held out once is held out in every run (as
long as the share stays the same), so the champion, trained by an earlier run, never saw the rows its challenger
is judged on either. Identical rows share their fate. The hash covers each cell as text (a CSV cell as written,
another value as Python's ``str``; missing as null) in the order of the column names compared ignoring case
(Athena's UNLOAD writes lower-case names).

pyarrow reads and writes the files in batches, so memory stays flat whatever a file's size; the files pass through
the function's ephemeral storage. What is not a data file (by the training program's rules: ``.csv``, ``.parquet``,
``.pq``, and Athena's suffix-less Parquet under ``feedback/``) is left as it is.
"""

from __future__ import annotations

import csv
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq
from boto3.s3.transfer import TransferConfig

from functions.common.layout import holdout_rows_folder, is_feedback
from functions.common.row_ids import HASH_SPACE, row_hash
from functions.workflow.errors import WorkflowError
from functions.workflow.settings import WorkflowSettings
from functions.workflow.state import AssemblyPlan, HoldoutResult, RunState

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

CSV_SUFFIXES = (".csv",)
PARQUET_SUFFIXES = (".parquet", ".pq")
PARQUET_MAGIC = b"PAR1"
# Rows per Parquet batch, and bytes per CSV block (about as many rows of ten columns): big enough that pyarrow's
# per-batch work is negligible, small enough that a batch's cells as Python values stay a few MB.
BATCH_ROWS = 16 * 1024
CSV_BLOCK_BYTES = 1 << 20
# Files move one part at a time: parallel parts would hold ten 8 MiB buffers, more than the split itself needs.
ONE_STREAM = TransferConfig(use_threads=False)


class HoldoutError(Exception):
    """A file of the assembled set cannot be split; the message names it and says why."""


def holdout_position(cells: Sequence[Any]) -> float:
    """Where a row falls in [0, 1): uniform over rows, fixed by the row's cells (in column order)."""
    return row_hash(cells) / HASH_SPACE


@dataclass
class FolderCounts:
    kept: int = 0
    held: int = 0

    def to_json(self) -> dict[str, int]:
        return {"kept": self.kept, "held": self.held}


@dataclass
class HoldoutCounts:
    """Rows kept for training and held out, for trusted (``base``) and feedback rows."""

    base: FolderCounts = field(default_factory=FolderCounts)
    feedback: FolderCounts = field(default_factory=FolderCounts)
    files: int = 0

    def to_json(self) -> dict[str, Any]:
        return {"base": self.base.to_json(), "feedback": self.feedback.to_json(), "files": self.files}


def _is_parquet(path: Path, relative: str) -> bool | None:
    """True (Parquet), False (CSV) or None (not a data file), by the name in the bucket and the file's bytes."""
    suffix = PurePosixPath(relative).suffix.lower()
    if suffix in CSV_SUFFIXES:
        return False
    if suffix in PARQUET_SUFFIXES:
        return True
    if not is_feedback(relative) or path.stat().st_size == 0:
        return None
    with path.open("rb") as stream:
        return True if stream.read(len(PARQUET_MAGIC)) == PARQUET_MAGIC else None


def _csv_batches(path: Path) -> Iterator[pa.RecordBatch]:
    """The file's rows with every cell as text, exactly as written (an empty cell is an empty string)."""
    with path.open(encoding="utf-8-sig", newline="") as stream:
        header = next(csv.reader(stream), [])
    if not header:
        return
    yield from pa_csv.open_csv(
        path,
        read_options=pa_csv.ReadOptions(block_size=CSV_BLOCK_BYTES, use_threads=False),
        parse_options=pa_csv.ParseOptions(newlines_in_values=True),
        convert_options=pa_csv.ConvertOptions(
            column_types=dict.fromkeys(header, pa.string()),
            strings_can_be_null=False,
            quoted_strings_can_be_null=False,
            null_values=[],
        ),
    )


def _parquet_batches(path: Path) -> Iterator[pa.RecordBatch]:
    yield from pq.ParquetFile(path).iter_batches(batch_size=BATCH_ROWS)


def _held_mask(batch: pa.RecordBatch, share: float) -> pa.Array:
    order = sorted(range(batch.num_columns), key=lambda index: (batch.schema.names[index].lower(), index))
    columns = [batch.column(index).to_pylist() for index in order]
    return pa.array([holdout_position(cells) < share for cells in zip(*columns, strict=True)], type=pa.bool_())


def split_file(source: Path, relative: str, kept: Path, held: Path, share: float) -> tuple[int, int] | None:
    """Write the rows of ``source`` that stay to ``kept`` (same format) and the held-out ones to ``held`` (CSV);
    the counts of both, or None when ``source`` is not a data file."""
    parquet = _is_parquet(source, relative)
    if parquet is None:
        return None
    kept_rows = held_rows = 0
    kept_writer: pq.ParquetWriter | pa_csv.CSVWriter | None = None
    held_writer: pa_csv.CSVWriter | None = None
    try:
        batches = _parquet_batches(source) if parquet else _csv_batches(source)
        for batch in batches:
            if kept_writer is None:
                kept_writer = (pq.ParquetWriter if parquet else pa_csv.CSVWriter)(kept, batch.schema)
                held_writer = pa_csv.CSVWriter(held, batch.schema)
            mask = _held_mask(batch, share)
            out, back = batch.filter(pc.invert(mask)), batch.filter(mask)
            kept_writer.write_batch(out)
            if back.num_rows:
                assert held_writer is not None
                held_writer.write_batch(back)
            kept_rows, held_rows = kept_rows + out.num_rows, held_rows + back.num_rows
    except (pa.ArrowException, OSError) as exc:
        raise HoldoutError(f"{relative} cannot be read to split off the holdout: {exc}") from exc
    finally:
        for writer in (kept_writer, held_writer):
            if writer is not None:
                writer.close()
    if kept_writer is None:  # no rows (a header only): the file stays as it is
        return 0, 0
    return kept_rows, held_rows


def hold_out(
    s3: S3Client, bucket: str, assembled_folder: str, holdout_folder: str, share: float, work_dir: Path
) -> HoldoutCounts:
    """Split every data file under ``assembled_folder``: rows kept are written back to the same key, rows held
    out to the same relative key under ``holdout_folder`` (``.csv`` appended where the name lacks it)."""
    counts = HoldoutCounts()
    paginator = s3.get_paginator("list_objects_v2")
    for page in paginator.paginate(Bucket=bucket, Prefix=assembled_folder):
        for item in page.get("Contents", []):
            key = item["Key"]
            relative = key[len(assembled_folder) :]
            if key.endswith("/") or not item["Size"]:
                continue
            source, kept, held = (work_dir / name for name in ("source", "kept", "held.csv"))
            s3.download_file(bucket, key, str(source), Config=ONE_STREAM)
            split = split_file(source, relative, kept, held, share)
            if split is None:
                continue
            kept_rows, held_rows = split
            folder = counts.feedback if is_feedback(relative) else counts.base
            folder.kept, folder.held = folder.kept + kept_rows, folder.held + held_rows
            counts.files += 1
            if held_rows:  # the held rows first: a retry after the rewrite finds them there
                suffix = "" if relative.lower().endswith(CSV_SUFFIXES) else ".csv"
                s3.upload_file(str(held), bucket, holdout_folder + relative + suffix, Config=ONE_STREAM)
                s3.upload_file(str(kept), bucket, key, Config=ONE_STREAM)
            for path in (source, kept, held):
                path.unlink(missing_ok=True)
    return counts


def hold_out_step(settings: WorkflowSettings, s3: S3Client, state: RunState) -> HoldoutResult:
    """Split the run's assembled folder (Assemble's, with the feedback the UNLOAD wrote) before the job reads it.

    Retry-safe: membership is by content, so splitting a file again moves nothing more; the rows an earlier
    attempt moved stay in the holdout folder (a retry's counts then leave them out, the folder has them all)."""
    plan = state.assembly_plan
    if plan is None:
        raise WorkflowError(f"HoldOut needs {AssemblyPlan.path('prefix')} in the state: Assemble must run first")
    folder = holdout_rows_folder(settings.holdout_prefix, state.version())
    with tempfile.TemporaryDirectory(prefix="driftloop-holdout-") as work:
        counts = hold_out(s3, settings.data_bucket, plan.prefix, folder, settings.holdout_share, Path(work))
    return HoldoutResult(folder=folder, counts=counts.to_json())
