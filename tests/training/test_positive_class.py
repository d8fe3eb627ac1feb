"""Issue 14 items 4 and 6: the positive class, class weights, a decision threshold, and per-class reporting."""

from __future__ import annotations

from pathlib import Path

import joblib
import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_breast_cancer
from sklearn.metrics import recall_score

from functions.common.bundle import JOBLIB_FILE, FeatureType
from functions.common.gate import Confusion
from functions.inference.model import load_model
from tests.conftest import MakeJob
from tests.training.jobs import evaluation_json, failure, metadata
from training.contract import Layout
from training.errors import TrainingFailure
from training.feature_spec import FeatureSpec
from training.features import model_inputs
from training.hyperparameters import ALGORITHMS
from training.onnx_export import bake_threshold, check_parity, to_onnx
from training.pipeline import build_pipeline, fit
from training.program import run

DIAGNOSIS = "diagnosis"


@pytest.fixture(scope="module")
def breast_cancer() -> pd.DataFrame:
    """The breast cancer data as a data scientist has it: the target's labels are words, ``malignant`` the rarer."""
    data = load_breast_cancer(as_frame=True)
    frame: pd.DataFrame = data.frame.drop(columns="target")
    frame.columns = [name.replace(" ", "_") for name in frame.columns]
    return frame.assign(**{DIAGNOSIS: data.target_names[data.target]})


def _trained(make_job: MakeJob, data: pd.DataFrame, **hyperparameters: object) -> Path:
    base = make_job({"target": DIAGNOSIS, "algorithm": "logistic_regression", **hyperparameters}, data)
    assert run(base) == 0, failure(base)
    return base


def _as_shipped(frame: pd.DataFrame) -> pd.DataFrame:
    """The target coded as scikit-learn ships it, the issue's repro: 0 malignant, 1 benign (the second label)."""
    return frame.assign(**{DIAGNOSIS: np.where(frame[DIAGNOSIS] == "malignant", 0, 1)})


@pytest.fixture(scope="module")
def malignant_job(make_job: MakeJob, breast_cancer: pd.DataFrame) -> Path:
    return _trained(make_job, _as_shipped(breast_cancer), positive_class="0")


def _f1_by_class(base: Path) -> dict[str, float | None]:
    confusion = Confusion.from_dict(evaluation_json(base)["challenger_confusion"])
    assert confusion is not None
    return {label: confusion.f1(label) for label in confusion.labels}


def test_f1_in_trainings_report_is_the_chosen_positive_class(malignant_job: Path) -> None:
    evaluation = evaluation_json(malignant_job)
    by_class = _f1_by_class(malignant_job)

    assert evaluation["challenger"]["f1"] == pytest.approx(by_class["0"])
    assert by_class["0"] != pytest.approx(by_class["1"])
    assert evaluation["positive_class"] == "0"
    assert metadata(malignant_job).positive_class == "0"
    assert metadata(malignant_job).hyperparameters["positive_class"] == "0"


def test_without_positive_class_f1_stays_the_second_sorted_labels(
    make_job: MakeJob, breast_cancer: pd.DataFrame
) -> None:
    base = _trained(make_job, _as_shipped(breast_cancer))

    assert evaluation_json(base)["challenger"]["f1"] == pytest.approx(_f1_by_class(base)["1"])
    assert metadata(base).positive_label == "1"


def test_a_positive_class_named_by_a_word_is_the_one_f1_is_of(make_job: MakeJob, breast_cancer: pd.DataFrame) -> None:
    base = _trained(make_job, breast_cancer, positive_class="benign")  # not the second sorted label

    assert evaluation_json(base)["challenger"]["f1"] == pytest.approx(_f1_by_class(base)["benign"])
    assert metadata(base).positive_label == "benign"


