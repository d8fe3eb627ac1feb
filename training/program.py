"""The training program: SageMaker's ``train`` entry point, runnable locally against any base directory.

Steps: read the hyperparameters and the ``train`` (and optional ``champion``) channel, validate the data,
fit the pipeline on a (stratified) split, score challenger and champion on the same holdout, check the
ONNX export against scikit-learn, then write the bundle to ``model/`` and ``evaluation.json`` to
``output/data/``. Any failure writes its reason to ``output/failure`` and exits non-zero. The gate verdict
does not fail the job: the workflow reads it from ``evaluation.json``.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import traceback
from pathlib import Path
from typing import Any

import pandas as pd
from sklearn.model_selection import train_test_split

from functions.common.bundle import ModelMetadata
from functions.common.gate import EVALUATION_FILE, Evaluation, Verdict, decide
from training.baseline import build_baseline
from training.bundle_writer import describe_features, library_versions, utc_now, write_bundle
from training.champion import Champion, load_champion
from training.contract import (
    CHAMPION_CHANNEL,
    CHAMPION_PREFIX,
    CHANNELS,
    TRAIN_CHANNEL,
    Layout,
    base_dir_from_env,
    metric_line,
)
from training.data import load_training_data
from training.errors import TrainingFailure
from training.evaluation import holdout_metrics
from training.hyperparameters import Hyperparameters, parse_hyperparameters
from training.onnx_export import check_parity, parity_probe, to_onnx
from training.pipeline import build_pipeline
from training.validation import Dataset, validate


def say(message: str) -> None:
    print(message, flush=True)


def _read_json(path: Path, *, required: bool) -> Any:
    if not path.is_file():
        if required:
            raise TrainingFailure(f"{path.name} is missing (expected at {path})")
        return None
    try:
        return json.loads(path.read_text())
    except (ValueError, UnicodeDecodeError) as exc:
        raise TrainingFailure(f"{path.name} is not valid JSON: {exc}") from exc


def read_hyperparameters(layout: Layout) -> Hyperparameters:
    raw = _read_json(layout.hyperparameters, required=True)
    if not isinstance(raw, dict):
        raise TrainingFailure(f"{layout.hyperparameters.name} must hold a JSON object of strings")
    return parse_hyperparameters(raw)


def check_job_config(layout: Layout) -> None:
    """Refuse setups this single-node, File-mode program would silently mishandle."""
    resources = _read_json(layout.resource_config, required=False) or {}
    hosts = resources.get("hosts", [])
    if len(hosts) > 1:
        raise TrainingFailure(f"distributed training is not supported: use one instance, not {len(hosts)}")
    channels = _read_json(layout.input_data_config, required=False) or {}
    problems = [
        f"unknown channel {name!r} (supported: {', '.join(CHANNELS)})" for name in channels if name not in CHANNELS
    ]
    problems += [
        f"channel {name!r} uses {config['TrainingInputMode']} mode; only File and FastFile are supported"
        for name, config in channels.items()
        if isinstance(config, dict) and config.get("TrainingInputMode", "File") not in ("File", "FastFile")
    ]
    if problems:
        raise TrainingFailure("unsupported input data configuration", problems)


def split(dataset: Dataset, hp: Hyperparameters) -> tuple[pd.DataFrame, pd.DataFrame, pd.Series, pd.Series]:
    stratify = dataset.target if dataset.task == "classification" else None
    try:
        parts = train_test_split(
            dataset.inputs, dataset.target, test_size=hp.test_size, random_state=hp.random_seed, stratify=stratify
        )
    except ValueError as exc:
        raise TrainingFailure(f"cannot split off a holdout (test_size {hp.test_size}): {exc}") from exc
    train_x, holdout_x, train_y, holdout_y = parts
    return train_x, holdout_x, train_y, holdout_y


def score_champion(champion: Champion, inputs: pd.DataFrame, target: pd.Series) -> dict[str, float]:
    try:
        return holdout_metrics(champion.model, champion.metadata.task, inputs, target)
    except Exception as exc:  # a pickled model can fail in any way; each means "cannot compare"
        raise TrainingFailure(f"the champion model cannot be scored on the holdout: {exc!r}") from exc


def log_metrics(metrics: dict[str, float], prefix: str = "") -> None:
    for name, value in metrics.items():
        say(metric_line(f"{prefix}{name}", value))


def train(layout: Layout, work_dir: Path) -> None:
    hp = read_hyperparameters(layout)
    check_job_config(layout)
    data = load_training_data(layout.channel(TRAIN_CHANNEL))
    say(f"read {len(data.frame)} rows from {len(data.files)} file(s): {', '.join(data.files)}")
    champion = load_champion(layout.channel(CHAMPION_CHANNEL), work_dir)
    dataset = validate(data.frame, hp, champion.metadata if champion else None)
    task = dataset.task
    knobs = hp.knobs_for(task)
    settings = hp.gate_settings(task)
    if dataset.rows_without_target:
        say(f"dropped {dataset.rows_without_target} row(s) without a target value")
    say(f"task {task}, algorithm {hp.algorithm} {knobs}, features {dataset.feature_types}")

    train_x, holdout_x, train_y, holdout_y = split(dataset, hp)
    pipeline = build_pipeline(task, hp.algorithm, knobs, dataset.feature_types, hp.random_seed)
    pipeline.fit(train_x, train_y)
    challenger = holdout_metrics(pipeline, task, holdout_x, holdout_y)
    log_metrics(challenger)

    details: dict[str, Any] = {
        "task": task,
        "algorithm": hp.algorithm,
        "train_rows": len(train_x),
        "champion_algorithm": champion.metadata.algorithm if champion else None,
    }
    champion_metrics = None
    if champion is not None and dataset.schema_change is None:
        champion_metrics = score_champion(champion, holdout_x, holdout_y)
        log_metrics(champion_metrics, CHAMPION_PREFIX)
    verdict = decide(settings, challenger, champion_metrics)
    if dataset.schema_change:
        details["champion_not_compared"] = dataset.schema_change
        verdict = Verdict(verdict.passed, (*verdict.reasons, f"champion not compared: {dataset.schema_change}"))

    onnx_model = to_onnx(pipeline, dataset.feature_types, task)
    details["onnx_parity"] = check_parity(
        onnx_model, pipeline, parity_probe(holdout_x, dataset.feature_types), dataset.feature_types, task
    )
    say(f"ONNX parity: {details['onnx_parity']}")

    metadata = ModelMetadata(
        task=task,
        target=hp.target,
        features=describe_features(pipeline, train_x, dataset.feature_types),
        classes=tuple(str(c) for c in pipeline.classes_) if task == "classification" else (),
        algorithm=hp.algorithm,
        primary_metric=settings.metric,
        metrics=challenger,
        baseline=build_baseline(dataset.inputs, dataset.feature_types, pipeline, task, holdout_x).to_dict(),
        training_data={
            "sha256": data.sha256,
            "files": list(data.files),
            "rows": len(data.frame),
            "rows_without_target": dataset.rows_without_target,
            "train_rows": len(train_x),
            "holdout_rows": len(holdout_x),
        },
        hyperparameters=hp.effective(task),
        libraries=library_versions(),
        created_at=utc_now(),
    )
    write_bundle(layout.model_dir, pipeline, onnx_model, metadata)
    evaluation = Evaluation(
        settings=settings,
        holdout_rows=len(holdout_x),
        challenger=challenger,
        verdict=verdict,
        champion=champion_metrics,
        champion_version=hp.champion_version,
        details=details,
    )
    layout.output_data_dir.mkdir(parents=True, exist_ok=True)
    (layout.output_data_dir / EVALUATION_FILE).write_text(json.dumps(evaluation.to_dict(), indent=2))
    say(f"gate {'passed' if verdict.passed else 'failed'}: {'; '.join(verdict.reasons)}")
    say(f"wrote the bundle to {layout.model_dir} and {EVALUATION_FILE} to {layout.output_data_dir}")


def fail(layout: Layout, reason: str) -> None:
    say(f"training failed: {reason}")
    layout.failure_file.parent.mkdir(parents=True, exist_ok=True)
    layout.failure_file.write_text(reason)


def run(base_dir: Path) -> int:
    """Run a training job under ``base_dir``; 0 on success, 1 after writing ``output/failure``."""
    layout = Layout(base_dir)
    layout.failure_file.unlink(missing_ok=True)
    try:
        with tempfile.TemporaryDirectory(prefix="driftloop-train-") as work:
            train(layout, Path(work))
    except TrainingFailure as failure:
        fail(layout, failure.message)
        return 1
    except Exception as exc:  # still leave SageMaker a reason instead of a bare stack trace
        traceback.print_exc()
        fail(layout, f"unexpected error: {type(exc).__name__}: {exc}")
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training", description="Train a driftloop model bundle.")
    # SageMaker runs `docker run <image> train`; the command is optional locally.
    parser.add_argument("command", nargs="?", choices=["train"], default="train")
    parser.add_argument(
        "--base-dir",
        type=Path,
        default=None,
        help="the SageMaker directory tree (default: $SAGEMAKER_BASE_DIR or /opt/ml)",
    )
    args = parser.parse_args(argv)
    return run(args.base_dir or base_dir_from_env())
