"""Refuse a model the serving Lambda could not load within its memory and timeout.

With ``serving_memory_mb`` and/or ``serving_timeout_seconds`` set (the workflow pins them from the serving
configuration), a child process loads ``model.onnx`` the way the inference Lambda does (numpy and onnxruntime
imported, one ``InferenceSession`` from the file, with the Lambda's session options) and reports its peak RSS
(the interpreter and libraries included, as in the Lambda) and the session's load time. The job fails when:

- the peak RSS exceeds ``MEMORY_FRACTION`` of the memory: the Lambda loads a new model beside the one it is
  serving (the swap comes after the load), and also holds its web stack and the request batches;
- the load time exceeds ``TIME_FRACTION`` of the timeout: a model refresh runs inside a request, which must
  still download the bundle and answer within the timeout.

A child process, so the measurement is the model's alone, not the training program's memory. The peak is
``VmHWM`` from ``/proc/self/status`` (Linux, as the training image is): unlike ``ru_maxrss``, it starts afresh
at ``exec`` instead of inheriting the forking training process's size. Run as
``python -m training.serving_load FILE`` it prints its measurement as JSON.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from functions.common.bundle import ONNX_FILE
from training.errors import TrainingFailure

MEMORY_FRACTION = 0.5
TIME_FRACTION = 0.5
# Starting an interpreter and importing onnxruntime, on top of the timeout, before the child is given up on.
STARTUP_SECONDS = 60.0
# Without a timeout to check, how long the load may take before the child is given up on.
UNTIMED_LOAD_SECONDS = 600.0
_PROJECT_ROOT = Path(__file__).resolve().parent.parent


def load_like_serving(model_file: Path) -> dict[str, float]:
    """Load ``model_file`` as functions.inference.model does; peak RSS (MiB) and session load time (s)."""
    import numpy  # noqa: F401  (the Lambda imports it beside onnxruntime: part of its memory)
    import onnxruntime as ort

    options = ort.SessionOptions()
    # The same options as functions.inference.model._session_options.
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    started = time.perf_counter()
    ort.InferenceSession(str(model_file), options, providers=["CPUExecutionProvider"])
    seconds = time.perf_counter() - started
    return {"peak_rss_mb": round(_peak_rss_kib() / 1024, 1), "load_seconds": round(seconds, 4)}


def _peak_rss_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise RuntimeError("/proc/self/status has no VmHWM line")


def measure(model_file: Path, timeout_seconds: float | None) -> dict[str, float]:
    """Run :func:`load_like_serving` in a child process."""
    limit = STARTUP_SECONDS + (UNTIMED_LOAD_SECONDS if timeout_seconds is None else timeout_seconds)
    path = os.pathsep.join(filter(None, [str(_PROJECT_ROOT), os.environ.get("PYTHONPATH")]))
    try:
        child = subprocess.run(
            [sys.executable, "-m", "training.serving_load", str(model_file)],
            capture_output=True,
            text=True,
            timeout=limit,
            env={**os.environ, "PYTHONPATH": path},
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise TrainingFailure(f"model.onnx did not load within {limit:g} s, loaded as serving loads it") from None
    if child.returncode != 0:
        detail = child.stderr.strip().splitlines()[-1:] or [f"exit status {child.returncode}"]
        raise TrainingFailure(f"model.onnx cannot be loaded the way the serving Lambda loads it: {detail[0]}")
    measured: dict[str, float] = json.loads(child.stdout)
    return measured


def check_serving_load(
    model: bytes, work_dir: Path, memory_mb: int | None, timeout_seconds: float | None
) -> dict[str, Any]:
    """Measure loading the serialized ``model`` and fail the job if it does not fit; the measurement and the
    limits, for the evaluation (empty when neither limit is set)."""
    if memory_mb is None and timeout_seconds is None:
        return {}
    model_file = work_dir / ONNX_FILE
    model_file.write_bytes(model)
    report: dict[str, Any] = measure(model_file, timeout_seconds)
    limits = (
        ("memory_limit_mb", "peak_rss_mb", MEMORY_FRACTION, memory_mb, "MiB at peak", "serving_memory_mb",
         "the Lambda loads a new model beside the one it serves"),
        ("load_limit_seconds", "load_seconds", TIME_FRACTION, timeout_seconds, "s", "serving_timeout_seconds",
         "a model refresh runs inside a request"),
    )  # fmt: skip
    problems = []
    for limit_key, measured_key, fraction, setting, unit, name, why in limits:
        if setting is None:
            continue
        report[limit_key] = fraction * setting
        if report[measured_key] > report[limit_key]:
            problems.append(
                f"loading it takes {report[measured_key]:g} {unit}, over {fraction:.0%} of {name} {setting:g} ({why})"
            )
    if problems:
        raise TrainingFailure("the model is too big for the serving Lambda", problems)
    return report


if __name__ == "__main__":
    print(json.dumps(load_like_serving(Path(sys.argv[1]))))
