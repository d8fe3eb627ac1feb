from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import accuracy_score, log_loss, roc_auc_score

from functions.common.bundle import FeatureType
from training import synthetic
from training.feature_spec import FeatureSpec
from training.features import infer_type, model_inputs
from training.pipeline import build_pipeline


def test_generate_is_deterministic_for_a_seed() -> None:
    pd.testing.assert_frame_equal(synthetic.generate(300, seed=5), synthetic.generate(300, seed=5))
    assert not synthetic.generate(300, seed=5).equals(synthetic.generate(300, seed=6))


def test_generated_data_looks_like_customer_churn() -> None:
    data = synthetic.generate(2000, seed=1)
    assert list(data.columns) == [
        "tenure_months",
        "monthly_charges",
        "support_calls",
        "data_usage_gb",
        "age",
        "contract",
        "payment_method",
        "region",
        "churned",
    ]
    assert set(data["churned"]) == {0, 1}
    assert 0.2 < data["churned"].mean() < 0.5
    assert set(data["contract"]) == set(synthetic.CONTRACTS)
    assert "central" not in set(data["region"])
    for column in synthetic.MISSING_RATES:
        assert 0 < data[column].isna().mean() < 0.1
    assert data["tenure_months"].between(0, 72).all()


def test_covariate_drift_shifts_feature_distributions_and_adds_a_new_region() -> None:
    base = synthetic.generate(3000, seed=2)
    drifted = synthetic.generate(3000, seed=2, covariate_drift=1.0)
    assert drifted["tenure_months"].mean() < 0.9 * base["tenure_months"].mean()
    assert drifted["monthly_charges"].mean() > base["monthly_charges"].mean() + 5
    assert (drifted["region"] == "central").mean() > 0.3
    assert (drifted["contract"] == "month-to-month").mean() > (base["contract"] == "month-to-month").mean()


Forest = tuple[Any, dict[str, FeatureType]]


@pytest.fixture(scope="module")
def forest() -> Forest:
    """A forest trained on undrifted data, and its feature types."""
    data = synthetic.generate(3000, seed=3)
    types = {c: infer_type(data[c]) for c in data.columns if c != synthetic.TARGET}
    knobs = {"n_estimators": 100, "min_samples_leaf": 5}
    pipeline = build_pipeline("classification", "random_forest", knobs, FeatureSpec.of(types), 0)
    return pipeline.fit(model_inputs(data, types), data[synthetic.TARGET]), types


def _scores(forest: Forest, data: pd.DataFrame) -> dict[str, float]:
    pipeline, types = forest
    probabilities = pipeline.predict_proba(model_inputs(data, types))[:, 1]
    target = data[synthetic.TARGET]
    return {
        "roc_auc": roc_auc_score(target, probabilities),
        "log_loss": log_loss(target, probabilities),
        "accuracy": accuracy_score(target, probabilities > 0.5),
    }


def test_a_forest_learns_the_undrifted_data_well(forest: Forest) -> None:
    assert _scores(forest, synthetic.generate(3000, seed=4))["roc_auc"] > 0.8


def test_concept_drift_ruins_a_model_trained_without_drift(forest: Forest) -> None:
    clean = _scores(forest, synthetic.generate(3000, seed=4))
    drifted = _scores(forest, synthetic.generate(3000, seed=4, concept_drift=1.0))
    assert drifted["roc_auc"] < clean["roc_auc"] - 0.3


def test_covariate_drift_measurably_hurts_a_model_trained_without_drift(forest: Forest) -> None:
    clean = _scores(forest, synthetic.generate(3000, seed=4))
    drifted = _scores(forest, synthetic.generate(3000, seed=4, covariate_drift=1.0))
    assert drifted["log_loss"] > clean["log_loss"] + 0.05
    assert drifted["accuracy"] < clean["accuracy"] - 0.03


def test_cli_writes_a_csv(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "sub" / "churn.csv"
    assert synthetic.main(["--rows", "50", "--out", str(out), "--seed", "3", "--covariate-drift", "0.5"]) == 0
    written = pd.read_csv(out)
    expected = synthetic.generate(50, seed=3, covariate_drift=0.5)
    assert len(written) == 50
    np.testing.assert_allclose(written["monthly_charges"], expected["monthly_charges"])
    assert "wrote 50 rows" in capsys.readouterr().out
