"""Before the full fit: estimate whether the model will load in the serving Lambda, and refuse early if not.

training.serving_load measures the finished model, which on a large data set comes after a long fit. So first the
same pipeline is fitted on a sample of the training rows (``SAMPLE_ROWS``: seconds, even for an unbounded forest),
exported, and loaded the way serving loads it (the same child process); the full model's load is that measurement
scaled by how much bigger the full model will be.

How much bigger: an ONNX tree ensemble's memory and load time grow with its node count, and a binary tree of L
leaves has 2L - 1 nodes. For the full fit:

- trees: a forest and gradient boosting fit ``n_estimators`` iterations (boosting: of one tree per class when there
  are more than two), as the sample did; hist_gradient_boosting's early stopping (on from 10,000 rows) may stop the
  full fit sooner or later than the sample's, so ``max_iter`` iterations are assumed, which bounds it;
- leaves per tree: a tree splits until its leaves are pure or hold ``min_samples_leaf`` rows, so on noisy data its
  leaves grow in proportion to the rows it is fitted on: the sample's mean times full rows / sample rows, capped by
  what the knobs allow (``2 ** max_depth``, ``max_leaf_nodes``: 31 for hist_gradient_boosting; rows /
  ``min_samples_leaf``). Trees that stopped early on clean data grow less: the estimate errs on the large side;
- a linear model's size does not depend on the rows.

The sample's peak memory above what does not grow with the model (``fixed_rss_mb``: the interpreter, the libraries
and onnxruntime's one-time costs of a session) is scaled by the ratio of nodes: measured, it grows just so. The load
time grows at least as fast, and irregularly: a 50-tree forest on diamonds-shaped data, from the 5,000-row sample
to 4 and 8 times its nodes, loaded 3.3 to 19.5 and 8.4 times as long in runs on a shared 2-core machine
(``tests/benchmarks/bench_serving_load.py``). Scaled by the nodes alone, the default forest on diamonds was
estimated just within the 5 s a load may take and refused only after a 168 s fit; so the load time is scaled by
the ratio of nodes times the square root of each tree's growth (``LOAD_TREE_EXPONENT``), the middle of what was
measured, erring on the large side. The check after the full fit (training.serving_load) stays the final word.

When the estimate, or that check, exceeds a limit, the failure names the knobs that would bring the model within
them, each on its own with the others unchanged, at ``SUGGESTION_MARGIN`` of the limits since the estimate is an
estimate.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.ensemble import (
    GradientBoostingClassifier,
    GradientBoostingRegressor,
    HistGradientBoostingClassifier,
    HistGradientBoostingRegressor,
    RandomForestClassifier,
    RandomForestRegressor,
)

from functions.common.bundle import Task
from training.errors import TrainingFailure
from training.feature_spec import FeatureSpec
from training.hyperparameters import Hyperparameters, Knob
from training.onnx_export import to_onnx
from training.pipeline import ESTIMATOR_STEP, build_pipeline
from training.serving_load import ServingLimits, measure_model

# Rows the sample model is fitted on; with no more training rows than this, the full fit is as cheap and the
# check after it decides alone.
SAMPLE_ROWS = 5_000
SUGGESTION_MARGIN = 0.8
# The load time grows with the number of trees, and with each tree's size to this power (see above).
LOAD_TREE_EXPONENT = 1.5
BOUNDED_ALGORITHM = "hist_gradient_boosting"
# hist_gradient_boosting's defaults bound its size: max_iter iterations of trees of at most max_leaf_nodes leaves.
_BOUNDED = HistGradientBoostingRegressor()
BOUNDED_TREE_NODES = _BOUNDED.max_iter * (2 * _BOUNDED.max_leaf_nodes - 1)


@dataclass(frozen=True)
class TreeGrowth:
    """A tree ensemble as fitted on the sample, and its projected size after the full fit."""

    count_knob: str  # the knob that sets the number of iterations (n_estimators or max_iter)
    iterations: int
    trees_per_iteration: int  # one, or one per class for multiclass boosting
    sample_nodes: int
    sample_leaves: float  # mean leaves per tree on the sample
    leaves: float  # projected leaves per tree
    leaf_cap: float  # what max_depth and max_leaf_nodes allow (inf: nothing)
    min_samples_leaf: int

    @property
    def nodes(self) -> float:
        return self.iterations * self.trees_per_iteration * (2 * self.leaves - 1)

    @property
    def growth(self) -> float:
        return self.nodes / self.sample_nodes

    @property
    def load_growth(self) -> float:
        """How much longer the full model takes to load: the node growth, times each tree's growth to the power
        ``LOAD_TREE_EXPONENT`` - 1 (see above)."""
        return self.growth * float((self.leaves / self.sample_leaves) ** (LOAD_TREE_EXPONENT - 1))

    @property
    def row_bound(self) -> bool:
        """Whether the leaves are limited by the rows (then min_samples_leaf matters), not by the knobs' cap."""
        return self.leaves < self.leaf_cap


