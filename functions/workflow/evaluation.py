"""Evaluate: the workflow scores the challenger and the champion on the run's holdout; the gate judges those scores.

The training job is judged, so it does not supply the scores it is judged by: its own ``evaluation.json`` stays
informational. This step loads both models' ONNX graphs (the challenger's bundle from the job's artifact, checked
against the checksums its metadata records; the champion's archive from the registry, checked against the sha256
Prepare read with the champion pointer), reads the rows HoldOut kept from the job (:mod:`functions.workflow.holdout`)
and computes every fact the gate judges with :mod:`functions.common.scoring`, the module the training program uses
too. Nothing is unpickled: a bundle's ``model.joblib`` is never read.

The holdout's cells are read as the training program reads CSV: text, with the challenger's missing tokens
(``ModelMetadata.missing_tokens``: the empty cell, as HoldOut writes a Parquet null, and ``missing_values``) as
missing. A cell a model cannot take (text in a numeric feature)
fails the step with the file, column and value: judging on fewer rows than were held out would hide it.

The holdout is chosen by row content, so no model trained by this workflow was fitted on it; rows the champion's
bundle lists among its fit rows (``training.row_ids``' hashes, recomputed here from the cells as read: an older
champion, or another holdout share) are left out of the scoring and counted, as the training program does. The
trusted rows are those from ``base/`` files. The single-feature scores fit their bins on one half of the scored rows
and measure on the other. Scored or trusted rows fewer than the gate's ``min_scored_rows`` are also resampled
(:func:`functions.common.scoring.bootstrap`), seeded by the version so that a rerun draws the same resamples.
Beside the scores, informational, the challenger's permutation importances (``importances``:
:mod:`functions.common.importances`) on the labelled holdout rows.
"""

from __future__ import annotations

import csv
import hashlib
import json
import math
import tempfile
from array import array
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from boto3.s3.transfer import TransferConfig

from functions.common import importances, scoring
from functions.common.bundle import (
    ARCHIVE_FILE,
    BOOLEAN_TEXTS,
    FIT_ROWS_DTYPE,
    LABEL_OUTPUT,
    MISSING_CATEGORY,
    PROBABILITIES_OUTPUT,
    VALUE_OUTPUT,
    BundleError,
    FeatureType,
    ModelMetadata,
    open_bundle,
    positive_label,
    read_fit_rows,
    schema_differences,
)
from functions.common.gate import Evaluation, Scores, decide, parse_gate_settings
from functions.common.layout import holdout_evaluation_key, holdout_rows_folder, is_feedback, split_s3_uri
from functions.common.registry import Registry
from functions.common.row_ids import hashed_columns, row_hash
from functions.inference.model import Model, load_model
from functions.workflow.errors import WorkflowError
from functions.workflow.settings import WorkflowSettings
from functions.workflow.state import ChampionRef, EvaluationResult, PrepareResult, RunState, TrainingResult

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

# Holdout files are read one part at a time (parallel parts would hold ten 8 MiB buffers).
ONE_STREAM = TransferConfig(use_threads=False)
# Rows per onnxruntime call: bounds the memory of a graph's intermediate tensors.
PREDICT_ROWS = 16 * 1024


class EvaluationError(WorkflowError):
    """The holdout cannot be scored; the message says which file, column or value and why."""


@dataclass(frozen=True)
class HoldoutTable:
    """The held-out rows' columns that were read, by their lower-case names (Athena's UNLOAD writes feedback files'
    names in lower case): float64 with NaN for a missing number, text with None for a missing cell; and which
    rows are feedback."""

    columns: dict[str, np.ndarray]
    feedback: np.ndarray
    files: tuple[str, ...]
    # Each row's hash as the training program hashes the rows it fits on (training.row_ids): a champion's fit
    # rows are compared with it.
    hashes: np.ndarray

    def column(self, name: str) -> np.ndarray:
        try:
            return self.columns[name.lower()]
        except KeyError:
            raise EvaluationError(
                f"the holdout has no column {name!r}; it has {', '.join(sorted(self.columns)) or 'no columns'}"
            ) from None


