"""Refuse a model the serving Lambda could not load within its memory and timeout.

With ``serving_memory_mb`` and/or ``serving_timeout_seconds`` set (the workflow pins them from the serving
configuration), a child process loads ``model.onnx`` the way the inference Lambda does (numpy and onnxruntime
imported, a warm-up session, then one ``InferenceSession`` from the file, with the Lambda's session options) and
reports its peak RSS (the interpreter and libraries included, as in the Lambda) and the session's load time. The job
fails when:

- the peak RSS exceeds ``MEMORY_FRACTION`` of the memory: the Lambda loads a new model beside the one it is
  serving (the swap comes after the load), and also holds its web stack and the request batches;
- the load time exceeds ``TIME_FRACTION`` of the timeout: a model refresh runs inside a request, which must
  still download the bundle and answer within the timeout.

A child process, so the measurement is the model's alone, not the training program's memory. The peak is
``VmHWM`` from ``/proc/self/status`` (Linux, as the training image is): unlike ``ru_maxrss``, it starts afresh
at ``exec`` instead of inheriting the forking training process's size. Run as
``python -m training.serving_load FILE WARM_UP_FILE`` it prints its measurement as JSON.

This check, on the finished model, is the final word; training.serving_estimate runs it on a model fitted on a
sample before the full fit, to refuse early what cannot fit.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import onnx

from functions.common.bundle import ONNX_FILE
from training.errors import TrainingFailure

MEMORY_FRACTION = 0.5
TIME_FRACTION = 0.5
# Starting an interpreter and importing onnxruntime, on top of the timeout, before the child is given up on.
STARTUP_SECONDS = 60.0
# Without a timeout to check, how long the load may take before the child is given up on.
UNTIMED_LOAD_SECONDS = 600.0
_PROJECT_ROOT = Path(__file__).resolve().parent.parent
WARM_UP_FILE = "warm-up.onnx"


def load_like_serving(model_file: Path, warm_up_file: Path) -> dict[str, float]:
    """Load ``model_file`` as functions.inference.model does; peak RSS (MiB) and session load time (s).

    A session on ``warm_up_file`` (:func:`write_warm_up_model`) comes first: it pays onnxruntime's one-time costs
    (about 8 MiB), as the Lambda has for the model it serves when it loads the next one. The RSS after it,
    ``fixed_rss_mb``, is the part of the peak that does not grow with the model (training.serving_estimate)."""
    import numpy  # noqa: F401  (the Lambda imports it beside onnxruntime: part of its memory)
    import onnxruntime as ort

    options = ort.SessionOptions()
    # The same options as functions.inference.model._session_options.
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    ort.InferenceSession(str(warm_up_file), options, providers=["CPUExecutionProvider"])
    fixed_kib = _status_kib("VmRSS")
    started = time.perf_counter()
    ort.InferenceSession(str(model_file), options, providers=["CPUExecutionProvider"])
    seconds = time.perf_counter() - started
    return {
        "peak_rss_mb": round(_status_kib("VmHWM") / 1024, 1),
        "load_seconds": round(seconds, 4),
        "fixed_rss_mb": round(fixed_kib / 1024, 1),
    }


def write_warm_up_model(path: Path) -> Path:
    """The smallest model a session loads: one Identity node."""
    tensor = onnx.helper.make_tensor_value_info
    graph = onnx.helper.make_graph(
        [onnx.helper.make_node("Identity", ["x"], ["y"])],
        "warm_up",
        [tensor("x", onnx.TensorProto.FLOAT, [1])],
        [tensor("y", onnx.TensorProto.FLOAT, [1])],
    )
    model = onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", 18)])
    path.write_bytes(model.SerializeToString())
    return path


def _status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    raise RuntimeError(f"/proc/self/status has no {field} line")


def measure(model_file: Path, timeout_seconds: float | None) -> dict[str, float]:
    """Run :func:`load_like_serving` in a child process."""
    limit = STARTUP_SECONDS + (UNTIMED_LOAD_SECONDS if timeout_seconds is None else timeout_seconds)
    path = os.pathsep.join(filter(None, [str(_PROJECT_ROOT), os.environ.get("PYTHONPATH")]))
    try:
        warm_up = write_warm_up_model(model_file.with_name(WARM_UP_FILE))
        child = subprocess.run(
            [sys.executable, "-m", "training.serving_load", str(model_file), str(warm_up)],
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


@dataclass(frozen=True)
class ServingLimits:
    """The serving Lambda's memory and timeout (None: not checked), and the share of each a model's load may take."""

    memory_mb: int | None
    timeout_seconds: float | None

    @property
    def checked(self) -> bool:
        return self.memory_mb is not None or self.timeout_seconds is not None

    @property
    def memory_limit_mb(self) -> float | None:
        return None if self.memory_mb is None else MEMORY_FRACTION * self.memory_mb

    @property
    def load_limit_seconds(self) -> float | None:
        return None if self.timeout_seconds is None else TIME_FRACTION * self.timeout_seconds

    def judge(self, load: dict[str, Any], verb: str = "takes") -> tuple[dict[str, Any], list[str]]:
        """``load`` (measured, or estimated: then ``verb`` says so) with the limits added, and how it exceeds them."""
        report = dict(load)
        checks = (
            ("memory_limit_mb", self.memory_limit_mb, "peak_rss_mb", "MiB at peak", MEMORY_FRACTION,
             "serving_memory_mb", self.memory_mb, "the Lambda loads a new model beside the one it serves"),
            ("load_limit_seconds", self.load_limit_seconds, "load_seconds", "s", TIME_FRACTION,
             "serving_timeout_seconds", self.timeout_seconds, "a model refresh runs inside a request"),
        )  # fmt: skip
        problems = []
        for limit_key, limit, measured_key, unit, fraction, name, setting, why in checks:
            if limit is None or setting is None:
                continue
            report[limit_key] = limit
            if report[measured_key] > limit:
                problems.append(
                    f"loading it {verb} {report[measured_key]:g} {unit}, over {fraction:.0%} of {name} {setting:g} "
                    f"({why})"
                )
        return report, problems


def measure_model(model: bytes, work_dir: Path, limits: ServingLimits) -> dict[str, float]:
    """:func:`measure` the serialized ``model``, written to ``work_dir``."""
    model_file = work_dir / ONNX_FILE
    model_file.write_bytes(model)
    return measure(model_file, limits.timeout_seconds)


def check_serving_load(
    model: bytes, limits: ServingLimits, work_dir: Path, advice: Callable[[dict[str, float]], str]
) -> dict[str, Any]:
    """Measure loading the serialized ``model`` and fail the job if it does not fit, with ``advice`` on the
    measurement (the knobs that would shrink it); the measurement and the limits, for the evaluation (empty when
    neither limit is set)."""
    if not limits.checked:
        return {}
    measured = measure_model(model, work_dir, limits)
    report, problems = limits.judge(measured)
    if problems:
        raise TrainingFailure("the model is too big for the serving Lambda", problems, advice=advice(measured))
    return report


if __name__ == "__main__":
    print(json.dumps(load_like_serving(Path(sys.argv[1]), Path(sys.argv[2]))))
