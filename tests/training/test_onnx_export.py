import copy
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import onnxruntime
import pandas as pd
import pytest

from functions.common.bundle import (
    JOBLIB_FILE,
    LABEL_OUTPUT,
    MISSING_CATEGORY,
    ONNX_FILE,
    PROBABILITIES_OUTPUT,
    VALUE_OUTPUT,
    FeatureType,
    Task,
    verify_bundle,
)
from tests.conftest import MakeJob
from tests.training.jobs import CHURN, failure
from training import onnx_export
from training.contract import Layout
from training.errors import TrainingFailure
from training.feature_spec import FeatureSpec
from training.features import model_inputs
from training.pipeline import build_pipeline
from training.program import run


def serving_feeds(rows: list[dict[str, Any]], bundle: Path) -> dict[str, np.ndarray]:
    """What the inference service feeds: float32 (NaN for null) or strings (MISSING_CATEGORY for null)."""
    feeds = {}
    for feature in verify_bundle(bundle).features:
        values = [row.get(feature.name) for row in rows]
        if feature.type == "numeric":
            feeds[feature.onnx_input] = np.array([[np.nan if v is None else v] for v in values], dtype=np.float32)
        else:
            column = [[MISSING_CATEGORY if v is None else str(v)] for v in values]
            feeds[feature.onnx_input] = np.array(column, dtype=object)
    return feeds


REQUESTS: list[dict[str, Any]] = [
    {"tenure_months": 3, "monthly_charges": 99.5, "support_calls": 4, "data_usage_gb": 20.1, "age": 23,
     "contract": "month-to-month", "payment_method": "electronic_check", "region": "south"},
    {"tenure_months": 60, "monthly_charges": None, "support_calls": 0, "data_usage_gb": None, "age": None,
     "contract": "two_year", "payment_method": None, "region": "north"},
    {"tenure_months": None, "monthly_charges": None, "support_calls": None, "data_usage_gb": None, "age": None,
     "contract": None, "payment_method": None, "region": None},
    {"tenure_months": 12, "monthly_charges": 70.0, "support_calls": 1, "data_usage_gb": 8.0, "age": 41,
     "contract": "three_year", "payment_method": "crypto", "region": "central"},
]  # fmt: skip


def test_onnx_has_one_input_per_feature_named_as_the_feature_when_that_is_an_identifier(trained_bundle: Path) -> None:
    metadata = verify_bundle(trained_bundle)
    session = onnxruntime.InferenceSession(str(trained_bundle / ONNX_FILE), providers=["CPUExecutionProvider"])
    inputs = [(i.name, i.type, i.shape) for i in session.get_inputs()]
    expected = [
        (f.name, "tensor(float)" if f.type == "numeric" else "tensor(string)", [None, 1]) for f in metadata.features
    ]
    assert inputs == expected
    assert all(f.onnx_input == f.name for f in metadata.features)


def test_classifier_outputs_a_label_and_probabilities_in_class_order(trained_bundle: Path) -> None:
    metadata = verify_bundle(trained_bundle)
    assert metadata.classes == ("0", "1")
    session = onnxruntime.InferenceSession(str(trained_bundle / ONNX_FILE), providers=["CPUExecutionProvider"])
    outputs = {o.name: (o.type, o.shape) for o in session.get_outputs()}
    assert outputs == {LABEL_OUTPUT: ("tensor(string)", [None]), PROBABILITIES_OUTPUT: ("tensor(float)", [None, 2])}
    labels, probabilities = session.run([LABEL_OUTPUT, PROBABILITIES_OUTPUT], serving_feeds(REQUESTS, trained_bundle))
    assert list(labels) == [metadata.classes[i] for i in probabilities.argmax(axis=1)]
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-5)


@pytest.mark.parametrize("bundle_fixture", ["trained_bundle", "trained_forest_bundle"])
def test_onnx_fed_like_serving_agrees_with_the_joblib_pipeline_on_nulls_and_unseen_categories(
    bundle_fixture: str, request: pytest.FixtureRequest
) -> None:
    bundle: Path = request.getfixturevalue(bundle_fixture)
    metadata = verify_bundle(bundle)
    session = onnxruntime.InferenceSession(str(bundle / ONNX_FILE), providers=["CPUExecutionProvider"])
    labels, probabilities = session.run(None, serving_feeds(REQUESTS, bundle))
    pipeline = joblib.load(bundle / JOBLIB_FILE)
    types = {f.name: f.type for f in metadata.features}
    expected = pipeline.predict_proba(model_inputs(pd.DataFrame(REQUESTS), types))
    np.testing.assert_allclose(probabilities, expected, atol=1e-4)
    assert list(labels) == list(pipeline.predict(model_inputs(pd.DataFrame(REQUESTS), types)))