def _keys(s3: S3Client, bucket: str, prefix: str) -> Iterator[str]:
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        yield from (item["Key"] for item in page.get("Contents", []) if not item["Key"].endswith("/"))


class _Numbers:
    """A numeric column as it is read: parsed at once into a float array (8 bytes a cell)."""

    kind = "numeric"

    def __init__(self, name: str, missing: frozenset[str]) -> None:
        self.name, self._missing, self.values = name, missing, array("d")

    def add(self, cell: str, where: str) -> None:
        if cell in self._missing:
            self.values.append(math.nan)
            return
        try:
            self.values.append(self.parse(cell))
        except ValueError:
            raise EvaluationError(
                f"{where}: column {self.name!r} is {self.kind} for the model but holds {cell!r}"
            ) from None

    @staticmethod
    def parse(cell: str) -> float:
        return float(cell)

    def pad(self, rows: int) -> None:
        """Missing cells up to ``rows`` (the rows of a file without this column)."""
        self.values.extend([math.nan] * (rows - len(self.values)))

    def array(self) -> np.ndarray:
        return np.array(self.values, dtype=np.float64)


class _Booleans(_Numbers):
    """A boolean column as it is read: 1.0 for true, 0.0 for false, as the training program reads the cells."""

    kind = "boolean"

    @staticmethod
    def parse(cell: str) -> float:
        try:
            return BOOLEAN_TEXTS[cell]
        except KeyError:
            raise ValueError(cell) from None


class _Texts:
    """A text column as it is read: equal cells share one string (a pointer a cell)."""

    def __init__(self, missing: frozenset[str], shared: dict[str, str]) -> None:
        self._missing, self._shared = missing, shared
        self.values: list[str | None] = []

    def add(self, cell: str, where: str) -> None:
        self.values.append(None if cell in self._missing else self._shared.setdefault(cell, cell))

    def pad(self, rows: int) -> None:
        self.values.extend([None] * (rows - len(self.values)))

    def array(self) -> np.ndarray:
        return np.asarray(self.values, dtype=object)


def read_holdout(
    s3: S3Client,
    bucket: str,
    folder: str,
    types: Mapping[str, FeatureType],
    hashed: Sequence[str],
    missing: frozenset[str],
    work_dir: Path,
) -> HoldoutTable:
    """The columns named in ``types`` (the challenger's features and target, each read as its type says) of every
    CSV file under ``folder``, concatenated; a column a file lacks is missing in its rows. Numbers are parsed as they
    are read and equal texts share one string, so memory grows by about 8 bytes per cell read. Each row is also
    hashed over the ``hashed`` columns' cells (:func:`functions.common.row_ids.row_hash`)."""
    shared: dict[str, str] = {}
    readers = {"numeric": _Numbers, "boolean": _Booleans}
    columns: dict[str, _Numbers | _Texts] = {
        name.lower(): readers[kind](name, missing) if kind in readers else _Texts(missing, shared)
        for name, kind in types.items()
    }
    feedback: list[bool] = []
    hashes = array("Q")
    files = []
    seen: set[str] = set()
    for key in sorted(_keys(s3, bucket, folder)):
        relative = key[len(folder) :]
        path = work_dir / "holdout.csv"
        s3.download_file(bucket, key, str(path), Config=ONE_STREAM)
        with path.open(encoding="utf-8-sig", newline="") as stream:
            reader = csv.reader(stream)
            header = [name.lower() for name in next(reader, [])]
            seen.update(header)
            kept = [(position, columns[name]) for position, name in enumerate(header) if name in columns]
            places = {name: position for position, name in enumerate(header)}
            hashed_at = [places.get(name.lower()) for name in hashed]
            for row in reader:
                where = f"holdout file {relative} line {reader.line_num}"
                if len(row) != len(header):
                    raise EvaluationError(f"{where}: {len(row)} cells, the header has {len(header)}")
                for position, column in kept:
                    column.add(row[position], where)
                feedback.append(is_feedback(relative))
                hashes.append(row_hash([None if at is None or row[at] in missing else row[at] for at in hashed_at]))
        for column in columns.values():
            column.pad(len(feedback))
        files.append(relative)
        path.unlink()
    found = {name: column.array() for name, column in columns.items() if name in seen}
    return HoldoutTable(found, np.asarray(feedback, dtype=bool), tuple(files), np.array(hashes, dtype=np.uint64))


