"""Evaluate: the workflow scores both models' ONNX bundles on its own holdout, and the gate judges those scores only.

The attack of issue 13: a training job that writes its own scores (a forged evaluation that passes) no longer
steers the verdict.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import joblib
import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_breast_cancer
from sklearn.metrics import accuracy_score, f1_score, roc_auc_score

from functions.common.bundle import JOBLIB_FILE, METADATA_FILE, pack_archive, read_metadata, write_metadata
from functions.common.gate import Verdict
from functions.common.layout import holdout_evaluation_key, holdout_rows_folder
from functions.common.registry import Registry, RegistryError
from functions.workflow import steps
from functions.workflow.evaluation import EvaluationError, evaluate
from functions.workflow.state import RunState
from tests.conftest import MakeJob, iris_like
from tests.plugins.aws import DATA_BUCKET
from tests.training.jobs import failure, with_paperless
from tests.workflow.support import SETTINGS, fake_training_job, prepared_state
from training.features import model_inputs
from training.program import run

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

TARGET = "churned"
# tests.plugins.aws's fixture: registers a bundle directory and promotes it.
Publish = Callable[[Path], str]


@pytest.fixture
def training_data(s3: S3Client) -> None:
    s3.put_object(Bucket=DATA_BUCKET, Key="training-data/part-1.csv", Body=b"a,churned\n1,0\n")


@pytest.fixture(scope="module")
def holdout_rows() -> pd.DataFrame:
    from training.synthetic import generate

    return generate(1200, seed=21)


@pytest.fixture(scope="module")
def noise_bundle(make_job: MakeJob, churn_data: pd.DataFrame) -> Path:
    """A model fitted to shuffled labels: it has learnt nothing."""
    from training.program import run

    shuffled = churn_data.assign(**{TARGET: np.random.default_rng(3).permutation(churn_data[TARGET].to_numpy())})
    base = make_job({"target": TARGET, "algorithm": "logistic_regression"}, shuffled)
    assert run(base) == 0, (base / "output" / "failure").read_text()
    return base / "model"


def _upload_holdout(s3: S3Client, version: str, rows: pd.DataFrame) -> dict[str, Any]:
    """The rows as HoldOut leaves them: most trusted, the last 200 feedback (lower-case names, as UNLOAD writes)."""
    folder = holdout_rows_folder(SETTINGS.holdout_prefix, version)
    trusted, feedback = rows.iloc[:-200], rows.iloc[-200:].rename(columns=str.lower)
    s3.put_object(Bucket=DATA_BUCKET, Key=folder + "base/part-1.csv", Body=trusted.to_csv(index=False).encode())
    s3.put_object(Bucket=DATA_BUCKET, Key=folder + "feedback/query_1.csv", Body=feedback.to_csv(index=False).encode())
    return {"folder": folder, "counts": {}}


def _run_to_evaluation(
    s3: S3Client,
    registry: Registry,
    bundle: Path,
    rows: pd.DataFrame,
    tmp_path: Path,
    run_hyperparameters: dict[str, str] | None = None,
    **job_claims: Any,
) -> dict[str, Any]:
    state = prepared_state(s3, registry, {"trigger": {"source": "test"}})
    state["prepare"]["hyperparameters"].update(run_hyperparameters or {})
    state["holdout"] = _upload_holdout(s3, state["prepare"]["version"], rows)
    claims = {"challenger": 0.99, "champion": None, **job_claims}
    state["training"] = fake_training_job(s3, state["prepare"], bundle, tmp_path, **claims)
    state["evaluation"] = evaluate(SETTINGS, s3, registry, RunState.parse(state)).to_json()
    return state


def _stored_evaluation(s3: S3Client, state: dict[str, Any]) -> dict[str, Any]:
    key = holdout_evaluation_key(SETTINGS.holdout_prefix, state["prepare"]["version"])
    return dict(json.loads(s3.get_object(Bucket=DATA_BUCKET, Key=key)["Body"].read()))


def test_evaluate_scores_both_bundles_with_onnx_as_the_fitted_pipelines_score_them(
    s3: S3Client,
    registry: Registry,
    publish: Publish,
    training_data: None,
    trained_bundle: Path,
    trained_forest_bundle: Path,
    holdout_rows: pd.DataFrame,
    tmp_path: Path,
) -> None:
    publish(trained_bundle)

    state = _run_to_evaluation(s3, registry, trained_forest_bundle, holdout_rows, tmp_path)

    scores = _stored_evaluation(s3, state)
    assert state["evaluation"]["scored_rows"] == scores["holdout_rows"] == len(holdout_rows)
    assert scores["champion_seen_rows"] == 0  # its fit rows are known, and none of them was held out
    assert state["evaluation"]["trusted_rows"] == len(holdout_rows) - 200
    truth = holdout_rows[TARGET].astype(str) == "1"
    for bundle, metrics in ((trained_forest_bundle, scores["challenger"]), (trained_bundle, scores["champion"])):
        pipeline = joblib.load(bundle / JOBLIB_FILE)  # the test's own bundles: Evaluate itself never unpickles
        types = {feature.name: feature.type for feature in read_metadata(bundle).features}
        expected = roc_auc_score(truth, pipeline.predict_proba(model_inputs(holdout_rows, types))[:, 1])
        assert metrics["roc_auc"] == pytest.approx(expected, abs=1e-4)
    assert scores["champion_given"] is True and scores["challenger_confusion"] is not None
    assert {s["feature"] for s in scores["slices"]} >= {"contract"}


def test_holdout_rows_the_champion_was_fitted_on_are_left_out_and_counted(
    s3: S3Client,
    registry: Registry,
    publish: Publish,
    training_data: None,
    trained_bundle: Path,
    trained_forest_bundle: Path,
    churn_data: pd.DataFrame,
    holdout_rows: pd.DataFrame,
    tmp_path: Path,
) -> None:
    # The champion (trained_bundle) was fitted on most of churn_data: a holdout holding some of those rows, as one
    # drawn before the workflow held rows out could, must not score it on them.
    publish(trained_bundle)
    rows = pd.concat([churn_data.iloc[:300], holdout_rows], ignore_index=True)

    state = _run_to_evaluation(s3, registry, trained_forest_bundle, rows, tmp_path)

    scores = _stored_evaluation(s3, state)
    assert scores["holdout_rows"] == len(rows)
    # About 80% of those 300 rows were the champion's fit rows (the rest was its own holdout).
    assert 200 <= scores["champion_seen_rows"] <= 280
    assert scores["scored_rows"] == len(rows) - scores["champion_seen_rows"]


def test_a_job_that_forges_a_passing_evaluation_is_judged_on_the_workflows_scores_and_rejected(
    s3: S3Client,
    registry: Registry,
    publish: Publish,
    training_data: None,
    trained_forest_bundle: Path,
    noise_bundle: Path,
    holdout_rows: pd.DataFrame,
    tmp_path: Path,
) -> None:
    champion = publish(trained_forest_bundle)
    # The job claims what the forged evaluation claimed: a great challenger and a champion it never saw.
    forged = Verdict(True, ("the challenger is better",))

    state = _run_to_evaluation(
        s3, registry, noise_bundle, holdout_rows, tmp_path, challenger=0.99, champion=None, verdict=forged
    )
    registration = steps.register(SETTINGS, s3, registry, RunState.parse(state)).to_json()

    assert state["evaluation"]["passed"] is False
    assert registration["passed"] is False and registration["held"] is False
    assert registration["challenger"] < registration["champion"] - 0.1
    assert registration["job_verdict_differs"] is True
    record = registry.get_version(registration["version"])
    assert record.evaluation is not None
    assert record.evaluation["training_job"]["challenger"] == {"roc_auc": 0.99}
    assert record.evaluation["challenger"]["roc_auc"] == registration["challenger"]
    with pytest.raises(steps.NotPassed):
        steps.promote(registry, RunState.parse({**state, "registration": registration}))
    assert (registry.champion() or pytest.fail("no champion")).version == champion


def test_a_job_whose_claims_are_consistent_but_false_is_still_rejected(
    s3: S3Client,
    registry: Registry,
    publish: Publish,
    training_data: None,
    trained_forest_bundle: Path,
    noise_bundle: Path,
    holdout_rows: pd.DataFrame,
    tmp_path: Path,
) -> None:
    publish(trained_forest_bundle)

    state = _run_to_evaluation(s3, registry, noise_bundle, holdout_rows, tmp_path, challenger=0.99, champion=0.5)
    registration = steps.register(SETTINGS, s3, registry, RunState.parse(state)).to_json()

    assert registration["passed"] is False
    assert any("below" in reason or "regress" in reason for reason in registration["reasons"])


def test_evaluate_refuses_a_champion_archive_changed_since_prepare_read_its_checksum(
    s3: S3Client,
    registry: Registry,
    publish: Publish,
    training_data: None,
    trained_bundle: Path,
    trained_forest_bundle: Path,
    holdout_rows: pd.DataFrame,
    tmp_path: Path,
) -> None:
    champion = publish(trained_bundle)
    state = prepared_state(s3, registry, {"trigger": {"source": "test"}})
    state["holdout"] = _upload_holdout(s3, state["prepare"]["version"], holdout_rows)
    state["training"] = fake_training_job(
        s3, state["prepare"], trained_forest_bundle, tmp_path, challenger=0.9, champion=None
    )
    pack_archive(trained_forest_bundle, tmp_path / "swapped.tar.gz")
    s3.upload_file(str(tmp_path / "swapped.tar.gz"), registry.bucket, registry.get_version(champion).archive_key)

    with pytest.raises(RegistryError, match="checksum mismatch"):
        evaluate(SETTINGS, s3, registry, RunState.parse(state))


def test_evaluate_names_the_column_and_value_a_model_cannot_take(
    s3: S3Client,
    registry: Registry,
    training_data: None,
    trained_bundle: Path,
    holdout_rows: pd.DataFrame,
    tmp_path: Path,
) -> None:
    rows = holdout_rows.astype({"tenure_months": object})
    rows.loc[rows.index[3], "tenure_months"] = "twelve"

    with pytest.raises(
        EvaluationError,
        match=r"holdout file base/part-1\.csv line 5: column 'tenure_months' is numeric for the model but holds "
        r"'twelve'",
    ):
        _run_to_evaluation(s3, registry, trained_bundle, rows, tmp_path)


def test_a_boolean_feature_is_read_from_the_holdout_as_the_training_program_reads_it(
    s3: S3Client,
    registry: Registry,
    training_data: None,
    make_job: MakeJob,
    churn_data: pd.DataFrame,
    holdout_rows: pd.DataFrame,
    tmp_path: Path,
) -> None:
    base = make_job(
        {"target": TARGET, "algorithm": "logistic_regression"}, {"data.parquet": with_paperless(churn_data)}
    )
    assert run(base) == 0, failure(base)
    rows = with_paperless(holdout_rows, len(holdout_rows))
    # CSV as pandas writes Python booleans, and (the feedback part) as pyarrow writes Parquet ones.
    rows["paperless"] = rows["paperless"].map({True: "True", False: "False", None: None})
    rows.loc[rows.index[-200:], "paperless"] = rows["paperless"].iloc[-200:].str.lower()

    state = _run_to_evaluation(s3, registry, base / "model", rows, tmp_path)

    scores = _stored_evaluation(s3, state)
    pipeline = joblib.load(base / "model" / JOBLIB_FILE)
    types = {feature.name: feature.type for feature in read_metadata(base / "model").features}
    assert types["paperless"] == "boolean"
    truth = rows[TARGET].astype(str) == "1"
    expected = roc_auc_score(truth, pipeline.predict_proba(model_inputs(rows, types))[:, 1])
    assert scores["challenger"]["roc_auc"] == pytest.approx(expected, abs=1e-4)


def test_an_older_champion_reads_the_categories_it_was_trained_to_read_as_missing_as_missing(
    s3: S3Client,
    registry: Registry,
    publish: Publish,
    training_data: None,
    trained_bundle: Path,
    trained_forest_bundle: Path,
    holdout_rows: pd.DataFrame,
    tmp_path: Path,
) -> None:
    # Written before missing_tokens: trained with pandas' defaults, "NA" among them, as missing.
    older = tmp_path / "older"
    shutil.copytree(trained_bundle, older)
    data = json.loads((older / METADATA_FILE).read_text())
    del data["missing_tokens"]
    (older / METADATA_FILE).write_text(json.dumps(data))
    publish(older)
    rows = holdout_rows.copy()
    rows.loc[rows.index[::3], "payment_method"] = "NA"
    (tmp_path / "run").mkdir()

    state = _run_to_evaluation(s3, registry, trained_forest_bundle, rows, tmp_path / "run")

    pipeline = joblib.load(trained_bundle / JOBLIB_FILE)
    types = {feature.name: feature.type for feature in read_metadata(trained_bundle).features}
    as_served = rows.assign(payment_method=rows["payment_method"].replace("NA", None))
    truth = rows[TARGET].astype(str) == "1"
    expected = roc_auc_score(truth, pipeline.predict_proba(model_inputs(as_served, types))[:, 1])
    assert _stored_evaluation(s3, state)["champion"]["roc_auc"] == pytest.approx(expected, abs=1e-4)


def test_the_holdout_reads_as_missing_the_tokens_the_challengers_metadata_records_and_no_others(
    s3: S3Client,
    registry: Registry,
    training_data: None,
    trained_bundle: Path,
    holdout_rows: pd.DataFrame,
    tmp_path: Path,
) -> None:
    rows = holdout_rows.astype({"tenure_months": object})
    rows.loc[rows.index[3], "tenure_months"] = "NA"
    # The hyperparameters say nothing: the tokens are the bundle's, as training read its data.
    declared = tmp_path / "declared"
    shutil.copytree(trained_bundle, declared)
    write_metadata(declared, replace(read_metadata(declared), missing_tokens=("", "NA")))

    (tmp_path / "declared-run").mkdir()
    (tmp_path / "default-run").mkdir()
    state = _run_to_evaluation(s3, registry, declared, rows, tmp_path / "declared-run")

    assert state["evaluation"]["scored_rows"] == len(rows)
    with pytest.raises(EvaluationError, match=r"column 'tenure_months' is numeric for the model but holds 'NA'"):
        _run_to_evaluation(s3, registry, trained_bundle, rows, tmp_path / "default-run")


def test_evaluate_writes_the_challengers_permutation_importances_beside_the_scores(
    s3: S3Client,
    registry: Registry,
    training_data: None,
    trained_bundle: Path,
    holdout_rows: pd.DataFrame,
    tmp_path: Path,
) -> None:
    state = _run_to_evaluation(s3, registry, trained_bundle, holdout_rows, tmp_path)

    importances = _stored_evaluation(s3, state)["importances"]
    assert importances["metric"] == "roc_auc" and importances["rows"] == len(holdout_rows)
    ranked = [entry["feature"] for entry in importances["features"]]
    assert sorted(ranked) == sorted(read_metadata(trained_bundle).feature_names)
    # The churn generator's label leans on the contract among others.
    assert importances["features"][0]["mean"] > 0.02
    assert ranked.index("contract") < len(ranked) // 2


DIAGNOSIS = "diagnosis"


@pytest.fixture(scope="module")
def breast_cancer() -> pd.DataFrame:
    """Breast cancer as scikit-learn ships it, the issue's repro: 0 malignant, 1 benign (the second label)."""
    data = load_breast_cancer(as_frame=True)
    frame: pd.DataFrame = data.frame.rename(columns=lambda name: name.replace(" ", "_"))
    return frame.rename(columns={"target": DIAGNOSIS})


