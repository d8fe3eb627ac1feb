import shutil
import tarfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from functions.common.bundle import JOBLIB_FILE, pack_archive
from tests.conftest import MakeJob
from tests.training.jobs import CHURN, evaluation, evaluation_json, failure, metadata
from training.program import run
from training.synthetic import generate


@pytest.fixture(scope="session")
def fresh_data() -> pd.DataFrame:
    """New data from the same distribution as the champion's training data."""
    return generate(1500, seed=11)


@pytest.fixture(scope="session")
def champion_archive(trained_bundle: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    archive = tmp_path_factory.mktemp("champion") / "model.tar.gz"
    pack_archive(trained_bundle, archive)
    return archive


def shuffled(data: pd.DataFrame, seed: int = 0) -> pd.DataFrame:
    return data.assign(churned=np.random.default_rng(seed).permutation(data["churned"].to_numpy()))


def test_a_challenger_better_than_the_champion_passes_the_gate(
    make_job: MakeJob, churn_data: pd.DataFrame, fresh_data: pd.DataFrame
) -> None:
    weak = make_job(CHURN, shuffled(churn_data))
    assert run(weak) == 0
    weak_archive = weak / "model.tar.gz"
    pack_archive(weak / "model", weak_archive)

    base = make_job({**CHURN, "champion_version": "3"}, fresh_data, champion=weak_archive)
    assert run(base) == 0
    result = evaluation(base)
    assert result.verdict.passed
    assert result.champion_version == "3"
    assert result.champion is not None
    assert result.challenger["roc_auc"] > result.champion["roc_auc"]


def test_a_challenger_trained_on_shuffled_labels_is_rejected_against_a_good_champion(
    make_job: MakeJob, fresh_data: pd.DataFrame, champion_archive: Path
) -> None:
    base = make_job(CHURN, shuffled(fresh_data), champion=champion_archive)
    assert run(base) == 0  # a rejected challenger is a successful job: the workflow reads the verdict
    report = evaluation_json(base)
    assert report["passed"] is False
    assert report["holdout_rows"] == 300
    assert set(report["champion"]) == {"accuracy", "f1", "roc_auc", "log_loss"}
    assert "is below min_improvement" in report["reasons"][0]


def test_a_challenger_trained_on_tiny_data_is_rejected_against_a_good_champion(
    make_job: MakeJob, fresh_data: pd.DataFrame, champion_archive: Path
) -> None:
    # 60 training rows, and a large holdout so the comparison itself is not noise.
    tiny = {**CHURN, "test_size": "0.8", "min_rows": "50", "algorithm": "random_forest", "n_estimators": "10"}
    base = make_job(tiny, fresh_data.head(300), champion=champion_archive)
    assert run(base) == 0
    result = evaluation(base)
    assert result.holdout_rows == 240
    assert metadata(base).training_data["train_rows"] == 60
    assert result.champion is not None
    assert not result.verdict.passed


def test_both_models_are_scored_on_the_same_holdout(
    make_job: MakeJob, churn_data: pd.DataFrame, trained_bundle: Path
) -> None:
    # Retraining the champion's recipe on the champion's data gives the same model and the same split; equal
    # metrics then show the champion was scored on exactly the challenger's holdout rows.
    base = make_job(CHURN, churn_data, champion=trained_bundle)
    assert run(base) == 0
    result = evaluation(base)
    assert result.holdout_rows == 400
    assert result.champion == pytest.approx(result.challenger, abs=1e-12)
    assert result.verdict.passed  # an equal score meets the default min_improvement of 0


def test_min_metric_floor_rejects_a_challenger_that_beats_no_one(make_job: MakeJob, churn_data: pd.DataFrame) -> None:
    base = make_job({**CHURN, "metric": "accuracy", "min_metric": "0.99"}, churn_data.head(400))
    assert run(base) == 0
    report = evaluation_json(base)
    assert report["metric"] == "accuracy"
    assert report["passed"] is False
    assert report["champion"] is None
    assert report["reasons"][1] == "no champion to compare with"


def test_a_champion_with_another_feature_schema_fails_naming_added_and_removed_features(
    make_job: MakeJob, fresh_data: pd.DataFrame, trained_bundle: Path
) -> None:
    changed = fresh_data.drop(columns="age").rename(columns={"region": "area"})
    base = make_job(CHURN, changed, champion=trained_bundle)
    assert run(base) == 1
    reason = failure(base)
    assert "added features 'area'" in reason
    assert "removed features 'age', 'region'" in reason
    assert "allow_schema_change=true" in reason


def test_a_feature_whose_type_changed_is_a_schema_change(
    make_job: MakeJob, fresh_data: pd.DataFrame, trained_bundle: Path
) -> None:
    base = make_job({**CHURN, "categorical_features": "support_calls"}, fresh_data, champion=trained_bundle)
    assert run(base) == 1
    assert "removed features 'tenure_months'" in failure(base)
    assert "support_calls (numeric -> categorical)" in failure(base)


def test_allow_schema_change_trains_without_comparing_and_says_why(
    make_job: MakeJob, fresh_data: pd.DataFrame, trained_bundle: Path
) -> None:
    base = make_job({**CHURN, "allow_schema_change": "true"}, fresh_data.drop(columns="age"), champion=trained_bundle)
    assert run(base) == 0
    report = evaluation_json(base)
    assert report["champion"] is None
    assert "removed features 'age'" in report["details"]["champion_not_compared"]
    assert report["reasons"][-1].startswith("champion not compared: the model schema differs")


def test_a_champion_predicting_another_target_is_a_schema_change(
    make_job: MakeJob, fresh_data: pd.DataFrame, trained_bundle: Path
) -> None:
    data = fresh_data.rename(columns={"churned": "left"})
    base = make_job({"target": "left", "algorithm": "logistic_regression"}, data, champion=trained_bundle)
    assert run(base) == 1
    assert "the champion predicts 'churned' (classification), not 'left' (classification)" in failure(base)


def test_a_champion_whose_model_file_was_tampered_with_fails_the_job(
    make_job: MakeJob, fresh_data: pd.DataFrame, trained_bundle: Path, tmp_path: Path
) -> None:
    tampered = tmp_path / "bundle"
    shutil.copytree(trained_bundle, tampered)
    (tampered / JOBLIB_FILE).write_bytes(b"not a model")
    base = make_job(CHURN, fresh_data, champion=tampered)
    assert run(base) == 1
    assert failure(base).startswith("the champion model is unusable: model.joblib checksum mismatch")


def test_a_corrupt_champion_archive_fails_the_job(make_job: MakeJob, fresh_data: pd.DataFrame, tmp_path: Path) -> None:
    archive = tmp_path / "model.tar.gz"
    archive.write_bytes(b"\x1f\x8b not really gzip")
    base = make_job(CHURN, fresh_data, champion=archive)
    assert run(base) == 1
    assert failure(base).startswith("the champion model is unusable: model.tar.gz is not a readable model archive")


def test_a_champion_archive_without_metadata_fails_the_job(
    make_job: MakeJob, fresh_data: pd.DataFrame, tmp_path: Path
) -> None:
    archive = tmp_path / "model.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(Path(__file__), arcname="train.py")
    base = make_job(CHURN, fresh_data, champion=archive)
    assert run(base) == 1
    assert "metadata.json is missing" in failure(base)


def test_a_champion_channel_with_two_models_is_ambiguous(
    make_job: MakeJob, fresh_data: pd.DataFrame, champion_archive: Path
) -> None:
    base = make_job(CHURN, fresh_data, champion=champion_archive)
    shutil.copy(champion_archive, base / "input" / "data" / "champion" / "other.tar.gz")
    assert run(base) == 1
    assert "exactly one model.tar.gz or bundle directory; found model.tar.gz, other.tar.gz" in failure(base)