def test_a_regressor_outputs_one_value_column(make_job: MakeJob, churn_data: pd.DataFrame) -> None:
    base = make_job({"target": "monthly_charges", "algorithm": "logistic_regression"}, churn_data.head(300))
    assert run(base) == 0, failure(base)
    session = onnxruntime.InferenceSession(str(Layout(base).model_dir / ONNX_FILE), providers=["CPUExecutionProvider"])
    assert [(o.name, o.type, o.shape) for o in session.get_outputs()] == [(VALUE_OUTPUT, "tensor(float)", [None, 1])]


def test_a_broken_export_fails_the_job_with_the_parity_reason(
    make_job: MakeJob, churn_data: pd.DataFrame, monkeypatch: pytest.MonkeyPatch
) -> None:
    def export_a_different_model(pipeline: Any, spec: FeatureSpec, task: Any) -> Any:
        skewed = copy.deepcopy(pipeline)
        skewed.named_steps["estimator"].coef_ *= 1.5
        return onnx_export.to_onnx(skewed, spec, task)

    monkeypatch.setattr("training.program.to_onnx", export_a_different_model)
    base = make_job(CHURN, churn_data.head(400))
    assert run(base) == 1
    assert failure(base).startswith("ONNX parity check failed: the exported model disagrees with scikit-learn: ")
    assert "differ by more than 0.0001 in a class probability" in failure(base)
    assert not (Layout(base).model_dir / "metadata.json").exists()


def test_parity_check_catches_regression_values_that_drift_apart(churn_data: pd.DataFrame) -> None:
    types: dict[str, FeatureType] = {"tenure_months": "numeric", "age": "numeric", "region": "categorical"}
    spec = FeatureSpec.of(types)
    inputs = model_inputs(churn_data.head(200), types)
    pipeline = build_pipeline("regression", "logistic_regression", {}, spec, 0)
    pipeline.fit(inputs, churn_data["monthly_charges"].head(200).fillna(60.0))
    model = onnx_export.to_onnx(pipeline, spec, "regression")
    probe = onnx_export.parity_probe(inputs, types)
    report = onnx_export.check_parity(model, pipeline, probe, spec, "regression")
    assert report["rows"] == 250
    pipeline.named_steps["estimator"].intercept_ += 0.5
    with pytest.raises(TrainingFailure, match=r"predictions differ by more than 0\.0001 relative"):
        onnx_export.check_parity(model, pipeline, probe, spec, "regression")


def test_parity_probe_adds_all_missing_rows_and_unseen_categories(churn_data: pd.DataFrame) -> None:
    types: dict[str, FeatureType] = {"age": "numeric", "region": "categorical"}
    inputs = model_inputs(churn_data.head(40), types)
    probe = onnx_export.parity_probe(inputs, types)
    assert len(probe) == 40 + 2 * onnx_export.PROBE_ROWS
    blank = probe.iloc[40 : 40 + onnx_export.PROBE_ROWS]
    assert blank["age"].isna().all()
    assert (blank["region"] == MISSING_CATEGORY).all()
    assert (probe.iloc[40 + onnx_export.PROBE_ROWS :]["region"] == onnx_export.UNSEEN_CATEGORY).all()


PUBLIC_NAMES = {
    "tenure_months": "tenure (months)",
    "monthly_charges": "Monthly.Charges",
    "age": "âge",
    "contract": "Unnamed: 0",
    "region": "label",
}


