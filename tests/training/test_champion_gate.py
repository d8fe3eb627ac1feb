import hashlib
import io
import json
import shutil
import tarfile
from pathlib import Path

import joblib
import numpy as np
import pandas as pd
import pytest

from functions.common.bundle import (
    FIT_ROWS_FILE,
    JOBLIB_FILE,
    METADATA_FILE,
    ONNX_FILE,
    pack_archive,
    read_fit_rows,
    read_metadata,
    verify_bundle,
    write_metadata,
)
from functions.common.gate import reassess
from functions.common.layout import FEEDBACK_FILE
from functions.common.row_ids import hashed_columns
from tests.conftest import MakeJob, iris_like
from tests.training.jobs import CHURN, evaluation, evaluation_json, failure, metadata, poisoned_champion
from training.data import load_training_data
from training.holdout import feedback_rows, split
from training.program import run
from training.row_ids import fit_rows, row_hashes
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
    scores = result.scores
    assert scores.challenger is not None and scores.champion is not None
    assert scores.challenger["roc_auc"] > scores.champion["roc_auc"]
    # The workflow recomputes the same verdict from the recorded scores under the same settings.
    assert reassess(result, {"min_improvement": "0"}) == result.verdict


def test_a_challenger_trained_on_shuffled_labels_is_rejected_against_a_good_champion(
    make_job: MakeJob, fresh_data: pd.DataFrame, champion_archive: Path
) -> None:
    base = make_job(CHURN, shuffled(fresh_data), champion=champion_archive)
    assert run(base) == 0  # a rejected challenger is a successful job: the workflow reads the verdict
    report = evaluation_json(base)
    assert report["passed"] is False
    assert report["holdout_rows"] == 300
    assert set(report["champion"]) == {"accuracy", "f1", "roc_auc", "log_loss"}
    assert any("is below min_improvement" in reason for reason in report["reasons"])


def test_a_challenger_trained_on_tiny_data_is_rejected_against_a_good_champion(
    make_job: MakeJob, fresh_data: pd.DataFrame, champion_archive: Path
) -> None:
    # 60 training rows, and a large holdout so the comparison itself is not noise.
    tiny = {**CHURN, "test_size": "0.8", "min_rows": "50", "algorithm": "random_forest", "n_estimators": "10"}
    base = make_job(tiny, fresh_data.head(300), champion=champion_archive)
    assert run(base) == 0
    result = evaluation(base)
    assert result.scores.holdout_rows == 240
    assert metadata(base).training_data["train_rows"] == 60
    assert result.scores.champion is not None
    assert not result.verdict.passed


def test_both_models_are_scored_on_the_same_holdout(
    make_job: MakeJob, churn_data: pd.DataFrame, trained_bundle: Path
) -> None:
    # Retraining the champion's recipe on the champion's data: the only rows it never saw are its own holdout,
    # so that is the holdout again, and the challenger, fitted on the same rows, is the same model. Equal metrics
    # then show the champion was scored on exactly the challenger's holdout rows.
    base = make_job(CHURN, churn_data, champion=trained_bundle)
    assert run(base) == 0
    result = evaluation(base)
    assert (result.scores.holdout_rows, result.scores.champion_seen_rows, result.scores.trusted_rows) == (400, 0, 400)
    # The champion is scored through its model.onnx, whose float32 probabilities match scikit-learn's within 1e-7.
    assert result.scores.champion == pytest.approx(result.scores.challenger, abs=1e-6)
    assert result.scores.champion_trusted == pytest.approx(result.scores.challenger_trusted, abs=1e-6)
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
    assert "removed features" not in failure(base)
    assert "support_calls (numeric -> categorical)" in failure(base)


