"""Training benchmark: the real training program at 10k, 100k and 1M rows, with the workflow's hyperparameters.

Run with ``python -m tests.benchmarks.bench_training`` (``make bench-training``); ``--rows`` picks the sizes and
``--hp NAME=VALUE`` overrides a hyperparameter (e.g. ``--hp algorithm=random_forest`` to see the old default refused
before its full fit). For each size: synthetic churn data (training.synthetic, not timed) is written as the ``train``
channel, and ``python -m training train`` runs in a child process with the hyperparameters the state machine passes
(cdk.json's ``training.hyperparameters`` plus the serving Lambda's memory and timeout, infra.config). Reported:

- training time: the child's wall time, and the full fit's share of it (``details.fit_seconds`` of the evaluation);
- peak memory: the child's peak RSS (``ru_maxrss`` from ``wait4``; its serving-load children are far smaller), as
  a share of the configured training instance's memory;
- the bundle: ``model.onnx`` (what serving loads) and ``model.tar.gz`` as SageMaker would pack ``model/``;
- serving load: the final check's measurement (peak RSS and load time of a process loading the model as the
  inference Lambda does) against its limits, and the estimate made before the full fit.

The program reports; it exits non-zero only when it cannot run. Raw figures go to ``bench-output/training.json``.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from functions.common.bundle import ONNX_FILE
from functions.common.gate import EVALUATION_FILE
from infra.config import load_config
from training import synthetic
from training.contract import Layout

ROOT = Path(__file__).resolve().parents[2]
ROWS = (10_000, 100_000, 1_000_000)
OUTPUT = ROOT / "bench-output" / "training.json"
# The training instances whose vCPUs and memory (GiB) the report compares against.
INSTANCES = {"ml.m5.large": (2, 8), "ml.m5.xlarge": (4, 16), "ml.m5.2xlarge": (8, 32)}
MIB = 1024 * 1024


def configured() -> tuple[dict[str, str], str]:
    """The hyperparameters the state machine passes to training (dev stage), and the training instance type."""
    context = json.loads((ROOT / "cdk.json").read_text())["context"]
    config = load_config(context.get)
    return config.workflow_hyperparameters, config.training.instance_type


def run_job(base: Path) -> dict[str, Any]:
    """Run the training program on ``base``; its wall time, peak RSS and log (timestamped, to see the phases)."""
    log: list[tuple[float, str]] = []
    started = time.monotonic()
    child = subprocess.Popen(
        [sys.executable, "-m", "training", "train", "--base-dir", str(base)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert child.stdout is not None

    def read() -> None:
        assert child.stdout is not None
        for line in child.stdout:
            log.append((time.monotonic() - started, line.rstrip("\n")))

    reader = threading.Thread(target=read)
    reader.start()
    _, status, usage = os.wait4(child.pid, 0)
    seconds = time.monotonic() - started
    child.returncode = os.waitstatus_to_exitcode(status)
    reader.join()
    return {"exit_code": child.returncode, "seconds": seconds, "peak_rss_mb": usage.ru_maxrss / 1024, "log": log}


def packed_size(model_dir: Path) -> int:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for path in sorted(model_dir.iterdir()):
            archive.add(path, arcname=path.name)
    return buffer.tell()


def measure(rows: int, hyperparameters: dict[str, str], work: Path) -> dict[str, Any]:
    base = work / f"rows-{rows}"
    layout = Layout(base)
    layout.hyperparameters.parent.mkdir(parents=True, exist_ok=True)
    layout.hyperparameters.write_text(json.dumps(hyperparameters))
    synthetic.write_csv(base / "input" / "data" / "train" / "churn.csv", rows, seed=1)
    result: dict[str, Any] = {"rows": rows, **run_job(base)}
    if result["exit_code"] != 0:
        result["failure"] = layout.failure_file.read_text() if layout.failure_file.exists() else "(no reason)"
        return result
    evaluation = json.loads((layout.output_data_dir / EVALUATION_FILE).read_text())
    result["details"] = evaluation["details"]
    result["metrics"] = evaluation["challenger"]
    result["onnx_bytes"] = (layout.model_dir / ONNX_FILE).stat().st_size
    result["packed_bytes"] = packed_size(layout.model_dir)
    return result


def _against(value: float, limit: float | None, unit: str) -> str:
    """``value`` in ``unit`` (MiB or s), and its share of ``limit`` when there is one."""
    shown = f"{value:,.0f} MiB" if unit == "MiB" else f"{value:.3f} s"
    return shown if not limit else f"{shown} ({value / limit:.0%})"


def report(results: list[dict[str, Any]], instance: str) -> str:
    cores, memory_gib = INSTANCES.get(instance, (None, None))
    header = (
        "| rows | training time (full fit) | peak memory (of the instance) | model.onnx | model.tar.gz "
        "| serving load: peak memory (of the limit) | load time (of the limit) | estimated before the fit | ROC AUC |"
    )
    lines = [header, "|" + "---|" * header.count(" |")]
    for r in results:
        fit = r.get("details", {}).get("fit_seconds")
        cells = [
            f"{r['rows']:,}",
            f"{r['seconds']:.0f} s" + ("" if fit is None else f" ({fit:.0f} s)"),
            _against(r["peak_rss_mb"], None if memory_gib is None else memory_gib * 1024, "MiB"),
        ]
        if r["exit_code"] != 0:
            cells.append(f"failed: {r['failure']!r}")
        else:
            load, estimate = r["details"].get("serving_load", {}), r["details"].get("serving_estimate")
            cells += [
                f"{r['onnx_bytes'] / MIB:.2f} MiB",
                f"{r['packed_bytes'] / MIB:.2f} MiB",
                _against(load.get("peak_rss_mb", 0), load.get("memory_limit_mb"), "MiB"),
                _against(load.get("load_seconds", 0), load.get("load_limit_seconds"), "s"),
                "not made (few rows)"
                if estimate is None
                else f"{estimate['peak_rss_mb']:,.0f} MiB, {estimate['load_seconds']:.3f} s",
                f"{r['metrics'].get('roc_auc', float('nan')):.3f}",
            ]
        lines.append(f"| {' | '.join(cells)} |")
    machine = f"this machine: {os.cpu_count()} cores"
    target = f"the configured instance {instance}" + ("" if cores is None else f": {cores} vCPUs, {memory_gib} GiB")
    return "\n".join([*lines, "", f"({machine}; {target})"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.benchmarks.bench_training", description=__doc__)
    parser.add_argument("--rows", type=int, nargs="+", default=list(ROWS), help="data set sizes (default: %(default)s)")
    parser.add_argument("--hp", action="append", default=[], metavar="NAME=VALUE", help="override a hyperparameter")
    args = parser.parse_args(argv)
    hyperparameters, instance = configured()
    for setting in args.hp:
        name, _, value = setting.partition("=")
        hyperparameters[name] = value
    print(f"hyperparameters: {hyperparameters}", flush=True)
    results = []
    with tempfile.TemporaryDirectory(prefix="driftloop-bench-training-") as work:
        for rows in args.rows:
            print(f"training on {rows:,} rows ...", flush=True)
            results.append(measure(rows, hyperparameters, Path(work)))
    OUTPUT.parent.mkdir(parents=True, exist_ok=True)
    OUTPUT.write_text(json.dumps({"hyperparameters": hyperparameters, "instance": instance, "results": results}))
    print()
    print(report(results, instance))
    print(f"\n(raw figures and job logs in {OUTPUT.relative_to(ROOT)})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