def class_label(cell: str | None, classes: Sequence[str]) -> str | None:
    """The class a target cell names, spelled as the model's classes are: the training program turns integral
    numbers into integers (``1.0`` -> ``1``), and Parquet booleans written as CSV are lower case."""
    if cell is None or cell in classes:
        return cell
    try:
        number = float(cell)
    except ValueError:
        number = math.nan
    if math.isfinite(number) and number == round(number) and str(int(number)) in classes:
        return str(int(number))
    matches = [label for label in classes if label.lower() == cell.lower()]
    return matches[0] if len(matches) == 1 else cell


def predictions(model: Model, columns: Mapping[str, np.ndarray]) -> scoring.Predictions:
    """The model's outputs on every row of ``columns`` (its features, as :class:`HoldoutTable` holds them), in
    batches: numbers as float32, a missing category as the graph expects it. The holdout is read with the
    challenger's missing tokens; a category that is one of this model's is missing for it, as its serving reads it
    (a champion trained with other tokens)."""
    rows = len(next(iter(columns.values()))) if columns else 0
    parts = []
    for start in range(0, rows, PREDICT_ROWS):
        feeds = {}
        for feature in model.metadata.features:
            chunk = columns[feature.name][start : start + PREDICT_ROWS]
            if feature.type == "categorical":
                missing = chunk == None  # noqa: E711
                # Empty cells are None already (every token set holds the empty text): a cell at a time only for
                # other tokens.
                if tokens := model.schema.missing[feature.name] - {""}:
                    missing |= np.fromiter((cell in tokens for cell in chunk), bool, len(chunk))
                feeds[feature.name] = np.where(missing, MISSING_CATEGORY, chunk).reshape(-1, 1)
            else:
                feeds[feature.name] = chunk.astype(np.float32).reshape(-1, 1)
        parts.append(model.outputs(feeds))

    def joined(name: str, empty: np.ndarray) -> np.ndarray:
        return np.concatenate([part[name] for part in parts]) if parts else empty

    if model.task == "classification":
        # The graph's own answers, as serving sends them (a decision threshold may have set them).
        classes = tuple(model.metadata.classes)
        return scoring.Predictions.answered(
            classes,
            joined(PROBABILITIES_OUTPUT, np.empty((0, len(classes)))),
            joined(LABEL_OUTPUT, np.empty((0,), dtype=object)).ravel(),
        )
    return scoring.Predictions(values=joined(VALUE_OUTPUT, np.empty(0)).ravel())


@dataclass(frozen=True)
class Champion:
    model: Model
    # The hashes of the rows it was fitted on; None: its bundle records none (an older bundle).
    fit_rows: np.ndarray | None


def _open(archive: Path, version: str, work_dir: Path) -> tuple[Path, Model]:
    try:
        # load_model checks the graph against the metadata's checksum; model.joblib is never read.
        bundle_dir, _ = open_bundle(archive, work_dir / version, require=())
        return bundle_dir, load_model(bundle_dir, str(archive), version)
    except BundleError as exc:
        raise EvaluationError(f"the {version} bundle cannot be scored: {exc}") from exc


def _champion(registry: Registry, champion: ChampionRef, work_dir: Path) -> Champion:
    """The champion Prepare named, from the registry, refused unless its archive has the checksum Prepare read."""
    record = registry.get_version(champion.version)
    archive = registry.fetch_archive(record.archive_key, champion.sha256, work_dir / "champion" / ARCHIVE_FILE)
    bundle_dir, model = _open(archive, champion.version, work_dir)
    try:
        recorded = read_fit_rows(bundle_dir, model.metadata)
    except BundleError as exc:
        raise EvaluationError(f"the champion {champion.version} bundle cannot be scored: {exc}") from exc
    fit_rows = None if recorded is None else np.frombuffer(recorded, dtype=FIT_ROWS_DTYPE).astype(np.uint64)
    return Champion(model, fit_rows)