def test_allow_schema_change_trains_without_comparing_and_says_why(
    make_job: MakeJob, fresh_data: pd.DataFrame, trained_bundle: Path
) -> None:
    base = make_job({**CHURN, "allow_schema_change": "true"}, fresh_data.drop(columns="age"), champion=trained_bundle)
    assert run(base) == 0
    report = evaluation_json(base)
    assert report["passed"] is True
    assert (report["champion_given"], report["champion"], report["champion_seen_rows"]) == (True, None, None)
    assert "removed features 'age'" in report["champion_not_compared"]
    assert report["reasons"][0].startswith("champion not compared: the model schema differs")


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
    (tampered / ONNX_FILE).write_bytes(b"not a model")
    base = make_job(CHURN, fresh_data, champion=tampered)
    assert run(base) == 1
    assert failure(base).startswith("the champion model is unusable: model.onnx checksum mismatch")


def test_a_champion_whose_model_joblib_is_a_malicious_pickle_is_compared_without_ever_unpickling_it(
    make_job: MakeJob, fresh_data: pd.DataFrame, trained_bundle: Path, tmp_path: Path
) -> None:
    archive, marker = poisoned_champion(trained_bundle, tmp_path)

    base = make_job(CHURN, fresh_data, champion=archive)
    assert run(base) == 0
    scores = evaluation(base).scores
    assert scores.champion_compared and set(scores.champion or {}) == {"accuracy", "f1", "roc_auc", "log_loss"}
    assert not marker.exists()
    with tarfile.open(archive) as members:
        pickled = members.extractfile(JOBLIB_FILE)
        assert pickled is not None
        joblib.load(pickled)  # what loading the champion used to do
    assert marker.exists()


def test_a_champion_bundle_without_model_joblib_is_compared_through_its_onnx_model(
    make_job: MakeJob, fresh_data: pd.DataFrame, trained_bundle: Path, tmp_path: Path
) -> None:
    bundle = tmp_path / "bundle"
    shutil.copytree(trained_bundle, bundle)
    (bundle / JOBLIB_FILE).unlink()
    recorded = json.loads((bundle / METADATA_FILE).read_text())
    del recorded["files"][JOBLIB_FILE]
    (bundle / METADATA_FILE).write_text(json.dumps(recorded))

    with_pickle = make_job(CHURN, fresh_data, champion=trained_bundle)
    without = make_job(CHURN, fresh_data, champion=bundle)
    assert run(with_pickle) == 0 and run(without) == 0
    assert evaluation(without).scores.champion is not None
    assert evaluation(without).scores == evaluation(with_pickle).scores


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


def champion_fit_rows(bundle: Path) -> np.ndarray:
    data = read_fit_rows(bundle, verify_bundle(bundle))
    assert data is not None
    return fit_rows(data)


def rows_seen_by(bundle: Path, data: pd.DataFrame) -> np.ndarray:
    """Which rows of ``data`` the bundle's model was fitted on, hashed as the program reads them from a CSV."""
    as_read = pd.read_csv(io.StringIO(data.to_csv(index=False)), dtype=str)
    hashes = row_hashes(as_read, hashed_columns("churned", verify_bundle(bundle).feature_names))
    return np.isin(hashes, champion_fit_rows(bundle))


def test_the_bundle_records_each_row_of_its_fit_split_in_eight_bytes(
    trained_bundle: Path, churn_data: pd.DataFrame
) -> None:
    train_rows = verify_bundle(trained_bundle).training_data["train_rows"]
    assert (trained_bundle / FIT_ROWS_FILE).stat().st_size == 8 * train_rows == 8 * 1600
    hashes = champion_fit_rows(trained_bundle)
    assert np.array_equal(hashes, np.unique(hashes))
    # The same rows, hashed again from the data: exactly the fit split, none of the holdout.
    assert rows_seen_by(trained_bundle, churn_data).sum() == 1600


def test_a_champion_is_scored_only_on_holdout_rows_it_never_saw(
    make_job: MakeJob, churn_data: pd.DataFrame, trained_bundle: Path
) -> None:
    # Half the champion's own data held out: its 400 holdout rows, and 600 rows it was fitted on.
    base = make_job({**CHURN, "test_size": "0.5"}, churn_data, champion=trained_bundle)
    assert run(base) == 0
    scores = evaluation(base).scores
    assert (scores.holdout_rows, scores.champion_seen_rows, scores.scored_rows, scores.trusted_rows) == (
        1000,
        600,
        400,
        400,
    )
    # Scored on exactly its own old holdout, the champion scores what it scored when it was trained (through its
    # model.onnx now, whose float32 probabilities match scikit-learn's within 1e-7).
    assert scores.champion == pytest.approx(verify_bundle(trained_bundle).metrics, abs=1e-6)
    assert evaluation_json(base)["reasons"][0] == "600 of 1000 holdout rows excluded: the champion was fitted on them"


