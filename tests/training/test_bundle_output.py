import hashlib
import json
from datetime import datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest

from functions.common.bundle import MISSING_CATEGORY, ModelMetadata, verify_bundle
from functions.common.distribution import Baseline, CategoricalSummary, NumericSummary
from functions.common.gate import EVALUATION_FILE, Evaluation


@pytest.fixture(scope="session")
def bundle_metadata(trained_bundle: Path) -> ModelMetadata:
    return verify_bundle(trained_bundle)


def test_bundle_describes_the_task_target_and_features(bundle_metadata: ModelMetadata) -> None:
    assert (bundle_metadata.task, bundle_metadata.target) == ("classification", "churned")
    assert bundle_metadata.algorithm == "logistic_regression"
    assert bundle_metadata.classes == ("0", "1")
    assert bundle_metadata.primary_metric == "roc_auc"
    assert bundle_metadata.feature_names == (
        "tenure_months",
        "monthly_charges",
        "support_calls",
        "data_usage_gb",
        "age",
        "contract",
        "payment_method",
        "region",
    )
    features = {f.name: f for f in bundle_metadata.features}
    assert features["contract"].categories == ("month-to-month", "one_year", "two_year")
    assert MISSING_CATEGORY not in features["payment_method"].categories
    assert features["tenure_months"].minimum == 0.0
    assert features["tenure_months"].maximum == 72.0
    assert features["age"].minimum is not None and features["age"].minimum >= 18.0


def test_training_data_is_identified_by_hash_rows_and_files(
    bundle_metadata: ModelMetadata, trained_bundle: Path
) -> None:
    data = bundle_metadata.training_data
    train_file = trained_bundle.parent / "input" / "data" / "train" / "data.csv"
    assert data["sha256"] == hashlib.sha256(train_file.read_bytes()).hexdigest()
    assert (data["rows"], data["train_rows"], data["holdout_rows"], data["files"]) == (2000, 1600, 400, ["data.csv"])


def test_hyperparameters_libraries_and_creation_time_are_recorded(bundle_metadata: ModelMetadata) -> None:
    assert bundle_metadata.hyperparameters["target"] == "churned"
    assert bundle_metadata.hyperparameters["max_iter"] == "1000"
    assert set(bundle_metadata.libraries) == {"scikit-learn", "skl2onnx", "onnx", "onnxruntime", "numpy", "pandas"}
    created = datetime.fromisoformat(bundle_metadata.created_at)
    assert created.utcoffset() == timedelta(0)


def test_metrics_in_the_bundle_are_the_holdout_metrics_of_the_evaluation(
    bundle_metadata: ModelMetadata, trained_bundle: Path
) -> None:
    report = json.loads((trained_bundle.parent / "output" / "data" / EVALUATION_FILE).read_text())
    evaluation = Evaluation.from_dict(report)
    assert bundle_metadata.metrics == evaluation.scores.challenger
    assert evaluation.scores.holdout_rows == 400
    assert evaluation.scores.trusted_rows == 400
    assert evaluation.verdict.passed
    assert report["champion"] is None


def test_baseline_summarises_every_feature_and_the_predictions(
    bundle_metadata: ModelMetadata, churn_data: pd.DataFrame
) -> None:
    baseline = Baseline.from_dict(bundle_metadata.baseline)
    assert baseline.rows == 2000
    assert baseline.prediction_rows == 400
    assert set(baseline.features) == set(bundle_metadata.feature_names)
    age = baseline.features["age"]
    assert isinstance(age, NumericSummary)
    assert len(age.edges) == 9
    assert sum(age.proportions) == pytest.approx(1.0)
    assert age.missing == pytest.approx(churn_data["age"].isna().mean())
    payment = baseline.features["payment_method"]
    assert isinstance(payment, CategoricalSummary)
    assert payment.missing == pytest.approx(churn_data["payment_method"].isna().mean())
    expected = churn_data["payment_method"].value_counts(normalize=True)
    assert payment.proportions == pytest.approx(expected.to_dict())
    assert isinstance(baseline.prediction, CategoricalSummary)
    assert set(baseline.prediction.proportions) <= {"0", "1"}
    assert baseline.positive_probability is not None
    assert baseline.positive_probability.edges[0] > 0.0


def test_a_bundle_written_before_onnx_inputs_and_warnings_were_recorded_still_loads(
    bundle_metadata: ModelMetadata,
) -> None:
    older = bundle_metadata.to_dict()
    del older["warnings"]
    for feature in older["features"]:
        del feature["onnx_input"]
    metadata = ModelMetadata.from_dict(older)
    assert [f.onnx_input for f in metadata.features] == list(metadata.feature_names)
    assert metadata.warnings == ()
    assert ModelMetadata.from_dict(bundle_metadata.to_dict()) == bundle_metadata