def _breast_cancer_bundle(make_job: MakeJob, data: pd.DataFrame, **hyperparameters: str) -> Path:
    from training.program import run

    base = make_job({"target": DIAGNOSIS, "algorithm": "logistic_regression", **hyperparameters}, data)
    assert run(base) == 0, (base / "output" / "failure").read_text()
    return base / "model"


@pytest.fixture(scope="module")
def malignant_bundle(make_job: MakeJob, breast_cancer: pd.DataFrame) -> Path:
    return _breast_cancer_bundle(make_job, breast_cancer, positive_class="0", decision_threshold="0.25")


def test_evaluate_scores_f1_of_the_runs_positive_class_on_the_graphs_thresholded_answers(
    s3: S3Client,
    registry: Registry,
    training_data: None,
    malignant_bundle: Path,
    breast_cancer: pd.DataFrame,
    tmp_path: Path,
) -> None:
    state = _run_to_evaluation(
        s3, registry, malignant_bundle, breast_cancer, tmp_path, run_hyperparameters={"positive_class": "0"}
    )

    scores = _stored_evaluation(s3, state)
    pipeline = joblib.load(malignant_bundle / JOBLIB_FILE)  # the test's own bundle: Evaluate never unpickles
    types = {feature.name: feature.type for feature in read_metadata(malignant_bundle).features}
    malignant = pipeline.predict_proba(model_inputs(breast_cancer, types))[:, list(pipeline.classes_).index("0")]
    answers = np.where(malignant >= 0.25, "0", "1")
    truth = breast_cancer[DIAGNOSIS].astype(str)
    assert scores["positive_class"] == "0"
    assert scores["challenger"]["f1"] == pytest.approx(f1_score(truth, answers, pos_label="0"))
    assert scores["challenger"]["accuracy"] == pytest.approx(accuracy_score(truth, answers))
    assert scores["challenger"]["accuracy"] != pytest.approx(
        accuracy_score(truth, pipeline.predict(model_inputs(breast_cancer, types)))
    )