def test_the_holdout_is_drawn_from_rows_the_champion_never_saw_first(
    make_job: MakeJob, churn_data: pd.DataFrame, fresh_data: pd.DataFrame, trained_bundle: Path
) -> None:
    # 3500 rows, 1600 of them seen by the champion: a random 700-row holdout would hold about 320 of those.
    base = make_job(CHURN, pd.concat([churn_data, fresh_data], ignore_index=True), champion=trained_bundle)
    assert run(base) == 0
    scores = evaluation(base).scores
    assert (scores.holdout_rows, scores.champion_seen_rows, scores.scored_rows) == (700, 0, 700)


def test_too_few_rows_the_champion_never_saw_fail_the_gate_saying_so(
    make_job: MakeJob, churn_data: pd.DataFrame, trained_bundle: Path
) -> None:
    # Fewer than min_scored_rows would be judged on bootstrap bounds; fewer than min_bootstrap_rows fail.
    hyperparameters = {**CHURN, "min_scored_rows": "500", "min_bootstrap_rows": "450"}
    base = make_job(hyperparameters, churn_data, champion=trained_bundle)
    assert run(base) == 0
    report = evaluation_json(base)
    assert report["passed"] is False
    assert (report["min_scored_rows"], report["min_bootstrap_rows"]) == (500, 450)
    assert (
        "only 400 holdout rows the champion never saw (min_scored_rows 500, min_bootstrap_rows 450): too few to "
        "compare the models" in report["reasons"]
    )


def test_a_champion_bundle_without_fit_rows_is_compared_on_the_whole_holdout_and_says_so(
    make_job: MakeJob, fresh_data: pd.DataFrame, trained_bundle: Path, tmp_path: Path
) -> None:
    older = tmp_path / "bundle"
    shutil.copytree(trained_bundle, older)
    (older / FIT_ROWS_FILE).unlink()
    write_metadata(older, read_metadata(older))  # sealed again, as bundles were before the member existed
    base = make_job(CHURN, fresh_data, champion=older)
    assert run(base) == 0
    result = evaluation(base)
    assert (result.scores.champion_seen_rows, result.scores.scored_rows) == (None, 300)
    assert result.scores.champion is not None
    assert result.verdict.reasons[0].startswith("rows the champion was fitted on: unknown (its bundle records none")


def test_a_champion_whose_fit_rows_were_tampered_with_fails_the_job(
    make_job: MakeJob, fresh_data: pd.DataFrame, trained_bundle: Path, tmp_path: Path
) -> None:
    tampered = tmp_path / "bundle"
    shutil.copytree(trained_bundle, tampered)
    (tampered / FIT_ROWS_FILE).write_bytes(bytes(8))
    base = make_job(CHURN, fresh_data, champion=tampered)
    assert run(base) == 1
    assert failure(base).startswith("the champion model is unusable: fit_rows.u64 checksum mismatch")


def flipped(data: pd.DataFrame) -> pd.DataFrame:
    return data.assign(churned=1 - data["churned"])


def test_a_challenger_that_wins_on_feedback_but_regresses_on_trusted_rows_is_rejected(
    make_job: MakeJob, trained_bundle: Path
) -> None:
    # Poisoned feedback (every label flipped) outnumbers the operator's new data four to one.
    train = {"base/recent.csv": generate(600, seed=21), FEEDBACK_FILE: flipped(generate(2400, seed=22))}
    base = make_job(CHURN, train, champion=trained_bundle)
    assert run(base) == 0
    result = evaluation(base)
    scores = result.scores
    assert scores.trusted_rows is not None and 50 <= scores.trusted_rows < scores.scored_rows == 600
    assert not result.verdict.passed
    assert any("meets min_improvement" in reason for reason in result.verdict.reasons)
    assert f"on the {scores.trusted_rows} trusted holdout rows: challenger roc_auc=" in result.verdict.reasons[-1]
    assert "exceeds max_trusted_regression 0" in result.verdict.reasons[-1]


