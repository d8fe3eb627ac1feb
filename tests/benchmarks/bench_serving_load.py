"""Serving-load benchmark: how a forest's load in the serving Lambda grows with its trees' size, and how well the
estimate before the full fit (training.serving_estimate) projects it.

Run with ``python -m tests.benchmarks.bench_serving_load`` (a few minutes). A 50-tree regression forest (the
default ``min_samples_leaf`` 2, no depth limit) is fitted on 5,000 (the estimate's sample) to 40,000 diamonds-shaped
rows (``tests.conftest.diamonds_like``), exported and loaded as serving loads it (training.serving_load). Reported per
size, as ratios to the smallest: the nodes, the memory that grows with the model, and the load time; then the
estimate's projections from the smallest fit (memory by the nodes, load time by the nodes times the square root
of each tree's growth) against what was measured. The memory grows with the nodes; the load time at least as fast
and irregularly (on a shared 2-core machine, 4 times the nodes loaded 3.3 to 19.5 times as long), which is why the
estimate errs on the large side. The program reports; it exits non-zero only when it cannot run.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from tests.conftest import diamonds_like
from training.hyperparameters import parse_hyperparameters
from training.onnx_export import to_onnx
from training.pipeline import ESTIMATOR_STEP, build_pipeline
from training.serving_estimate import project
from training.serving_load import ServingLimits, measure_model
from training.validation import validate

# From the estimate's sample size (serving_estimate.SAMPLE_ROWS) up.
ROWS = (5_000, 10_000, 20_000, 40_000)


def main() -> int:
    hp = parse_hyperparameters({"target": "price", "algorithm": "random_forest", "n_estimators": "50"})
    dataset = validate(diamonds_like(max(ROWS)), hp, None)
    knobs = hp.knobs_for(dataset.task)
    first = None
    print(f"{'rows':>7} {'nodes':>9} {'x nodes':>8} {'x memory':>9} {'x load':>7} {'projected x memory':>19} "
          f"{'projected x load':>17}")  # fmt: skip
    for rows in ROWS:
        pipeline = build_pipeline(dataset.task, hp.algorithm, knobs, dataset.spec, hp.random_seed)
        pipeline.fit(dataset.inputs.iloc[:rows], dataset.target.iloc[:rows])
        estimator = pipeline.named_steps[ESTIMATOR_STEP]
        with tempfile.TemporaryDirectory() as work:
            model = to_onnx(pipeline, dataset.spec, dataset.task).SerializeToString()
            measured = measure_model(model, Path(work), ServingLimits(None, 300))
        fitted = project(estimator, rows, rows)
        assert fitted is not None
        growing_mb = measured["peak_rss_mb"] - measured["fixed_rss_mb"]
        if first is None:
            first = (rows, estimator, fitted.sample_nodes, growing_mb, measured["load_seconds"])
        base_rows, base_estimator, base_nodes, base_mb, base_seconds = first
        projected = project(base_estimator, base_rows, rows)
        assert projected is not None
        print(
            f"{rows:>7} {fitted.sample_nodes:>9} {fitted.sample_nodes / base_nodes:>8.1f} {growing_mb / base_mb:>9.1f} "
            f"{measured['load_seconds'] / base_seconds:>7.1f} {projected.growth:>19.1f} {projected.load_growth:>17.1f}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