@dataclass(frozen=True)
class LabelledRows:
    """The holdout rows with a target: their positions in the table, their truth (class labels spelled as the
    model's, or floats) and the model's feature columns on them."""

    positions: np.ndarray
    truth: np.ndarray
    columns: dict[str, np.ndarray]


def labelled_rows(metadata: ModelMetadata, table: HoldoutTable) -> LabelledRows:
    target = table.column(metadata.target)
    if metadata.task == "classification":
        labelled = np.flatnonzero(target != None)  # noqa: E711
        truth = np.asarray([class_label(cell, metadata.classes) for cell in target[labelled]], dtype=object)
    else:
        labelled = np.flatnonzero(~np.isnan(target))
        truth = target[labelled]
    return LabelledRows(
        labelled, truth, {feature.name: table.column(feature.name)[labelled] for feature in metadata.features}
    )


def holdout_importances(
    challenger: Model, rows: LabelledRows, metric: str, positive: str | None
) -> dict[str, Any] | None:
    """The challenger's permutation importances of the gate's metric on the labelled holdout rows (a bounded,
    seeded sample: :mod:`functions.common.importances`); None when the metric is undefined there. Informational:
    the gate does not judge them. ``positive``: the class F1 is of, as the gate scores it."""
    found = importances.permutation_importances(
        lambda part: predictions(challenger, part),
        challenger.metadata.task,
        rows.truth,
        rows.columns,
        metric,
        positive=positive,
    )
    return None if found is None else found.to_dict()


def positive_class(hyperparameters: Mapping[str, str], challenger: ModelMetadata) -> str | None:
    """The class F1 is of: the run's ``positive_class`` (else the second of the sorted classes), never one the
    judged job chose. A challenger whose metadata records another one is refused."""
    chosen = hyperparameters.get("positive_class") or None
    classes = tuple(challenger.classes) if challenger.task == "classification" else ()
    if len(classes) != 2:
        if chosen is not None:
            raise EvaluationError(
                f"hyperparameter 'positive_class'={chosen!r} applies to binary classification only; the challenger "
                f"is a {challenger.task} model with {len(classes)} classes"
            )
        return None
    expected = positive_label(classes, chosen)
    if challenger.positive_label != expected:
        raise EvaluationError(
            f"the challenger's metadata records the positive class {challenger.positive_label!r}, but the run's "
            f"hyperparameters make it {expected!r}: the job did not train as it was told"
        )
    return expected


def score_holdout(
    challenger: Model,
    champion: Champion | None,
    table: HoldoutTable,
    rows: LabelledRows,
    *,
    min_slice_rows: int,
    champion_named: bool,
    allow_schema_change: bool,
    positive: str | None = None,
    min_scored_rows: int = 0,
    seed: int = 0,
) -> Scores:
    """Both models on the labelled holdout rows the champion was not fitted on (by its fit rows: none of them when
    it was trained by this workflow, whose holdout is the same rows in every run); the champion only when its
    schema matches the challenger's (then it takes the same columns). ``rows``: the challenger's
    :func:`labelled_rows` of ``table``."""
    metadata = challenger.metadata
    labelled, truth, columns = rows.positions, rows.truth, rows.columns
    scored = np.arange(len(labelled))
    champion_seen = None
    not_compared = None
    champion_predictions = None
    types = {feature.name: feature.type for feature in metadata.features}
    if champion is not None:
        differences = schema_differences(
            champion.model.metadata, metadata.target, metadata.task, types, metadata.classes
        )
        if differences:
            not_compared = "the model schema differs from the champion's: " + "; ".join(differences)
            if not allow_schema_change:
                not_compared += " (allow_schema_change is off)"
        else:
            champion_predictions = predictions(champion.model, columns)
            if champion.fit_rows is not None:
                seen = np.isin(table.hashes[labelled], champion.fit_rows)
                scored, champion_seen = scored[~seen], int(seen.sum())
    holdout = scoring.Holdout(
        task=metadata.task,
        truth=truth,
        columns=columns,
        types=types,
        scored=scored,
        trusted=scored[~table.feedback[labelled][scored]],
        feature_fit=scored[0::2],
        feature_scored=scored[1::2],
        holdout_rows=len(labelled),
        champion_seen=champion_seen,
        positive_class=positive,
    )
    return scoring.score(
        holdout,
        predictions(challenger, columns),
        champion_predictions,
        min_slice_rows=min_slice_rows,
        champion_given=champion_named,
        champion_not_compared=not_compared,
        bootstrap_below=min_scored_rows,
        bootstrap_seed=seed,
    )