def test_evaluate_refuses_a_challenger_whose_positive_class_is_not_the_runs(
    s3: S3Client,
    registry: Registry,
    training_data: None,
    malignant_bundle: Path,
    breast_cancer: pd.DataFrame,
    tmp_path: Path,
) -> None:
    # The run pins no positive_class (so the second label, "1"); the job chose "0" itself.
    with pytest.raises(
        EvaluationError, match="records the positive class '0', but the run's hyperparameters make it '1'"
    ):
        _run_to_evaluation(s3, registry, malignant_bundle, breast_cancer, tmp_path)


@pytest.fixture(scope="module")
def iris_bundles(make_job: MakeJob) -> dict[str, Path]:
    """Models fitted on 150 iris-shaped rows: one on the species, one on shuffled species (it learnt nothing)."""
    from training.program import run

    data = iris_like(150)
    shuffled = data.assign(species=np.random.default_rng(3).permutation(data["species"].to_numpy()))
    bundles = {}
    for name, rows in (("fitted", data), ("noise", shuffled)):
        base = make_job({"target": "species", "algorithm": "logistic_regression"}, rows)
        assert run(base) == 0, (base / "output" / "failure").read_text()
        bundles[name] = base / "model"
    return bundles


def _evaluate_on_small_holdout(
    s3: S3Client, registry: Registry, bundle: Path, rows: pd.DataFrame, tmp_path: Path
) -> dict[str, Any]:
    state = prepared_state(s3, registry, {"trigger": {"source": "test"}})
    folder = holdout_rows_folder(SETTINGS.holdout_prefix, state["prepare"]["version"])
    s3.put_object(Bucket=DATA_BUCKET, Key=folder + "base/part-1.csv", Body=rows.to_csv(index=False).encode())
    state["holdout"] = {"folder": folder, "counts": {}}
    tmp_path.mkdir()
    state["training"] = fake_training_job(s3, state["prepare"], bundle, tmp_path, challenger=0.99, champion=None)
    state["evaluation"] = evaluate(SETTINGS, s3, registry, RunState.parse(state)).to_json()
    return state