def test_the_drift_baseline_tracks_the_positive_class_probability(
    malignant_job: Path, breast_cancer: pd.DataFrame
) -> None:
    baseline = metadata(malignant_job).baseline
    edges = baseline["positive_probability"]["edges"]
    # Malignant ("0") is the rarer class (37%): its probability's median is low, benign's high.
    assert edges[len(edges) // 2] < 0.5


@pytest.mark.parametrize(
    ("hyperparameters", "expected"),
    [
        ({"positive_class": "cancerous"}, "'positive_class'='cancerous' is not one of the target's classes"),
        ({"decision_threshold": "0.3", "target": "mean_radius"}, "'decision_threshold' applies to binary"),
        ({"class_weight": '{"malignant": 3, "unknown": 2}'}, "'class_weight' names label(s) 'unknown'"),
    ],
)
def test_class_settings_that_do_not_fit_the_target_fail_the_job_naming_the_setting(
    make_job: MakeJob, breast_cancer: pd.DataFrame, hyperparameters: dict[str, str], expected: str
) -> None:
    base = make_job({"target": DIAGNOSIS, **hyperparameters}, breast_cancer)

    assert run(base) == 1
    assert expected in failure(base)


def test_positive_class_on_a_three_class_target_fails_precisely(make_job: MakeJob) -> None:
    rng = np.random.default_rng(0)
    data = pd.DataFrame({"x": rng.normal(size=300), "weather": rng.choice(["sun", "rain", "drizzle"], 300)})
    base = make_job({"target": "weather", "positive_class": "rain"}, data)

    assert run(base) == 1
    assert "'positive_class' applies to binary classification only, not classification with 3 classes" in failure(base)


def test_served_labels_at_a_decision_threshold_are_the_pipelines_probabilities_thresholded(
    make_job: MakeJob, breast_cancer: pd.DataFrame
) -> None:
    base = _trained(make_job, breast_cancer, positive_class="malignant", decision_threshold="0.2")
    bundle = Layout(base).model_dir
    model = load_model(bundle, "test")
    types = {feature.name: feature.type for feature in model.metadata.features}
    inputs = model_inputs(breast_cancer, types)
    columns = {name: inputs[name].to_numpy(dtype=np.float32).reshape(-1, 1) for name in types}

    served = model.predict(columns)

    pipeline = joblib.load(bundle / JOBLIB_FILE)  # the test's own bundle
    probability = pipeline.predict_proba(inputs)[:, list(pipeline.classes_).index("malignant")]
    expected = np.where(probability >= 0.2, "malignant", "benign")
    assert model.metadata.decision_threshold == 0.2
    assert served.labels == expected.tolist()  # type: ignore[union-attr]
    assert (expected == "malignant").sum() > (pipeline.predict(inputs) == "malignant").sum()


def imbalanced(rows: int) -> tuple[pd.DataFrame, pd.Series]:
    """A rare class (8%) that overlaps the common one: unweighted models mostly miss it."""
    rng = np.random.default_rng(5)
    rare = rng.random(rows) < 0.08
    x = rng.normal(size=(rows, 2)) + np.where(rare, 1.0, 0.0)[:, None]
    return pd.DataFrame(x, columns=["a", "b"]), pd.Series(np.where(rare, "drizzle", "sun"))


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_balanced_class_weight_finds_more_of_a_rare_class_with_every_algorithm(algorithm: str) -> None:
    inputs, target = imbalanced(3000)
    fit_rows, scored = slice(0, 2000), slice(2000, None)
    spec = FeatureSpec({"a": "numeric", "b": "numeric"}, {"a": "a", "b": "b"}, frozenset(), {})
    # Leaves of some rows: a fully grown forest's pure leaves would ignore any weight.
    knobs = {} if algorithm == "logistic_regression" else {"min_samples_leaf": 20}
    recalls = []
    for weight in (None, "balanced"):
        pipeline = build_pipeline("classification", algorithm, knobs, spec, 0, weight)
        fit(pipeline, inputs[fit_rows], target[fit_rows], weight)
        recalls.append(recall_score(target[scored], pipeline.predict(inputs[scored]), pos_label="drizzle"))

    assert recalls[1] > recalls[0] + 0.1


def test_a_graph_answering_by_another_threshold_fails_the_parity_check(breast_cancer: pd.DataFrame) -> None:
    types: dict[str, FeatureType] = {name: "numeric" for name in breast_cancer.columns if name != DIAGNOSIS}
    spec = FeatureSpec(types, {name: name for name in types}, frozenset(), {})
    pipeline = build_pipeline("classification", "logistic_regression", {"max_iter": 1000}, spec, 0)
    fit(pipeline, breast_cancer, breast_cancer[DIAGNOSIS], None)
    graph = to_onnx(pipeline, spec, "classification")
    bake_threshold(graph, tuple(pipeline.classes_), "malignant", 0.9)

    check_parity(graph, pipeline, breast_cancer, spec, "classification", ("malignant", 0.9))
    with pytest.raises(TrainingFailure, match="rows get another label"):
        check_parity(graph, pipeline, breast_cancer, spec, "classification", ("malignant", 0.1))
