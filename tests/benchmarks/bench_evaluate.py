"""Holdout benchmark: the HoldOut and Evaluate steps at 10k, 100k and 1M training rows.

Run with ``python -m tests.benchmarks.bench_evaluate`` (``make bench-evaluate``); ``--rows`` picks the sizes.
An S3 server (moto's, in this process) holds the data; each step runs in a child process as its Lambda would,
through the step functions the handlers call, with the workflow's settings (``training.holdout_share``). Before the
sizes, the real training program fits a champion and a challenger (5,000 synthetic rows each) and the champion is
registered and promoted. For each size, synthetic churn rows (``training.synthetic``) are written as the run's
assembled ``base/part-1.csv``; then:

1. HoldOut splits it (pyarrow, in batches): the rows it keeps are written back, the held ones to the holdout;
2. Evaluate scores both ONNX bundles on the held rows and writes the evaluation.

Reported per size: each step's wall time and the child's peak resident memory (VmHWM, as Lambda's REPORT line
counts the whole environment), and the ratio to the smallest size. HoldOut's memory should stay flat (it
streams); Evaluate's grows with the holdout's rows by the columns the models use (about 100 bytes per row of ten
features), which sets how large a holdout the Evaluate Lambda's memory scores. Raw figures go to
``bench-output/evaluate.json``. The program reports; it exits non-zero only when it cannot run.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import boto3

from functions.common.bundle import pack_archive
from functions.common.registry import Registry, new_version_id
from functions.workflow.settings import WorkflowSettings

ROOT = Path(__file__).resolve().parents[2]
OUTPUT = ROOT / "bench-output" / "evaluate.json"
ROWS = (10_000, 100_000, 1_000_000)
TRAINING_ROWS = 5_000
DATA_BUCKET, MODEL_BUCKET = "bench-data", "bench-models"
MIB = 1024 * 1024


def settings() -> WorkflowSettings:
    """The workflow's settings from cdk.json (the parent's: a child reads them from its environment, so that it
    imports no more than the step's Lambda)."""
    from infra.config import load_config

    config = load_config(json.loads((ROOT / "cdk.json").read_text())["context"].get)
    data = config.data
    return WorkflowSettings(
        service="bench",
        model_bucket=MODEL_BUCKET,
        registry_prefix=data.registry_prefix,
        data_bucket=DATA_BUCKET,
        training_data_prefix=data.training_data_prefix,
        artifact_prefix=data.artifact_prefix,
        job_prefix="bench",
        hyperparameters=config.workflow_hyperparameters,
        assembled_prefix=data.assembled_prefix,
        capture_prefix=data.capture_prefix,
        holdout_prefix=data.holdout_prefix,
        holdout_share=config.training.holdout_share,
        glue_database="bench",
        athena_workgroup="bench",
        include_feedback=False,
        feedback_max_age_days=config.capture.feedback_max_age_days,
        max_feedback_share=config.retraining.max_feedback_share,
        new_value_min_callers=config.retraining.new_value_min_callers,
        cooldown_minutes=0,
        lock_timeout_seconds=3600,
        model_package_group="driftloop-test",
    )


def s3_client(endpoint: str) -> Any:
    return boto3.client(
        "s3", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="bench", aws_secret_access_key="bench"
    )


def train(work: Path, seed: int, hyperparameters: dict[str, str]) -> Path:
    from tests.conftest import lay_out_job
    from training import synthetic
    from training.program import run

    base = lay_out_job(work / f"job-{seed}", hyperparameters, synthetic.generate(TRAINING_ROWS, seed=seed))
    if run(base) != 0:
        raise SystemExit((base / "output" / "failure").read_text())
    archive = work / f"model-{seed}.tar.gz"
    pack_archive(base / "model", archive)
    return archive