def _fitted_trees(estimator: Any) -> tuple[str, int, int, list[int]] | None:
    """The count knob, its value, trees per iteration, and each fitted tree's leaves; None for a linear model."""
    if isinstance(estimator, (RandomForestClassifier, RandomForestRegressor)):
        return "n_estimators", estimator.n_estimators, 1, [tree.tree_.n_leaves for tree in estimator.estimators_]
    if isinstance(estimator, (GradientBoostingClassifier, GradientBoostingRegressor)):
        trees = estimator.estimators_
        return "n_estimators", estimator.n_estimators, trees.shape[1], [tree.tree_.n_leaves for tree in trees.ravel()]
    if isinstance(estimator, (HistGradientBoostingClassifier, HistGradientBoostingRegressor)):
        leaves = [tree.get_n_leaf_nodes() for iteration in estimator._predictors for tree in iteration]
        return "max_iter", estimator.max_iter, estimator.n_trees_per_iteration_, leaves
    return None


def project(estimator: Any, sample_rows: int, full_rows: int) -> TreeGrowth | None:
    """How the trees of ``estimator``, fitted on ``sample_rows``, grow when fitted on ``full_rows`` (see above)."""
    fitted = _fitted_trees(estimator)
    if fitted is None:
        return None
    count_knob, iterations, per_iteration, leaves = fitted
    cap = math.inf
    if estimator.max_depth is not None:
        cap = min(cap, 2.0**estimator.max_depth)
    if estimator.max_leaf_nodes is not None:
        cap = min(cap, float(estimator.max_leaf_nodes))
    sample_leaves = float(np.mean(leaves))
    scaled = sample_leaves * full_rows / sample_rows
    return TreeGrowth(
        count_knob=count_knob,
        iterations=iterations,
        trees_per_iteration=per_iteration,
        sample_nodes=sum(2 * n - 1 for n in leaves),
        sample_leaves=sample_leaves,
        leaves=max(1.0, min(scaled, cap, full_rows / estimator.min_samples_leaf)),
        leaf_cap=cap,
        min_samples_leaf=estimator.min_samples_leaf,
    )


def sample_positions(target: pd.Series, rows: int, seed: int, task: Task) -> np.ndarray:
    """``rows`` random positions; for classification with every class at least once, so the sample's model has
    the full one's outputs (and, for multiclass boosting, its trees per iteration)."""
    order = np.random.default_rng(seed).permutation(len(target))
    chosen = order[:rows]
    if task == "classification":
        first_of_class = order[~pd.Series(target.to_numpy()[order]).duplicated().to_numpy()]
        chosen = np.union1d(chosen, first_of_class)
    return np.sort(chosen)


def _model_mb(measured: Mapping[str, float]) -> float:
    """The part of a measured load's peak memory that grows with the model."""
    return max(measured["peak_rss_mb"] - measured["fixed_rss_mb"], 0.0)


def _room(load: Mapping[str, float], limits: ServingLimits) -> tuple[float, float]:
    """By how much the model of ``load`` (measured, or projected) may grow and stay within ``SUGGESTION_MARGIN`` of
    the limits: its memory (which grows with its nodes), and its load time (inf: not limited)."""
    memory = time = math.inf
    model_mb = _model_mb(load)
    if limits.memory_limit_mb is not None and model_mb > 0:
        memory = max(SUGGESTION_MARGIN * limits.memory_limit_mb - load["fixed_rss_mb"], 0.0) / model_mb
    if limits.load_limit_seconds is not None and load["load_seconds"] > 0:
        time = SUGGESTION_MARGIN * limits.load_limit_seconds / load["load_seconds"]
    return memory, time