def bootstrap_seed(version: str) -> int:
    """The seed of a small holdout's resamples: fixed by the version, so Evaluate run again draws the same ones."""
    return int.from_bytes(hashlib.sha256(version.encode()).digest()[:8], "big")


def evaluate(settings: WorkflowSettings, s3: S3Client, registry: Registry, state: RunState) -> EvaluationResult:
    """Score both models on the run's holdout and write the evaluation the gate judges beside it."""
    prepared, training = state.prepare, state.training
    if prepared is None or not prepared.version or training is None or state.holdout is None:
        raise WorkflowError(
            f"Evaluate needs {PrepareResult.path('version')}, {TrainingResult.path()} and the holdout in the state: "
            "HoldOut, Prepare and Train must run first"
        )
    version = prepared.version
    bucket, key = split_s3_uri(training.model_artifacts)
    with tempfile.TemporaryDirectory(prefix="driftloop-evaluate-") as work:
        work_dir = Path(work)
        archive = work_dir / "challenger" / ARCHIVE_FILE
        archive.parent.mkdir(parents=True)
        s3.download_file(bucket, key, str(archive))
        _, challenger = _open(archive, version, work_dir)
        metadata = challenger.metadata
        positive = positive_class(prepared.hyperparameters, metadata)
        champion = None if prepared.champion is None else _champion(registry, prepared.champion, work_dir)
        gate = parse_gate_settings(settings.hyperparameters, challenger.task)
        types: dict[str, FeatureType] = {feature.name: feature.type for feature in metadata.features}
        table = read_holdout(
            s3,
            settings.data_bucket,
            holdout_rows_folder(settings.holdout_prefix, version),
            {**types, metadata.target: "numeric" if metadata.task == "regression" else "categorical"},
            hashed_columns(metadata.target, types),
            frozenset(metadata.missing_tokens),
            work_dir,
        )
        rows = labelled_rows(metadata, table)
        scores = score_holdout(
            challenger,
            champion,
            table,
            rows,
            min_slice_rows=gate.min_slice_rows,
            champion_named=prepared.champion is not None,
            allow_schema_change=gate.allow_schema_change,
            positive=positive,
            min_scored_rows=gate.min_scored_rows,
            seed=bootstrap_seed(version),
        )
        found_importances = holdout_importances(challenger, rows, gate.metric, positive)
    verdict = decide(gate, scores)
    evaluation = Evaluation(
        settings=gate,
        scores=scores,
        verdict=verdict,
        task=challenger.task,
        champion_version=None if prepared.champion is None else prepared.champion.version,
        positive_class=positive,
        importances=found_importances,
        details={
            "evaluated_by": "workflow",
            "holdout_files": list(table.files),
            "champion_sha256": None if prepared.champion is None else prepared.champion.sha256,
            "challenger_artifact": training.model_artifacts,
            # For readers (the model card): not judged.
            "class_warnings": []
            if scores.challenger_confusion is None
            else list(scoring.class_warnings(scores.challenger_confusion)),
        },
    )
    key = holdout_evaluation_key(settings.holdout_prefix, version)
    s3.put_object(
        Bucket=settings.data_bucket,
        Key=key,
        Body=json.dumps(evaluation.to_dict(), indent=2, sort_keys=True).encode(),
        ContentType="application/json",
    )
    return EvaluationResult(
        key=key,
        passed=verdict.passed,
        held=verdict.held,
        scored_rows=scores.scored_rows,
        trusted_rows=scores.trusted_rows or 0,
    )
