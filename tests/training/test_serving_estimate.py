import json
import math
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier

from tests.conftest import MakeJob, diamonds_like
from tests.training.jobs import evaluation_json, failure, metadata
from training import program, serving_estimate
from training.hyperparameters import DEFAULT_ALGORITHM
from training.program import run
from training.serving_estimate import project, sample_positions
from training.synthetic import generate

SAMPLE = 1000
DEEP_FOREST = {"target": "churned", "algorithm": "random_forest", "serving_memory_mb": "256"}


@pytest.fixture(scope="module")
def churn_16k() -> pd.DataFrame:
    # 12,800 training rows: well above the sample, small enough for a quick full fit.
    return generate(16_000, seed=5)


@pytest.fixture
def small_sample(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(serving_estimate, "SAMPLE_ROWS", SAMPLE)


def _noisy(rows: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    features = rng.random((rows, 4))
    return features, (rng.random(rows) < 0.3 + 0.4 * features[:, 0]).astype(int)


def test_a_forest_that_cannot_fit_is_refused_before_the_full_fit_with_the_knobs_that_would_fit(
    make_job: MakeJob, churn_16k: pd.DataFrame, monkeypatch: pytest.MonkeyPatch, small_sample: None
) -> None:
    def no_full_fit(*args: object) -> None:
        raise AssertionError("the full fit started")

    monkeypatch.setattr(program, "build_pipeline", no_full_fit)
    base = make_job(DEEP_FOREST, churn_16k)
    assert run(base) == 1
    reason = failure(base)
    assert reason.startswith(
        "the model would be too big for the serving Lambda (estimated before the full fit, from a fit on 1000 of its "
        "12800 rows): loading it would take about "
    )
    assert "MiB at peak, over 50% of serving_memory_mb 256" in reason
    advice = reason.splitlines()[-1]
    for knob in ("n_estimators", "max_depth", "min_samples_leaf"):
        assert re.search(rf"\b{knob}=\d+ ", advice), advice
    assert "algorithm=hist_gradient_boosting" in advice
    assert "serving.memory_mb" in advice


def test_the_suggested_max_depth_fits_the_serving_lambda_after_the_full_fit(
    make_job: MakeJob, churn_16k: pd.DataFrame, small_sample: None
) -> None:
    refused = make_job({**DEEP_FOREST, "n_estimators": "50"}, churn_16k)
    assert run(refused) == 1
    depth = re.search(r"\bmax_depth=(\d+) ", failure(refused))
    assert depth is not None, failure(refused)

    base = make_job({**DEEP_FOREST, "n_estimators": "50", "max_depth": depth[1]}, churn_16k)
    assert run(base) == 0, failure(base)
    details = evaluation_json(base)["details"]
    assert details["serving_load"]["peak_rss_mb"] <= details["serving_load"]["memory_limit_mb"]
    # The estimate errs on the large side, not by much.
    assert details["serving_load"]["peak_rss_mb"] <= details["serving_estimate"]["peak_rss_mb"]
    assert details["serving_estimate"]["peak_rss_mb"] <= 1.5 * details["serving_load"]["peak_rss_mb"]


def test_a_model_trained_with_the_defaults_fits_the_serving_lambda_as_configured(
    make_job: MakeJob, churn_16k: pd.DataFrame
) -> None:
    base = make_job({"target": "churned", "serving_memory_mb": "1024", "serving_timeout_seconds": "10"}, churn_16k)
    assert run(base) == 0, failure(base)
    assert metadata(base).algorithm == "hist_gradient_boosting"
    details = evaluation_json(base)["details"]
    assert details["serving_estimate"]["sample_rows"] == serving_estimate.SAMPLE_ROWS
    assert details["serving_load"]["peak_rss_mb"] < details["serving_load"]["memory_limit_mb"]
    assert details["serving_load"]["load_seconds"] < details["serving_load"]["load_limit_seconds"]


def test_the_workflow_trains_with_the_programs_default_algorithm() -> None:
    cdk_json = json.loads((Path(__file__).resolve().parents[2] / "cdk.json").read_text())
    assert cdk_json["context"]["driftloop"]["training"]["hyperparameters"]["algorithm"] == DEFAULT_ALGORITHM


def test_an_unbounded_forests_leaves_are_projected_in_proportion_to_the_rows() -> None:
    features, target = _noisy(2000)
    forest = RandomForestClassifier(n_estimators=5, min_samples_leaf=2, random_state=0).fit(features, target)
    trees = project(forest, 2000, 20_000)
    assert trees is not None
    sampled = np.mean([tree.tree_.n_leaves for tree in forest.estimators_])
    assert trees.leaves == pytest.approx(10 * sampled)
    assert trees.growth == pytest.approx((2 * 10 * sampled - 1) / (2 * sampled - 1), rel=1e-6)
    assert trees.row_bound


def test_a_bounded_trees_leaves_stop_at_what_its_knobs_allow() -> None:
    features, target = _noisy(2000)
    forest = RandomForestClassifier(n_estimators=5, max_depth=4, random_state=0).fit(features, target)
    assert project(forest, 2000, 2_000_000).leaves == 16  # type: ignore[union-attr]
    boosted = HistGradientBoostingClassifier(max_iter=10, early_stopping=False).fit(features, target)
    projected = project(boosted, 2000, 2_000_000)
    assert projected is not None
    assert (projected.leaves, projected.iterations, projected.row_bound) == (31, 10, False)


def test_the_sample_holds_every_class_however_rare() -> None:
    target = pd.Series(["common"] * 10_000 + ["rare"])
    positions = sample_positions(target, 100, seed=0, task="classification")
    assert set(target.iloc[positions]) == {"common", "rare"}
    assert len(positions) <= 101
    assert list(positions) == sorted(positions)


def test_a_trees_load_time_is_projected_to_grow_faster_than_its_nodes() -> None:
    features, target = _noisy(2000)
    forest = RandomForestClassifier(n_estimators=5, min_samples_leaf=2, random_state=0).fit(features, target)
    trees = project(forest, 2000, 20_000)
    assert trees is not None
    # Ten times the leaves per tree: ten times the nodes, and about 10 ** 1.5 times the load time.
    assert trees.load_growth == pytest.approx(trees.growth * math.sqrt(10))
    assert trees.load_growth == pytest.approx(10**1.5, rel=0.01)


def test_the_default_forest_on_diamonds_shaped_data_is_refused_for_its_load_time_before_the_full_fit(
    make_job: MakeJob, monkeypatch: pytest.MonkeyPatch, small_sample: None
) -> None:
    # The issue-14 repro: the estimate scaled the load time with the nodes (here 20 times the sample's: 2 s, within
    # the 6 s allowed), and the full fit was refused only afterwards; now about 90 times: 9 s. A fixed measurement
    # of the sample keeps the test from timing anything; the projection is real.
    measured = {"peak_rss_mb": 80.0, "load_seconds": 0.1, "fixed_rss_mb": 72.0}
    monkeypatch.setattr(serving_estimate, "measure_model", lambda *args: measured)

    def no_full_fit(*args: object) -> None:
        raise AssertionError("the full fit started")

    monkeypatch.setattr(program, "build_pipeline", no_full_fit)
    base = make_job(
        {"target": "price", "algorithm": "random_forest", "serving_timeout_seconds": "12"}, diamonds_like(25_000)
    )
    assert run(base) == 1
    reason = failure(base)
    assert reason.startswith(
        "the model would be too big for the serving Lambda (estimated before the full fit, from a fit on 1000 of its "
        "20000 rows): loading it would take about "
    )
    assert "s, over 50% of serving_timeout_seconds 12 (a model refresh runs inside a request)" in reason
    advice = reason.splitlines()[-1]
    for knob in ("n_estimators", "max_depth", "min_samples_leaf"):
        assert re.search(rf"\b{knob}=\d+ ", advice), advice
    assert "algorithm=hist_gradient_boosting" in advice
    assert "serving.timeout_seconds" in advice


def test_a_model_refused_after_the_full_fit_names_the_knobs_and_the_suggested_count_fits(make_job: MakeJob) -> None:
    # Fewer training rows than the sample: no estimate, the check after the fit decides alone.
    data = diamonds_like(3000)
    hyperparameters = {"target": "price", "algorithm": "random_forest", "serving_memory_mb": "200"}
    refused = make_job(hyperparameters, data)
    assert run(refused) == 1
    reason = failure(refused)
    assert reason.startswith("the model is too big for the serving Lambda: loading it takes ")
    advice = reason.splitlines()[-1]
    for knob in ("n_estimators", "max_depth", "min_samples_leaf"):
        assert re.search(rf"\b{knob}=\d+ ", advice), advice
    count = re.search(r"\bn_estimators=(\d+) ", advice)
    assert count is not None

    base = make_job({**hyperparameters, "n_estimators": count[1]}, data)
    assert run(base) == 0, failure(base)