def suggestions(
    algorithm: str, trees: TreeGrowth | None, load: Mapping[str, float], limits: ServingLimits, classes: int
) -> str:
    """The knob settings that would fit, each on its own, and the serving settings that would. ``trees``: the
    model as projected (or fitted), ``load``: its projected (or measured) load. ``classes``: the target's (0 for
    regression), as boosting fits one tree per class beyond two."""
    serving = "give the serving Lambda more memory or time (serving.memory_mb, serving.timeout_seconds in cdk.json)"
    if trees is None:
        return f"no setting of {algorithm}'s knobs fits by this estimate: {serving}"
    memory, time = _room(load, limits)
    # Fewer trees shrink memory and load time alike; smaller trees shrink the load time faster.
    fewer, smaller = min(memory, time), min(memory, time ** (1 / LOAD_TREE_EXPONENT))
    settings = []
    if (count := math.floor(trees.iterations * fewer)) >= 1:
        settings.append(f"{trees.count_knob}={count} (or fewer)")
    leaves = trees.leaves * smaller
    if leaves >= 2 and (depth := math.floor(math.log2(leaves))) < math.log2(trees.leaves):
        settings.append(f"max_depth={depth} (or less)")
    if trees.row_bound and leaves >= 2:
        # Fully grown, a tree's leaves hold about min_samples_leaf rows or a little more: leaves ~ 1/min_samples_leaf.
        settings.append(f"min_samples_leaf={math.ceil(trees.min_samples_leaf * trees.leaves / leaves)} (or more)")
    boosted_per_iteration = classes if classes > 2 else 1
    # Bounded trees are small, so their load time grows about with their nodes, at most at this model's cost.
    if algorithm != BOUNDED_ALGORITHM and trees.nodes * fewer >= BOUNDED_TREE_NODES * boosted_per_iteration:
        settings.append(
            f"algorithm={BOUNDED_ALGORITHM} (by default {_BOUNDED.max_iter} trees of at most "
            f"{_BOUNDED.max_leaf_nodes} leaves{' per class' if boosted_per_iteration > 1 else ''})"
        )
    if not settings:
        return f"no setting of {algorithm}'s knobs fits by this estimate: {serving}"
    return f"to fit, set one of {', '.join(settings)}; or {serving}"


def fitted_advice(
    algorithm: str, estimator: Any, rows: int, measured: Mapping[str, float], limits: ServingLimits, classes: int
) -> str:
    """:func:`suggestions` for a model fitted on all its ``rows`` and ``measured``: the check after the full fit."""
    return suggestions(algorithm, project(estimator, rows, rows), measured, limits, classes)


def estimate_serving_load(
    hp: Hyperparameters,
    task: Task,
    knobs: Mapping[str, Knob],
    spec: FeatureSpec,
    inputs: pd.DataFrame,
    target: pd.Series,
    work_dir: Path,
) -> dict[str, Any]:
    """Fit the pipeline on a sample of the training rows, measure its load, scale it to the full fit; fail the job
    if the estimate does not fit. The estimate and the limits, for the evaluation (empty when not checked or the
    rows are few)."""
    limits = ServingLimits(hp.serving_memory_mb, hp.serving_timeout_seconds)
    if not limits.checked or len(inputs) <= SAMPLE_ROWS:
        return {}
    positions = sample_positions(target, SAMPLE_ROWS, hp.random_seed, task)
    pipeline = build_pipeline(task, hp.algorithm, knobs, spec, hp.random_seed)
    pipeline.fit(inputs.iloc[positions], target.iloc[positions])
    measured = measure_model(to_onnx(pipeline, spec, task).SerializeToString(), work_dir, limits)
    trees = project(pipeline.named_steps[ESTIMATOR_STEP], len(positions), len(inputs))
    growth, load_growth = (1.0, 1.0) if trees is None else (trees.growth, trees.load_growth)
    projected = {
        "peak_rss_mb": round(float(measured["fixed_rss_mb"] + _model_mb(measured) * growth), 1),
        "load_seconds": round(float(measured["load_seconds"] * load_growth), 4),
        "fixed_rss_mb": measured["fixed_rss_mb"],
    }
    estimate = {
        "sample_rows": len(positions),
        "train_rows": len(inputs),
        "growth": round(float(growth), 2),
        "load_growth": round(float(load_growth), 2),
        **projected,
        "sample": measured,
    }
    report, problems = limits.judge(estimate, verb="would take about")
    if problems:
        raise TrainingFailure(
            f"the model would be too big for the serving Lambda (estimated before the full fit, from a fit on "
            f"{len(positions)} of its {len(inputs)} rows)",
            problems,
            advice=suggestions(
                hp.algorithm, trees, projected, limits, target.nunique() if task == "classification" else 0
            ),
        )
    return report
