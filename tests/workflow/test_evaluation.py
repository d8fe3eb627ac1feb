"""Evaluate: the workflow scores both models' ONNX bundles on its own holdout, and the gate judges those scores only.

The attack of issue 13: a training job that writes its own scores (a forged evaluation that passes) no longer
steers the verdict.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import joblib
import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from functions.common.bundle import JOBLIB_FILE, pack_archive, read_metadata
from functions.common.gate import Verdict
from functions.common.layout import holdout_evaluation_key, holdout_rows_folder
from functions.common.registry import Registry, RegistryError
from functions.workflow import steps
from functions.workflow.evaluation import PANDAS_MISSING, EvaluationError, evaluate, missing_tokens
from functions.workflow.state import RunState
from tests.conftest import MakeJob, iris_like
from tests.plugins.aws import DATA_BUCKET
from tests.workflow.support import SETTINGS, fake_training_job, prepared_state
from training.features import model_inputs

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
    **job_claims: Any,
) -> dict[str, Any]:
    state = prepared_state(s3, registry, {"trigger": {"source": "test"}})
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


def test_missing_values_as_a_json_list_are_read_as_the_training_program_reads_them() -> None:
    assert missing_tokens({"missing_values": '[" ?", "unknown, none"]'}) == PANDAS_MISSING | {" ?", "unknown, none"}
    assert missing_tokens({"missing_values": " ?, unknown"}) == PANDAS_MISSING | {"?", "unknown"}


def test_malformed_missing_values_are_refused_naming_the_hyperparameter() -> None:
    with pytest.raises(EvaluationError, match=r"hyperparameter 'missing_values'='\[\" \?\"' starts with '\['"):
        missing_tokens({"missing_values": '[" ?"'})


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