def test_column_names_that_are_no_identifiers_train_and_serve_through_their_onnx_input_names(
    make_job: MakeJob, churn_data: pd.DataFrame
) -> None:
    data = churn_data.head(400).rename(columns=PUBLIC_NAMES)
    base = make_job(CHURN, data)
    assert run(base) == 0, failure(base)
    bundle = Layout(base).model_dir
    metadata = verify_bundle(bundle)
    inputs = {f.name: f.onnx_input for f in metadata.features}
    assert {name: inputs[name] for name in PUBLIC_NAMES.values()} == {
        "tenure (months)": "tenure_months",
        "Monthly.Charges": "Monthly_Charges",
        "âge": "age",
        "Unnamed: 0": "Unnamed_0",
        "label": "label_2",
    }
    session = onnxruntime.InferenceSession(str(bundle / ONNX_FILE), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == list(inputs.values())
    requests = [{PUBLIC_NAMES.get(k, k): v for k, v in row.items()} for row in REQUESTS]
    _, probabilities = session.run(None, serving_feeds(requests, bundle))
    types = {f.name: f.type for f in metadata.features}
    expected = joblib.load(bundle / JOBLIB_FILE).predict_proba(model_inputs(pd.DataFrame(requests), types))
    np.testing.assert_allclose(probabilities, expected, atol=1e-4)


def test_an_input_named_like_a_value_inside_the_converted_graph_still_exports() -> None:
    # skl2onnx keeps "vàriable" as an input name and calls the regressor's output "variable": the mapped input
    # name; the output is moved out of its way.
    rng = np.random.default_rng(0)
    types: dict[str, FeatureType] = {"vàriable": "numeric", "a b": "categorical", "a_b": "numeric"}
    frame = pd.DataFrame({"vàriable": rng.normal(size=200), "a b": rng.choice(["x", "y"], 200), "a_b": 1.0})
    spec = FeatureSpec.of(types)
    inputs = model_inputs(frame, types)
    pipeline = build_pipeline("regression", "random_forest", {"n_estimators": 5}, spec, 0)
    pipeline.fit(inputs, inputs["vàriable"] * 2)
    model = onnx_export.to_onnx(pipeline, spec, "regression")
    assert [i.name for i in model.graph.input] == ["variable", "a_b_2", "a_b"]
    assert [o.name for o in model.graph.output] == [VALUE_OUTPUT]
    report = onnx_export.check_parity(model, pipeline, onnx_export.parity_probe(inputs, types), spec, "regression")
    assert report["max_relative_difference"] <= onnx_export.TOLERANCE


def _neighbouring_float32_values(rows: int) -> pd.DataFrame:
    """Amounts around a million in steps of 1/16: neighbouring float32 values, whose midpoints round to either."""
    rng = np.random.default_rng(0)
    steps = rng.integers(0, 200, rows)
    return pd.DataFrame({"amount": 1_000_000 + steps / 16, "noise": rng.normal(size=rows), "steps": steps})


@pytest.mark.parametrize("task", ["classification", "regression"])
def test_hist_gradient_boosting_splits_between_neighbouring_float32_values_export_exactly(task: Task) -> None:
    data = _neighbouring_float32_values(2000)
    types: dict[str, FeatureType] = {"amount": "numeric", "noise": "numeric"}
    spec = FeatureSpec.of(types)
    inputs = model_inputs(data, types)
    target = (data["steps"] % 2).astype(str) if task == "classification" else data["steps"] % 7 * 10.0
    pipeline = build_pipeline(task, "hist_gradient_boosting", {}, spec, 0).fit(inputs, target)
    model = onnx_export.to_onnx(pipeline, spec, task)
    report = onnx_export.check_parity(model, pipeline, onnx_export.parity_probe(inputs, types), spec, task)
    assert max(report.get("max_probability_difference", 0), report.get("max_relative_difference", 0)) < 1e-5


def test_hist_gradient_boosting_imputes_a_median_that_onnx_can_represent() -> None:
    # Two neighbouring float32 values, half and half: the float64 median is their midpoint, which is also the
    # split threshold, and its nearest float32 is the upper value.
    amount = np.where(np.arange(400) < 200, 1_000_000 + 1 / 16, 1_000_000 + 2 / 16)
    data = pd.DataFrame({"amount": amount, "noise": np.random.default_rng(1).normal(size=400)})
    data.loc[[0, 399], "amount"] = np.nan
    target = pd.Series(np.where(amount < 1_000_000 + 1.5 / 16, "low", "high"))
    types: dict[str, FeatureType] = {"amount": "numeric", "noise": "numeric"}
    spec = FeatureSpec.of(types)
    inputs = model_inputs(data, types)
    pipeline = build_pipeline("classification", "hist_gradient_boosting", {}, spec, 0).fit(inputs, target)
    model = onnx_export.to_onnx(pipeline, spec, "classification")
    probe = onnx_export.parity_probe(inputs, types)
    report = onnx_export.check_parity(model, pipeline, probe, spec, "classification")
    assert report["max_probability_difference"] < 1e-5
