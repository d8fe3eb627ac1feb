import pandas as pd
import pytest

from functions.common.bundle import Task
from functions.common.gate import CLASSIFICATION_METRICS, REGRESSION_METRICS
from tests.conftest import MakeJob
from tests.training.jobs import evaluation_json, failure, metadata
from training.pipeline import build_estimator
from training.program import run

# Small and fast: every algorithm with its knobs set low.
FAST_KNOBS = {
    "logistic_regression": {"C": "0.5"},
    "random_forest": {"n_estimators": "10", "max_depth": "6", "min_samples_leaf": "3"},
    "gradient_boosting": {"n_estimators": "15", "max_depth": "2", "learning_rate": "0.2"},
    "hist_gradient_boosting": {"max_iter": "15", "max_depth": "3", "learning_rate": "0.2"},
}


@pytest.mark.parametrize("algorithm", FAST_KNOBS)
def test_every_algorithm_trains_a_binary_classifier(
    algorithm: str, make_job: MakeJob, churn_data: pd.DataFrame
) -> None:
    base = make_job({"target": "churned", "algorithm": algorithm, **FAST_KNOBS[algorithm]}, churn_data.head(400))
    assert run(base) == 0, failure(base)
    bundle = metadata(base)
    assert (bundle.task, bundle.algorithm, bundle.classes) == ("classification", algorithm, ("0", "1"))
    assert set(bundle.metrics) == set(CLASSIFICATION_METRICS)
    assert bundle.metrics["roc_auc"] > 0.7
    assert all(bundle.hyperparameters[k] == v for k, v in FAST_KNOBS[algorithm].items())
    assert evaluation_json(base)["details"]["onnx_parity"]["max_probability_difference"] <= 1e-4


@pytest.mark.parametrize("algorithm", FAST_KNOBS)
def test_every_algorithm_trains_a_regressor(algorithm: str, make_job: MakeJob, churn_data: pd.DataFrame) -> None:
    hyperparameters = {"target": "monthly_charges", "algorithm": algorithm, **FAST_KNOBS[algorithm]}
    base = make_job(hyperparameters, churn_data.head(400))
    assert run(base) == 0, failure(base)
    bundle = metadata(base)
    assert (bundle.task, bundle.algorithm, bundle.classes) == ("regression", algorithm, ())
    assert set(bundle.metrics) == set(REGRESSION_METRICS)
    assert bundle.primary_metric == "rmse"
    # monthly_charges follows data usage closely: any working model explains much of it.
    assert bundle.metrics["r2"] > 0.4
    assert bundle.baseline["prediction"]["type"] == "numeric"
    assert evaluation_json(base)["details"]["onnx_parity"]["max_relative_difference"] <= 1e-4


@pytest.mark.parametrize("algorithm", ["logistic_regression", "hist_gradient_boosting"])
def test_a_multiclass_target_gets_macro_f1_and_one_vs_rest_auc(
    algorithm: str, make_job: MakeJob, churn_data: pd.DataFrame
) -> None:
    base = make_job({"target": "contract", "algorithm": algorithm, **FAST_KNOBS[algorithm]}, churn_data.head(400))
    assert run(base) == 0, failure(base)
    bundle = metadata(base)
    assert bundle.classes == ("month-to-month", "one_year", "two_year")
    assert set(bundle.metrics) == set(CLASSIFICATION_METRICS)
    assert 0.0 <= bundle.metrics["roc_auc"] <= 1.0
    assert bundle.baseline["prediction"]["type"] == "categorical"
    assert "positive_probability" not in bundle.baseline


@pytest.mark.parametrize("task", ["classification", "regression"])
def test_a_forest_fits_its_trees_on_every_core(task: Task) -> None:
    assert build_estimator(task, "random_forest", {"n_estimators": 10}, 0).n_jobs == -1