def test_a_data_set_of_feedback_and_rows_the_champion_saw_fails_the_gate(
    make_job: MakeJob, churn_data: pd.DataFrame, fresh_data: pd.DataFrame, trained_bundle: Path
) -> None:
    seen = churn_data[rows_seen_by(trained_bundle, churn_data)]
    base = make_job(CHURN, {"base/history.csv": seen, FEEDBACK_FILE: fresh_data}, champion=trained_bundle)
    assert run(base) == 0
    report = evaluation_json(base)
    assert (report["holdout_rows"], report["champion_seen_rows"], report["trusted_rows"]) == (620, 0, 0)
    assert report["passed"] is False
    assert report["reasons"][-1] == (
        "no trusted holdout rows (every scored row is feedback): the gate cannot rest on feedback alone"
    )


def test_a_first_model_trained_on_feedback_alone_fails_the_gate(make_job: MakeJob, fresh_data: pd.DataFrame) -> None:
    base = make_job(CHURN, {FEEDBACK_FILE: fresh_data})
    assert run(base) == 0
    report = evaluation_json(base)
    assert (report["champion_given"], report["trusted_rows"], report["passed"]) == (False, 0, False)


def test_a_row_hash_is_the_documented_canonical_form() -> None:
    frame = pd.DataFrame({"b": ["x", "x"], "churned": ["1", "1"], "a": [None, 2.5]})
    columns = hashed_columns("churned", ["b", "a"])
    assert columns == ["churned", "a", "b"]
    expected = [
        int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little")
        for text in ('["1",null,"x"]', '["1","2.5","x"]')
    ]
    assert row_hashes(frame, columns).tolist() == expected


def test_feedback_rows_are_told_apart_by_the_file_they_came_from(tmp_path: Path) -> None:
    (tmp_path / "base").mkdir()
    (tmp_path / "feedback").mkdir()
    pd.DataFrame({"x": ["1", "2", "3"], "y": ["a", "b", "a"]}).to_parquet(tmp_path / "base" / "old.parquet")
    # A quoted newline inside a cell is one row, as the reader counts it.
    (tmp_path / FEEDBACK_FILE).write_text('x,y\n4,"b\nc"\n5,a\n')
    (tmp_path / "zlast.csv").write_text("x,y\n6,b\n")
    data = load_training_data(tmp_path)
    assert feedback_rows(tmp_path, data.files, len(data.frame)).tolist() == [False, False, False, True, True, False]


def test_the_holdout_takes_unseen_rows_first_then_tops_up_with_seen_ones_it_does_not_score() -> None:
    seen = np.array([True] * 8 + [False] * 2)
    feedback = np.array([False] * 9 + [True])
    parts = split(seen, feedback, None, test_size=0.5, seed=0)
    assert parts.holdout.size == 5 and parts.champion_seen == 3
    assert parts.scored.tolist() == [8, 9]
    assert parts.trusted.tolist() == [8]
    assert np.array_equal(parts.train, np.setdiff1d(np.arange(10), parts.holdout))  # in data order


def test_the_training_programs_own_verdict_on_iris_sized_data_rests_on_bootstrap_bounds(make_job: MakeJob) -> None:
    base = make_job({"target": "species", "algorithm": "logistic_regression", "random_seed": "5"}, iris_like(150))
    assert run(base) == 0, failure(base)
    judged = evaluation(base)
    assert judged.scores.scored_rows == 30
    assert judged.verdict.passed, judged.verdict.reasons
    assert judged.scores.bootstrap is not None and judged.scores.bootstrap.seed == 5
    assert judged.verdict.reasons[-1].startswith("small data: 30 trusted holdout rows, fewer than min_scored_rows 50")
