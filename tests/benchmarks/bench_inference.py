"""Inference benchmark: driftloop's Lambda handler against a FastAPI + scikit-learn + pandas reference.

Run with ``python -m tests.benchmarks.bench_inference`` (``make bench``). In one run, side by side:

- two models trained by the real training program on synthetic churn data: a 100-tree random forest and a
  logistic regression;
- cold start: a fresh process importing the handler module, which loads the model (median of several runs);
- the telemetry's share of it: a fresh process writing one request's log and metrics line, imports included,
  with the inference Lambda's hand-written EMF and with Powertools Logger + Metrics (tests/benchmarks/
  telemetry_probes.py), as ratios to the reference's cold start;
- warm latency p50/p99 through each Lambda handler with API Gateway REST proxy events, 1 row and 100 rows;
- peak RSS of the process that served the warm requests;
- the unzipped Lambda bundle, built as the deployment builds it (infra.bundling), for each stack.

Child processes use a persistent bytecode cache (``.cache/bench-pycache``), as a Lambda bundle ships
precompiled ``.pyc`` files; this machine otherwise sets PYTHONDONTWRITEBYTECODE and would recompile every
import of every run. The program reports; it exits non-zero only when it cannot run.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
STACKS = {"driftloop": "functions.inference.app", "reference": "tests.benchmarks.reference_app"}
PROBE_NAMES = {"emf": "hand-written EMF", "powertools": "Powertools Logger + Metrics"}
MODELS = {
    "forest": {"target": "churned", "algorithm": "random_forest", "n_estimators": "100", "max_depth": "10"},
    "logistic": {"target": "churned", "algorithm": "logistic_regression"},
}
TRAINING_ROWS = 4000
COLD_RUNS = 5
BATCHES = {"1 row": 1, "100 rows": 100}
# Per batch size: (samples wanted, seconds allowed); at least MIN_SAMPLES are taken whatever the time.
SAMPLING = {"1 row": (2000, 3.0), "100 rows": (400, 4.0)}
WARMUP = 30
MIN_SAMPLES = 100
REFERENCE_PACKAGES = ("fastapi", "mangum", "scikit-learn", "pandas")
BUNDLE_LIMIT_MIB = 160
OUTPUT = ROOT / "bench-output" / "inference.json"
# (metric key, target ratio) per model; None: reported without a target.
TARGETS: dict[str, dict[str, float | None]] = {
    "forest": {"cold_start": 0.25, "1 row p50": 0.05, "1 row p99": None, "100 rows p50": 0.5, "100 rows p99": None},
    "logistic": {"cold_start": 0.25, "1 row p50": 0.3, "1 row p99": None, "100 rows p50": 0.5, "100 rows p99": None},
}


class BenchmarkError(RuntimeError):
    """The benchmark could not run."""


# -- child: one fresh process serving one stack -----------------------------------------------------------------


def child(stack: str, events_path: Path, out_path: Path, warm: bool) -> None:
    if stack in PROBE_NAMES:
        probe_child(stack, out_path)
        return
    started = time.perf_counter()
    module = importlib.import_module(STACKS[stack])  # imports the stack and loads the model
    result: dict[str, Any] = {"cold_seconds": time.perf_counter() - started}
    handler: Callable[[dict[str, Any], Any], dict[str, Any]] = module.handler

    from tests.inference.events import LambdaContext  # after the clock stopped: not part of either stack

    context = LambdaContext()
    events: dict[str, dict[str, Any]] = json.loads(events_path.read_text())
    for name, event in events.items():
        _check(handler(event, context), BATCHES[name], stack)
        if warm:
            result[name] = _sample(handler, event, context, *SAMPLING[name])
    result["rss_mib"] = _peak_rss_mib()
    out_path.write_text(json.dumps(result))


def probe_child(probe: str, out_path: Path) -> None:
    from tests.benchmarks import telemetry_probes

    for module in telemetry_probes.APP_STACK:
        importlib.import_module(module)
    started = time.perf_counter()
    telemetry_probes.PROBES[probe]()
    out_path.write_text(json.dumps({"cold_seconds": time.perf_counter() - started}))


def _peak_rss_mib() -> float:
    # Linux keeps ru_maxrss across execve (it would report the parent's peak); VmHWM is this process's own.
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _check(response: dict[str, Any], rows: int, stack: str) -> None:
    if response["statusCode"] != 200 or len(json.loads(response["body"])["predictions"]) != rows:
        raise BenchmarkError(f"{stack} answered {response['statusCode']}: {response['body'][:300]}")


def _sample(
    handler: Callable[..., Any], event: dict[str, Any], context: Any, count: int, seconds: float
) -> list[float]:
    for _ in range(WARMUP):
        handler(event, context)
    samples: list[float] = []
    deadline = time.perf_counter() + seconds
    while len(samples) < count and (len(samples) < MIN_SAMPLES or time.perf_counter() < deadline):
        start = time.perf_counter_ns()
        handler(event, context)
        samples.append((time.perf_counter_ns() - start) / 1000)
    return samples


# -- parent: prepare, run the children, compare -----------------------------------------------------------------


def train(work: Path) -> dict[str, Path]:
    """Both models, by the real training program (local_run stages the job as SageMaker would)."""
    import contextlib
    import io

    from training import local_run, synthetic

    data = synthetic.write_csv(work / "data" / "train.csv", TRAINING_ROWS, seed=5)
    bundles = {}
    for name, hyperparameters in MODELS.items():
        layout = local_run.stage(work / name, [data], hyperparameters)
        with contextlib.redirect_stdout(io.StringIO()) as said:
            code = local_run.run(layout)
        if code != 0:
            raise BenchmarkError(f"training the {name} failed:\n{said.getvalue()[-2000:]}")
        bundles[name] = layout.model_dir
    return bundles


def write_events(path: Path) -> None:
    from tests.inference.events import rest_event
    from training import synthetic

    frame = synthetic.generate(max(BATCHES.values()), seed=11).drop(columns=[synthetic.TARGET])
    rows = json.loads(frame.to_json(orient="records"))
    events = {
        name: rest_event("POST", "/predict", json.dumps({"instances": rows[:count]})) for name, count in BATCHES.items()
    }
    path.write_text(json.dumps(events))


def child_env(bundle: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DRIFTLOOP_") and k != "PYTHONDONTWRITEBYTECODE"}
    env.update(
        PYTHONPYCACHEPREFIX=str(ROOT / ".cache" / "bench-pycache"),
        DRIFTLOOP_MODEL_DIR=str(bundle),
        REFERENCE_MODEL_DIR=str(bundle),
    )
    return env


def run_child(stack: str, bundle: Path, events: Path, work: Path, *, warm: bool = False) -> dict[str, Any]:
    out = work / f"{stack}-{time.monotonic_ns()}.json"
    command = [sys.executable, "-m", "tests.benchmarks.bench_inference", "--child", stack]
    command += ["--events", str(events), "--out", str(out), *(["--warm"] if warm else [])]
    # stdout is the handler's log stream (one JSON line per request, as in Lambda): discarded.
    result = subprocess.run(
        command,
        cwd=ROOT,
        env=child_env(bundle),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        timeout=600,
    )
    if result.returncode != 0:
        raise BenchmarkError(f"the {stack} child failed:\n{result.stderr[-3000:]}")
    measured: dict[str, Any] = json.loads(out.read_text())
    return measured


def percentile(samples: list[float], fraction: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def measure_model(bundle: Path, events: Path, work: Path) -> dict[str, dict[str, float]]:
    """Per stack: cold start median (s), p50/p99 per batch size (us), peak RSS (MiB); per telemetry probe: its
    cold start median (s)."""
    cold: dict[str, list[float]] = {name: [] for name in [*STACKS, *PROBE_NAMES]}
    for _ in range(COLD_RUNS):  # interleaved, so a slow spell of the machine hits every stack and probe
        for name in cold:
            cold[name].append(run_child(name, bundle, events, work)["cold_seconds"])
    results: dict[str, dict[str, float]] = {
        probe: {"cold_start": statistics.median(cold[probe])} for probe in PROBE_NAMES
    }
    for stack in STACKS:
        warm = run_child(stack, bundle, events, work, warm=True)
        results[stack] = {"cold_start": statistics.median(cold[stack]), "rss_mib": warm["rss_mib"]}
        for name in BATCHES:
            results[stack][f"{name} p50"] = statistics.median(warm[name])
            results[stack][f"{name} p99"] = percentile(warm[name], 0.99)
            results[stack][f"{name} samples"] = len(warm[name])
    return results


def bundle_sizes(work: Path) -> tuple[dict[str, float], str | None]:
    """Unzipped MiB of each stack's Lambda bundle: its code plus its wheels, installed by the deployment's own
    bundler (manylinux x86_64, cp312, package tests removed, precompiled; cached under .cache/)."""
    try:
        from importlib.metadata import version

        from infra.bundling import INFERENCE, LocalPythonBundler

        ours = LocalPythonBundler(INFERENCE.sources, INFERENCE.requirements.path).dependencies()
        requirements = work / "reference-requirements.txt"
        requirements.write_text("".join(f"{name}=={version(name)}\n" for name in REFERENCE_PACKAGES))
        reference_app = "tests/benchmarks/reference_app.py"
        theirs = LocalPythonBundler(
            [reference_app], requirements, cache_root=ROOT / ".cache" / "bench-deps"
        ).dependencies()
    except Exception as exc:  # no network, no CDK: the timings still stand
        return {}, f"bundle sizes not measured: {type(exc).__name__}: {exc}"
    code = sum(_mib(ROOT / source) for source in INFERENCE.sources)
    return {"driftloop": code + _mib(ours), "reference": _mib(ROOT / reference_app) + _mib(theirs)}, None


def _mib(path: Path) -> float:
    files = [path] if path.is_file() else [file for file in path.rglob("*") if file.is_file()]
    return sum(file.stat().st_size for file in files) / (1 << 20)


def report(results: dict[str, dict[str, dict[str, float]]], sizes: dict[str, float], note: str | None) -> str:
    header = f"{'model':<9} {'metric':<22} {'driftloop':>12} {'reference':>12} {'ratio':>8}  {'target':<10} verdict"
    lines = [
        "driftloop vs reference (FastAPI + Mangum + scikit-learn + pandas); ratio = driftloop / reference",
        header,
        "-" * len(header),
    ]
    for model, stacks in results.items():
        ours, theirs = stacks["driftloop"], stacks["reference"]
        for metric, target in TARGETS[model].items():
            label = f"cold start (median {COLD_RUNS})" if metric == "cold_start" else f"{metric} (warm)"
            unit = _seconds if metric == "cold_start" else _micros
            ratio = ours[metric] / theirs[metric]
            goal, verdict = ("", "") if target is None else (f"<= {target:g}x", _verdict(ratio <= target))
            lines.append(_row(model, label, unit(ours[metric]), unit(theirs[metric]), ratio, goal, verdict))
        rss = ours["rss_mib"] / theirs["rss_mib"]
        lines.append(_row(model, "peak RSS", _mebi(ours["rss_mib"]), _mebi(theirs["rss_mib"]), rss, "", ""))
    if sizes:
        ours_mib, theirs_mib = sizes["driftloop"], sizes["reference"]
        verdict = _verdict(ours_mib <= BUNDLE_LIMIT_MIB)
        goal = f"<= {BUNDLE_LIMIT_MIB} MiB"
        lines.append(
            _row("bundle", "unzipped", _mebi(ours_mib), _mebi(theirs_mib), ours_mib / theirs_mib, goal, verdict)
        )
    lines += ["", *telemetry_report(results)]
    if note:
        lines.append(note)
    return "\n".join(lines)


def telemetry_report(results: dict[str, dict[str, dict[str, float]]]) -> list[str]:
    """What writing the first request line costs at cold start, imports included, each way (see
    telemetry_probes.py), against the reference's cold start for that model in this run."""
    lines = [f"telemetry at cold start: one request line, imports included (median {COLD_RUNS})"]
    for model, measured in results.items():
        reference = measured["reference"]["cold_start"]
        for probe, label in PROBE_NAMES.items():
            cold = measured[probe]["cold_start"]
            lines.append(f"{model:<9} {label:<27} {_seconds_ms(cold):>9}  {cold / reference:.3f}x reference cold start")
        extra = measured["powertools"]["cold_start"] - measured["emf"]["cold_start"]
        share = extra / measured["driftloop"]["cold_start"]
        lines.append(
            f"{model:<9} {'Powertools costs':<27} {_seconds_ms(extra):>9}  {share:.1%} of driftloop's cold start"
        )
    return lines