def step(name: str, endpoint: str, state: dict[str, Any]) -> dict[str, Any]:
    """Run one step in a child process; its wall time and peak RSS."""
    started = time.monotonic()
    child = subprocess.run(
        [sys.executable, "-m", "tests.benchmarks.bench_evaluate", "--child", name, endpoint, json.dumps(state)],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, **settings().to_env(), "AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench"},
    )
    if child.returncode != 0:
        raise SystemExit(f"{name} failed:\n{child.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(child.stdout.splitlines()[-1])
    result["seconds"] = round(time.monotonic() - started, 1)
    return result


def run_child(name: str, endpoint: str, raw_state: str) -> None:
    from functions.workflow.evaluation import evaluate
    from functions.workflow.holdout import hold_out_step
    from functions.workflow.state import RunState

    s3 = s3_client(endpoint)
    config = WorkflowSettings.from_env()
    state = RunState.parse(json.loads(raw_state))
    if name == "hold_out":
        result = hold_out_step(config, s3, state).to_json()
    else:
        result = evaluate(config, s3, Registry(s3, MODEL_BUCKET, config.registry_prefix), state).to_json()
    print(json.dumps({"result": result, "peak_mb": round(peak_kib() / 1024)}))


def peak_kib() -> int:
    """This process's peak resident set (VmHWM). Not ``ru_maxrss``: Linux keeps that across exec, so a child
    would report the parent's peak (here the S3 server's data) whenever it is higher."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise RuntimeError("no VmHWM in /proc/self/status")


def measure(endpoint: str, rows: int, base_state: dict[str, Any]) -> dict[str, Any]:
    from training import synthetic

    s3 = s3_client(endpoint)
    config = settings()
    version = new_version_id()
    folder = f"{config.assembled_prefix}{version}/"
    data = synthetic.generate(rows, seed=rows).to_csv(index=False).encode()
    s3.put_object(Bucket=DATA_BUCKET, Key=folder + "base/part-1.csv", Body=data)
    state = {
        **base_state,
        "guard": {"version": version},
        "assembly_plan": {"prefix": folder, "uri": f"s3://{DATA_BUCKET}/{folder}", "base_fingerprint": "bench"},
    }
    state["prepare"] = {**state["prepare"], "version": version}
    hold_out = step("hold_out", endpoint, state)
    state["holdout"] = hold_out["result"]
    evaluated = step("evaluate", endpoint, state)
    for key in [key for key in s3.list_objects_v2(Bucket=DATA_BUCKET).get("Contents", [])]:
        s3.delete_object(Bucket=DATA_BUCKET, Key=key["Key"])
    return {
        "rows": rows,
        "csv_mb": round(len(data) / MIB, 1),
        "held_rows": hold_out["result"]["counts"]["base"]["held"],
        "hold_out": {"seconds": hold_out["seconds"], "peak_mb": hold_out["peak_mb"]},
        "evaluate": {"seconds": evaluated["seconds"], "peak_mb": evaluated["peak_mb"], **evaluated["result"]},
    }


def report(results: Sequence[dict[str, Any]]) -> None:
    first = results[0]
    print("| training rows | CSV | held out | HoldOut | Evaluate | memory vs smallest (HoldOut, Evaluate) |")
    print("|---|---|---|---|---|---|")
    for item in results:
        hold, evaluated = item["hold_out"], item["evaluate"]
        ratios = (
            hold["peak_mb"] / first["hold_out"]["peak_mb"],
            evaluated["peak_mb"] / first["evaluate"]["peak_mb"],
        )
        print(
            f"| {item['rows']:,} | {item['csv_mb']} MiB | {item['held_rows']:,} | {hold['seconds']} s, "
            f"{hold['peak_mb']} MB | {evaluated['seconds']} s, {evaluated['peak_mb']} MB | "
            f"{ratios[0]:.2f}, {ratios[1]:.2f} |"
        )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.benchmarks.bench_evaluate", description=__doc__)
    parser.add_argument("--rows", type=int, nargs="+", default=list(ROWS))
    parser.add_argument("--child", nargs=3, metavar=("STEP", "ENDPOINT", "STATE"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        run_child(*args.child)
        return 0

    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    try:
        s3 = s3_client(endpoint)
        for bucket in (DATA_BUCKET, MODEL_BUCKET):
            s3.create_bucket(Bucket=bucket)
        config = settings()
        hyperparameters = dict(config.hyperparameters)
        with tempfile.TemporaryDirectory(prefix="bench-evaluate-") as work:
            champion_archive = train(Path(work), 1, hyperparameters)
            challenger_archive = train(Path(work), 2, hyperparameters)
            registry = Registry(s3, MODEL_BUCKET, config.registry_prefix)
            champion = new_version_id()
            record = registry.register(champion, champion_archive)
            registry.promote(champion, expected=None)
            artifact = f"{config.artifact_prefix}bench/output/model.tar.gz"
            s3.upload_file(str(challenger_archive), MODEL_BUCKET, artifact)
        base_state = {
            "prepare": {"champion": {"version": champion, "sha256": record.sha256}},
            "training": {
                "TrainingJobName": "bench",
                "ModelArtifacts": {"S3ModelArtifacts": f"s3://{MODEL_BUCKET}/{artifact}"},
                "FinalMetricDataList": [],
            },
        }
        results = []
        for rows in args.rows:
            print(f"{rows:,} rows ...", flush=True)
            results.append(measure(endpoint, rows, base_state))
        OUTPUT.parent.mkdir(exist_ok=True)
        OUTPUT.write_text(json.dumps(results, indent=2))
        report(results)
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
