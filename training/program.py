"""The training program: SageMaker's ``train`` entry point, runnable locally against any base directory.

Steps: read the hyperparameters and the ``train`` (and optional ``champion``) channel, validate the data,
fit the pipeline on a (stratified) split, score challenger (its pipeline) and champion (its ``model.onnx``,
training.champion) on the holdout rows the champion was never fitted on and on the trusted ones among them
(training.holdout; the facts the gate judges: functions.common.scoring), check the ONNX export against
scikit-learn, then write the bundle to ``model/`` and ``evaluation.json`` to ``output/data/``. Any failure
writes its reason to ``output/failure`` and exits non-zero. The gate verdict does not fail the job: the
workflow reads it from ``evaluation.json``.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

import numpy as np

from functions.common.bundle import ModelMetadata, missing_tokens, positive_label
from functions.common.gate import EVALUATION_FILE, Evaluation, decide
from functions.common.scoring import class_warnings, metrics, score
from training.baseline import build_baseline
from training.bundle_writer import describe_features, library_versions, utc_now, write_bundle
from training.champion import Champion, champion_predictions, load_champion
from training.contract import (
    CHAMPION_CHANNEL,
    CHAMPION_PREFIX,
    CHANNELS,
    SDK_CODE_CHANNELS,
    TRAIN_CHANNEL,
    Layout,
    base_dir_from_env,
    metric_line,
)
from training.data import TrainingData, load_training_data
from training.data_quality import write_data_quality
from training.errors import TrainingFailure
from training.evaluation import holdout, pipeline_predictions, truth
from training.holdout import Rows, Split, labelled_rows, split
from training.hyperparameters import Hyperparameters, parse_hyperparameters
from training.onnx_export import bake_threshold, check_parity, parity_probe, to_onnx
from training.pipeline import ESTIMATOR_STEP, build_pipeline, fit, parallelism
from training.row_ids import write_fit_rows
from training.serving_estimate import estimate_serving_load, fitted_advice
from training.serving_load import ServingLimits, check_serving_load
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
    for name in SDK_CODE_CHANNELS:
        if channels.pop(name, None) is not None:
            say(f"ignoring channel {name!r}: the SageMaker SDK's source code, which this program does not run")
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


def split_holdout(
    layout: Layout, data: TrainingData, dataset: Dataset, hp: Hyperparameters, compared: Champion | None
) -> tuple[Rows, Split]:
    """The holdout, drawn from the rows the champion (when compared) was never fitted on first."""
    rows = labelled_rows(data, layout.channel(TRAIN_CHANNEL), hp.target, dataset.feature_types, len(dataset.target))
    seen = None if compared is None or compared.fit_rows is None else np.isin(rows.hashes, compared.fit_rows)
    strata = dataset.target if dataset.task == "classification" else None
    parts = split(seen, rows.feedback, strata, hp.test_size, hp.random_seed)
    excluded = "no champion compared" if compared is None else "unknown" if seen is None else parts.champion_seen
    say(
        f"holdout: {len(parts.holdout)} rows; seen by the champion, not scored: {excluded}; "
        f"scored: {len(parts.scored)}; trusted (not feedback): {len(parts.trusted)}"
    )
    return rows, parts


def log_metrics(metrics: dict[str, float] | None, prefix: str = "") -> None:
    for name, value in (metrics or {}).items():
        say(metric_line(f"{prefix}{name}", value))


def train(layout: Layout, work_dir: Path) -> None:
    hp = read_hyperparameters(layout)
    check_job_config(layout)
    data = load_training_data(layout.channel(TRAIN_CHANNEL), hp.missing_values)
    say(f"read {len(data.frame)} rows from {len(data.files)} file(s): {', '.join(data.files)}")
    champion = load_champion(layout.channel(CHAMPION_CHANNEL), work_dir)
    dataset = validate(data.frame, hp, champion.metadata if champion else None)
    task = dataset.task
    knobs = hp.knobs_for(task)
    settings = hp.gate_settings(task)
    if dataset.rows_without_target:
        say(f"dropped {dataset.rows_without_target} row(s) without a target value")
    for warning in dataset.warnings:
        say(f"warning: {warning}")
    say(f"task {task}, algorithm {hp.algorithm} {knobs}, features {dataset.feature_types}")

    compared = champion if champion is not None and dataset.schema_change is None else None
    rows, parts = split_holdout(layout, data, dataset, hp, compared)
    train_x, train_y = dataset.inputs.iloc[parts.train], dataset.target.iloc[parts.train]
    holdout_x, holdout_y = dataset.inputs.iloc[parts.holdout], dataset.target.iloc[parts.holdout]
    estimate = estimate_serving_load(hp, task, knobs, dataset.spec, train_x, train_y, work_dir)
    if estimate:
        say(f"serving load estimated from a fit on {estimate['sample_rows']} rows: {estimate}")
    pipeline = build_pipeline(task, hp.algorithm, knobs, dataset.spec, hp.random_seed, hp.class_weight)
    say(f"fitting on {len(train_x)} rows: {parallelism()}")
    started = time.monotonic()
    fit(pipeline, train_x, train_y, hp.class_weight)
    fit_seconds = round(time.monotonic() - started, 1)
    say(f"fitted in {fit_seconds} s")
    classes = tuple(str(c) for c in pipeline.classes_) if task == "classification" else ()
    positive = positive_label(classes, hp.positive_class)
    decision = None if positive is None or hp.decision_threshold is None else (positive, hp.decision_threshold)
    if positive is not None:
        say(f"positive class (F1, decision threshold, drift baseline): {positive!r}")
    mine = pipeline_predictions(pipeline, task, dataset.inputs, parts.holdout, decision)
    challenger = metrics(task, truth(task, holdout_y), mine.take(parts.holdout), positive) or {}

    details: dict[str, Any] = {
        "task": task,
        "algorithm": hp.algorithm,
        "train_rows": len(train_x),
        "fit_seconds": fit_seconds,
        "champion_algorithm": champion.metadata.algorithm if champion else None,
    }
    if estimate:
        details["serving_estimate"] = estimate
    scores = score(
        holdout(task, dataset.inputs, dataset.target, parts, dataset.spec.model_types, positive),
        mine,
        None if compared is None else champion_predictions(compared, dataset.inputs, parts.scored),
        min_slice_rows=settings.min_slice_rows,
        champion_given=champion is not None,
        champion_not_compared=dataset.schema_change,
        bootstrap_below=settings.min_scored_rows,
        bootstrap_seed=hp.random_seed,
    )
    # Both on the rows the gate scores, so the two series compare.
    log_metrics(scores.challenger)
    log_metrics(scores.champion, CHAMPION_PREFIX)
    if scores.challenger_confusion is not None:
        details["class_warnings"] = list(class_warnings(scores.challenger_confusion))
        for warning in details["class_warnings"]:
            say(f"warning: {warning}")
    verdict = decide(settings, scores)

    onnx_model = to_onnx(pipeline, dataset.spec, task)
    if decision is not None:
        bake_threshold(onnx_model, classes, *decision)
    details["onnx_parity"] = check_parity(
        onnx_model, pipeline, parity_probe(holdout_x, dataset.feature_types), dataset.spec, task, decision
    )
    say(f"ONNX parity: {details['onnx_parity']}")
    # Before model/ holds anything: a job that fails here leaves no bundle behind.
    limits = ServingLimits(hp.serving_memory_mb, hp.serving_timeout_seconds)
    serving_load = check_serving_load(
        onnx_model.SerializeToString(),
        limits,
        work_dir,
        lambda measured: fitted_advice(
            hp.algorithm, pipeline.named_steps[ESTIMATOR_STEP], len(train_x), measured, limits, len(classes)
        ),
    )
    if serving_load:
        details["serving_load"] = serving_load
        say(f"serving load: {serving_load}")

    metadata = ModelMetadata(
        task=task,
        target=hp.target,
        features=describe_features(pipeline, train_x, dataset.spec),
        classes=classes,
        algorithm=hp.algorithm,
        primary_metric=settings.metric,
        metrics=challenger,
        baseline=build_baseline(
            dataset.inputs, dataset.spec, pipeline, task, holdout_x, positive, hp.decision_threshold
        ).to_dict(),
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
        missing_tokens=missing_tokens(hp.missing_values),
        created_at=utc_now(),
        warnings=dataset.warnings,
        positive_class=positive,
        decision_threshold=hp.decision_threshold,
    )
    # Before write_bundle seals the bundle, which records this member's checksum.
    write_fit_rows(layout.model_dir, rows.hashes[parts.train])
    write_data_quality(layout.model_dir, dataset.inputs, dataset.spec)
    write_bundle(layout.model_dir, pipeline, onnx_model, metadata)
    evaluation = Evaluation(
        settings=settings,
        scores=scores,
        verdict=verdict,
        task=task,
        champion_version=hp.champion_version,
        details=details,
        positive_class=positive,
    )
    layout.output_data_dir.mkdir(parents=True, exist_ok=True)
    (layout.output_data_dir / EVALUATION_FILE).write_text(json.dumps(evaluation.to_dict(), indent=2))
    outcome = "passed" if verdict.passed else "held for approval" if verdict.held else "failed"
    say(f"gate {outcome}: {'; '.join(verdict.reasons)}")
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