def test_a_first_model_on_iris_sized_data_is_promoted_on_a_bootstrap_bound_and_a_model_without_skill_is_not(
    s3: S3Client, registry: Registry, training_data: None, iris_bundles: dict[str, Path], tmp_path: Path
) -> None:
    # 30 holdout rows, as iris's 20% holdout: under min_scored_rows 50, over min_bootstrap_rows 20.
    rows = iris_like(30, seed=1)
    state = _evaluate_on_small_holdout(s3, registry, iris_bundles["noise"], rows, tmp_path / "noise")
    assert state["evaluation"]["passed"] is False
    assert "no skill shown" in _stored_evaluation(s3, state)["reasons"][-1]

    state = _evaluate_on_small_holdout(s3, registry, iris_bundles["fitted"], rows, tmp_path / "fitted")
    registration = steps.register(SETTINGS, s3, registry, RunState.parse(state)).to_json()

    assert state["evaluation"]["passed"] is True and registration["passed"] is True
    stored = _stored_evaluation(s3, state)
    assert stored["bootstrap"]["rows"] == 30 and stored["bootstrap"]["resamples"] == 1000
    assert stored["bootstrap"]["over_baseline"]["roc_auc"][0] > 0
    assert stored["reasons"][-1].startswith(
        "small data: 30 trusted holdout rows, fewer than min_scored_rows 50, judged on bootstrap bounds (1000 "
        "resamples, each bound 95% one-sided): challenger roc_auc="
    )
    steps.promote(registry, RunState.parse({**state, "registration": registration}))
    assert (registry.champion() or pytest.fail("no champion")).version == registration["version"]
