"""The model bundle: the one contract between training, the registry and serving.

A bundle is a directory (inside SageMaker's ``model.tar.gz``) holding:

- ``model.onnx``: the whole preprocessing + estimator pipeline, one ONNX input per feature;
- ``model.joblib``: the same scikit-learn pipeline, for analysis by a person who trusts its origin (a pickle:
  loading it runs code, so no platform step, serving or a later training job, ever loads it);
- ``metadata.json``: what the model expects and how it was made (see :class:`ModelMetadata`),
  including the sha256 of the two model files so a tampered or truncated bundle is refused;
- ``fit_rows.u64`` (optional, absent from older bundles): the rows the model was fitted on, so that a later
  challenger's gate scores it only on rows it never saw (see :data:`FIT_ROWS_FILE`). Serving never reads it.
- ``statistics.json`` and ``constraints.json`` (optional, absent from older bundles): the training data's
  data-quality baseline in SageMaker Model Monitor's formats (:mod:`functions.common.constraints`); the registry
  keeps a copy beside the version for the monitor.

Standard library only: the inference and workflow Lambdas import this module.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tarfile
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

from functions.common import text_values

FORMAT_VERSION = 1
ONNX_FILE = "model.onnx"
JOBLIB_FILE = "model.joblib"
METADATA_FILE = "metadata.json"
ARCHIVE_FILE = "model.tar.gz"
MODEL_FILES = (ONNX_FILE, JOBLIB_FILE)
# The sorted unique 64-bit hashes of the rows of the fit split (training.row_ids.row_hashes defines the hash),
# unsigned little-endian, 8 bytes each, no header. Sealed like the model files when present.
FIT_ROWS_FILE = "fit_rows.u64"
FIT_ROWS_DTYPE = "<u8"
# The data-quality baseline, in the formats functions.common.constraints owns.
STATISTICS_FILE = "statistics.json"
CONSTRAINTS_FILE = "constraints.json"
DATA_QUALITY_FILES = (STATISTICS_FILE, CONSTRAINTS_FILE)
OPTIONAL_FILES = (FIT_ROWS_FILE, *DATA_QUALITY_FILES)

Task = Literal["classification", "regression"]
# A boolean feature (Parquet bool, or CSV cells all true/false in any case) reaches model.onnx as a float32 input,
# 0 for false and 1 for true (NaN when missing), as a numeric one does: one value, no "unknown category", so trees
# split it and linear models weigh it once; its type keeps /predict taking JSON true/false, whatever the file format.
FeatureType = Literal["numeric", "categorical", "boolean"]
FEATURE_TYPES: tuple[FeatureType, ...] = ("numeric", "categorical", "boolean")
TASKS: tuple[Task, ...] = ("classification", "regression")
# The texts a boolean feature's cells hold (a CSV file, a holdout, a batch input), and the value each means.
BOOLEAN_TEXTS = {"true": 1.0, "True": 1.0, "TRUE": 1.0, "false": 0.0, "False": 0.0, "FALSE": 0.0}

# A categorical value the client left out (null) reaches the model as this token, in training and serving alike.
MISSING_CATEGORY = "__missing__"

# The text cells pandas reads as missing by default (read_csv's na_values). Bundles written before
# ModelMetadata.missing_tokens were trained with these as missing (besides their missing_values); training now
# reads them as text, and names them when a numeric column holds one.
PANDAS_NA_SPELLINGS = frozenset(
    {
        "", "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan", "1.#IND", "1.#QNAN", "<NA>", "N/A",
        "NA", "NULL", "NaN", "None", "n/a", "nan", "null",
    }
)  # fmt: skip

# model.onnx has one [None, 1] input per feature, named by Feature.onnx_input (float32, string for categoricals),
# and these fixed outputs. Classifiers: a string label per row and the class probabilities [N, n_classes] in the order
# of metadata.classes. Regressors: the prediction [N, 1].
LABEL_OUTPUT = "label"
PROBABILITIES_OUTPUT = "probabilities"
VALUE_OUTPUT = "value"
ONNX_OUTPUTS: dict[Task, tuple[str, ...]] = {
    "classification": (LABEL_OUTPUT, PROBABILITIES_OUTPUT),
    "regression": (VALUE_OUTPUT,),
}


class BundleError(Exception):
    """The bundle is missing, incomplete, tampered with or of an unknown format."""


def positive_label(classes: Sequence[str], positive_class: str | None = None) -> str | None:
    """The positive class among a classifier's ``classes``: ``positive_class`` when given, else the second; None
    unless there are two classes."""
    if len(classes) != 2:
        return None
    return classes[1] if positive_class is None else positive_class


@dataclass(frozen=True)
class Feature:
    name: str
    type: FeatureType
    # Categorical: the categories the model tells apart, seen in training (others are accepted and encoded as
    # all-zero).
    categories: tuple[str, ...] = ()
    # Numeric: the observed range in training (informational: serving does not reject outside it).
    minimum: float | None = None
    maximum: float | None = None
    # The model.onnx input that takes this feature: a column name is any text, an ONNX name an identifier. Empty
    # means the feature's own name, as in bundles written before names were mapped.
    onnx_input: str = ""

    def __post_init__(self) -> None:
        if not self.onnx_input:
            object.__setattr__(self, "onnx_input", self.name)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Feature:
        kind = data.get("type")
        if kind not in FEATURE_TYPES:
            raise BundleError(f"feature {data.get('name')!r} has unknown type {kind!r}")
        return cls(
            name=str(data["name"]),
            type=kind,
            categories=tuple(str(c) for c in data.get("categories", ())),
            minimum=data.get("minimum"),
            maximum=data.get("maximum"),
            onnx_input=str(data.get("onnx_input") or ""),
        )

    def to_dict(self) -> dict[str, Any]:
        common = {"name": self.name, "type": self.type, "onnx_input": self.onnx_input}
        if self.type == "categorical":
            return {**common, "categories": list(self.categories)}
        if self.type == "boolean":
            return common
        return {**common, "minimum": self.minimum, "maximum": self.maximum}


@dataclass(frozen=True)
class ModelMetadata:
    """Everything a consumer needs to know about a model without loading it."""

    task: Task
    target: str
    features: tuple[Feature, ...]
    # Classification: the class labels in the order of the ONNX probability columns, as strings.
    classes: tuple[str, ...]
    algorithm: str
    primary_metric: str
    metrics: dict[str, float]
    # Per-feature and prediction distributions on the training data: the reference for drift monitoring.
    baseline: dict[str, Any]
    # sha256 and row count of the training data, and the files it came from.
    training_data: dict[str, Any]
    hyperparameters: dict[str, str]
    libraries: dict[str, str]
    created_at: str
    # sha256 of each model file, checked on every load.
    files: dict[str, str] = field(default_factory=dict)
    format_version: int = FORMAT_VERSION
    # What training noticed about the data and did not fail on (e.g. an id-like column, a constant column the model
    # ignores), as shown in the job log.
    warnings: tuple[str, ...] = ()
    # Binary classification: the class F1 is of and whose probability the decision threshold and the drift baseline
    # follow. None (and in bundles written before it was recorded): the second of the sorted classes.
    positive_class: str | None = None
    # Binary classification: the graph's ``label`` is the positive class when its probability is at least this
    # (baked into model.onnx); None: the most probable class.
    decision_threshold: float | None = None
    # The texts that mean a missing value, in training's cells and serving's strings alike: the empty text and the
    # missing_values tokens, sorted. Absent from older bundles: see recorded_missing_tokens.
    missing_tokens: tuple[str, ...] = ("",)

    @property
    def feature_names(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.features)

    @property
    def positive_label(self) -> str | None:
        """The positive class of a binary classifier; None for any other model."""
        return positive_label(self.classes, self.positive_class) if self.task == "classification" else None

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["features"] = [f.to_dict() for f in self.features]
        data["classes"] = list(self.classes)
        data["warnings"] = list(self.warnings)
        data["missing_tokens"] = list(self.missing_tokens)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ModelMetadata:
        version = data.get("format_version")
        if version != FORMAT_VERSION:
            raise BundleError(f"unsupported bundle format_version {version!r} (expected {FORMAT_VERSION})")
        task = data.get("task")
        if task not in TASKS:
            raise BundleError(f"metadata task must be one of {TASKS}, got {task!r}")
        try:
            return cls(
                task=task,
                target=str(data["target"]),
                features=tuple(Feature.from_dict(f) for f in data["features"]),
                classes=tuple(str(c) for c in data.get("classes", ())),
                algorithm=str(data["algorithm"]),
                primary_metric=str(data["primary_metric"]),
                metrics={str(k): float(v) for k, v in data["metrics"].items()},
                baseline=dict(data["baseline"]),
                training_data=dict(data["training_data"]),
                hyperparameters={str(k): str(v) for k, v in data["hyperparameters"].items()},
                libraries={str(k): str(v) for k, v in data["libraries"].items()},
                created_at=str(data["created_at"]),
                files={str(k): str(v) for k, v in data.get("files", {}).items()},
                format_version=version,
                warnings=tuple(str(w) for w in data.get("warnings", ())),
                positive_class=None if data.get("positive_class") is None else str(data["positive_class"]),
                decision_threshold=None
                if data.get("decision_threshold") is None
                else float(data["decision_threshold"]),
                missing_tokens=recorded_missing_tokens(data),
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise BundleError(f"metadata is malformed: {exc!r}") from exc


def missing_tokens(declared: Sequence[str]) -> tuple[str, ...]:
    """The texts that mean a missing value when ``declared`` (the missing_values hyperparameter) are declared: the
    empty text (an empty CSV cell) and those, sorted."""
    return tuple(sorted({"", *declared}))


def recorded_missing_tokens(metadata: Mapping[str, Any]) -> tuple[str, ...]:
    """The missing tokens a metadata document records; for an older bundle, which records none, the tokens its
    model was trained with: pandas' defaults and its missing_values."""
    tokens = metadata.get("missing_tokens")
    if tokens is not None:
        return tuple(str(token) for token in tokens)
    text = str((metadata.get("hyperparameters") or {}).get("missing_values", ""))
    try:
        declared = text_values.text_list(text)
    except ValueError as exc:
        raise BundleError(f"metadata hyperparameter 'missing_values'={text!r} {exc}") from None
    return missing_tokens(sorted(PANDAS_NA_SPELLINGS.union(declared)))


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for chunk in iter(lambda: stream.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def write_metadata(bundle_dir: Path, metadata: ModelMetadata) -> ModelMetadata:
    """Seal the bundle: record the model files' checksums and write ``metadata.json``."""
    missing = [name for name in MODEL_FILES if not (bundle_dir / name).is_file()]
    if missing:
        raise BundleError(f"cannot seal bundle in {bundle_dir}: missing {', '.join(missing)}")
    present = [name for name in OPTIONAL_FILES if (bundle_dir / name).is_file()]
    files = {name: sha256_file(bundle_dir / name) for name in (*MODEL_FILES, *present)}
    sealed = replace(metadata, files=files)
    (bundle_dir / METADATA_FILE).write_text(json.dumps(sealed.to_dict(), indent=2, sort_keys=True))
    return sealed


def read_metadata(bundle_dir: Path) -> ModelMetadata:
    path = bundle_dir / METADATA_FILE
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError as exc:
        raise BundleError(f"{path} is missing") from exc
    except (ValueError, UnicodeDecodeError) as exc:
        raise BundleError(f"{path} is not valid JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise BundleError(f"{path} must hold a JSON object")
    return ModelMetadata.from_dict(data)


def verify_bundle(bundle_dir: Path, *, require: tuple[str, ...] = MODEL_FILES) -> ModelMetadata:
    """Read the metadata and check every required model file against its recorded sha256."""
    metadata = read_metadata(bundle_dir)
    for name in require:
        _check_file(bundle_dir, metadata, name)
    return metadata


def _check_file(bundle_dir: Path, metadata: ModelMetadata, name: str) -> Path:
    expected = metadata.files.get(name)
    if expected is None:
        raise BundleError(f"metadata records no checksum for {name}")
    path = bundle_dir / name
    if not path.is_file():
        raise BundleError(f"{name} is missing from the bundle")
    actual = sha256_file(path)
    if actual != expected:
        raise BundleError(f"{name} checksum mismatch: expected {expected[:12]}…, found {actual[:12]}…")
    return path


def read_optional(bundle_dir: Path, metadata: ModelMetadata, name: str) -> bytes | None:
    """An optional member (one of :data:`OPTIONAL_FILES`), checked against its sha256; None when the bundle records
    none (an older bundle)."""
    if name not in metadata.files:
        return None
    return _check_file(bundle_dir, metadata, name).read_bytes()


def read_fit_rows(bundle_dir: Path, metadata: ModelMetadata) -> bytes | None:
    """The fit-rows member (format: :data:`FIT_ROWS_FILE`), checked against its sha256; None when the bundle
    records none (an older bundle)."""
    data = read_optional(bundle_dir, metadata, FIT_ROWS_FILE)
    if data is None:
        return None
    if len(data) % 8:
        raise BundleError(f"{FIT_ROWS_FILE} holds {len(data)} bytes, not a whole number of 8-byte row hashes")
    return data


def pack_archive(bundle_dir: Path, archive_path: Path) -> str:
    """Write ``model.tar.gz`` as SageMaker does (files at the archive root); returns its sha256."""
    with tarfile.open(archive_path, "w:gz") as archive:
        for path in sorted(bundle_dir.iterdir()):
            if path.is_file():
                archive.add(path, arcname=path.name)
    return sha256_file(archive_path)


def extract_archive(archive_path: Path, dest: Path) -> Path:
    """Unpack a ``model.tar.gz`` safely (no links, no paths outside ``dest``)."""
    dest.mkdir(parents=True, exist_ok=True)
    try:
        with tarfile.open(archive_path, "r:*") as archive:
            archive.extractall(dest, filter="data")
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise BundleError(f"{archive_path.name} is not a readable model archive: {exc}") from exc
    return dest


def open_bundle(
    source: Path, work_dir: Path | None = None, *, require: tuple[str, ...] = MODEL_FILES
) -> tuple[Path, ModelMetadata]:
    """Accept either an extracted bundle directory or a ``model.tar.gz``; return (directory, metadata), the
    ``require``d model files checked (:func:`verify_bundle`)."""
    if source.is_dir():
        return source, verify_bundle(source, require=require)
    target = work_dir or Path(tempfile.mkdtemp(prefix="driftloop-bundle-"))
    if target.exists():
        shutil.rmtree(target)
    extract_archive(source, target)
    return target, verify_bundle(target, require=require)


def _listing(values: list[str], limit: int = 20) -> str:
    # Bounded: the reasons end up in SageMaker's failure reason, cut at 1024 characters.
    shown = ", ".join(repr(str(v)) for v in values[:limit])
    return shown if len(values) <= limit else f"{shown} and {len(values) - limit} more"


def schema_differences(
    champion: ModelMetadata, target: str, task: str, feature_types: Mapping[str, str], classes: Sequence[str]
) -> list[str]:
    """How a model of ``target`` (``task``) on ``feature_types`` (and ``classes``) differs from the champion's;
    empty when the two are comparable on the same rows."""
    differences = []
    if champion.target != target or champion.task != task:
        differences.append(f"the champion predicts {champion.target!r} ({champion.task}), not {target!r} ({task})")
    old = {f.name: f.type for f in champion.features}
    added = [n for n in feature_types if n not in old]
    removed = [n for n in old if n not in feature_types]
    retyped = [f"{n} ({old[n]} -> {kind})" for n, kind in feature_types.items() if n in old and old[n] != kind]
    if added:
        differences.append(f"added features {_listing(added)}")
    if removed:
        differences.append(f"removed features {_listing(removed)}")
    if retyped:
        differences.append(f"features whose type changed: {', '.join(retyped)}")
    if task == "classification" and champion.task == task and set(champion.classes) != set(classes):
        differences.append(f"classes {sorted(classes)} instead of the champion's {sorted(champion.classes)}")
    return differences