def _row(model: str, label: str, ours: str, theirs: str, ratio: float, goal: str, verdict: str) -> str:
    return f"{model:<9} {label:<22} {ours:>12} {theirs:>12} {ratio:>7.3f}x  {goal:<10} {verdict}".rstrip()


def _verdict(passed: bool) -> str:
    return "PASS" if passed else "MISS"


def _seconds(value: float) -> str:
    return f"{value * 1000:.0f} ms"


def _seconds_ms(value: float) -> str:
    return f"{value * 1000:.1f} ms"


def _micros(value: float) -> str:
    return f"{value:.0f} us" if value < 10_000 else f"{value / 1000:.1f} ms"


def _mebi(value: float) -> str:
    return f"{value:.1f} MiB"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tests.benchmarks.bench_inference", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--child", choices=sorted([*STACKS, *PROBE_NAMES]), help=argparse.SUPPRESS)
    parser.add_argument("--events", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--warm", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child(args.child, args.events, args.out, args.warm)
        return 0
    started = time.monotonic()
    try:
        with tempfile.TemporaryDirectory(prefix="driftloop-bench-") as tmp:
            work = Path(tmp)
            print("training the models with the training program ...", flush=True)
            bundles = train(work)
            events = work / "events.json"
            write_events(events)
            for name in [*STACKS, *PROBE_NAMES]:  # fills the bytecode cache: a deployed bundle ships its .pyc files
                run_child(name, bundles["logistic"], events, work)
            results = {}
            for model, bundle in bundles.items():
                print(f"measuring the {model} ...", flush=True)
                results[model] = measure_model(bundle, events, work)
            print("building both Lambda bundles ...", flush=True)
            sizes, note = bundle_sizes(work)
    except BenchmarkError as exc:
        print(f"benchmark failed: {exc}", file=sys.stderr)
        return 1
    print()
    print(report(results, sizes, note))
    OUTPUT.parent.mkdir(parents=True, exist_ok=True)
    OUTPUT.write_text(json.dumps({"results": results, "bundle_mib": sizes}, indent=2))
    print(f"\n({time.monotonic() - started:.0f} s; raw figures in {OUTPUT.relative_to(ROOT)})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
