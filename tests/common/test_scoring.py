"""The gate's facts from predictions: metrics equal to scikit-learn's, the guardrails' facts, one feature alone."""

import math
import warnings
from dataclasses import replace

import numpy as np
import pytest
from sklearn.exceptions import UndefinedMetricWarning
from sklearn.metrics import (
    accuracy_score,
    f1_score,
    log_loss,
    mean_absolute_error,
    r2_score,
    roc_auc_score,
    root_mean_squared_error,
)

from functions.common.gate import Confusion, Scores
from functions.common.scoring import (
    BOOTSTRAP_RESAMPLES,
    Holdout,
    Predictions,
    ScoringError,
    class_warnings,
    encode_target,
    feature_alone,
    metrics,
    no_skill,
    roc_auc,
    score,
    thresholded,
)


def sklearn_classification(labels: list[str], truth: np.ndarray, probabilities: np.ndarray) -> dict[str, float]:
    """The metrics as training computed them with scikit-learn before this module, undefined ones left out."""
    predicted = np.asarray(labels, dtype=object)[probabilities.argmax(axis=1)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UndefinedMetricWarning)
        if len(labels) == 2:
            f1 = f1_score(truth, predicted, pos_label=labels[1])
            auc = roc_auc_score(truth == labels[1], probabilities[:, 1])
        else:
            f1 = f1_score(truth, predicted, labels=labels, average="macro")
            auc = roc_auc_score(truth, probabilities, multi_class="ovr", labels=labels)
        found = {
            "accuracy": float(accuracy_score(truth, predicted)),
            "f1": float(f1),
            "roc_auc": float(auc),
            "log_loss": float(log_loss(truth, probabilities, labels=labels)),
        }
    return {name: value for name, value in found.items() if math.isfinite(value)}


def sklearn_regression(truth: np.ndarray, values: np.ndarray) -> dict[str, float]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UndefinedMetricWarning)
        found = {
            "rmse": float(root_mean_squared_error(truth, values)),
            "mae": float(mean_absolute_error(truth, values)),
            "r2": float(r2_score(truth, values)),
        }
    return {name: value for name, value in found.items() if math.isfinite(value)}


def random_probabilities(rng: np.random.Generator, rows: int, classes: int, *, coarse: bool) -> np.ndarray:
    raw = rng.integers(0, 4, (rows, classes)).astype(float) + 0.5 if coarse else rng.random((rows, classes))
    raw[rng.random(rows) < 0.05, 0] = 0.0  # some probabilities of 0 exactly: log loss clips them
    return raw / raw.sum(axis=1, keepdims=True)


def same(found: dict[str, float] | None, expected: dict[str, float]) -> None:
    assert found is not None and set(found) == set(expected)
    for name, value in expected.items():
        assert found[name] == pytest.approx(value, abs=1e-9), name


@pytest.mark.parametrize("classes", [2, 3, 5])
@pytest.mark.parametrize("coarse", [False, True], ids=["distinct", "ties"])
def test_classification_metrics_equal_scikit_learns_on_random_data_with_and_without_ties(
    classes: int, coarse: bool
) -> None:
    rng = np.random.default_rng(classes * 2 + coarse)
    labels = [f"c{i}" for i in range(classes)]
    for rows in (2, 7, 60, 500):
        truth = np.asarray(labels, dtype=object)[rng.integers(0, classes, rows)]
        probabilities = random_probabilities(rng, rows, classes, coarse=coarse)
        found = metrics("classification", truth, Predictions(tuple(labels), probabilities=probabilities))
        same(found, sklearn_classification(labels, truth, probabilities))


def test_a_class_missing_from_the_rows_leaves_roc_auc_out_of_multiclass_metrics_as_scikit_learn_does() -> None:
    rng = np.random.default_rng(7)
    labels = ["a", "b", "c"]
    truth = np.asarray(["a", "b"], dtype=object)[rng.integers(0, 2, 80)]
    probabilities = random_probabilities(rng, 80, 3, coarse=False)

    found = metrics("classification", truth, Predictions(tuple(labels), probabilities=probabilities))

    same(found, sklearn_classification(labels, truth, probabilities))
    assert found is not None and "roc_auc" not in found and found["f1"] < 0.67  # class c's F1 of 0 averages in


def test_rows_of_one_class_leave_binary_roc_auc_out_and_keep_the_rest() -> None:
    truth = np.asarray(["yes"] * 5, dtype=object)
    probabilities = random_probabilities(np.random.default_rng(3), 5, 2, coarse=False)

    found = metrics("classification", truth, Predictions(("no", "yes"), probabilities=probabilities))

    same(found, sklearn_classification(["no", "yes"], truth, probabilities))
    assert found is not None and set(found) == {"accuracy", "f1", "log_loss"}


def test_a_true_class_the_model_does_not_know_leaves_log_loss_and_multiclass_roc_auc_out() -> None:
    truth = np.asarray(["a", "b", "c", "z"], dtype=object)
    probabilities = random_probabilities(np.random.default_rng(4), 4, 3, coarse=False)

    found = metrics("classification", truth, Predictions(("a", "b", "c"), probabilities=probabilities))

    assert found is not None and set(found) == {"accuracy", "f1"}


def test_regression_metrics_equal_scikit_learns_including_constant_targets_and_one_row() -> None:
    rng = np.random.default_rng(5)
    for rows in (1, 2, 9, 300):
        truth = rng.normal(size=rows) * 10
        values = truth + rng.normal(size=rows)
        same(metrics("regression", truth, Predictions(values=values)), sklearn_regression(truth, values))
    constant = np.full(4, 2.5)
    same(metrics("regression", constant, Predictions(values=constant)), sklearn_regression(constant, constant))
    off = constant + np.array([0, 1, 0, 0])
    same(metrics("regression", constant, Predictions(values=off)), sklearn_regression(constant, off))
    assert set(metrics("regression", truth[:1], Predictions(values=values[:1])) or {}) == {"rmse", "mae"}


def test_no_rows_have_no_metrics_and_predictions_must_match_the_rows() -> None:
    empty = Predictions(("a", "b"), probabilities=np.empty((0, 2)))
    assert metrics("classification", np.empty(0, dtype=object), empty) is None
    with pytest.raises(ScoringError, match="3 predictions for 2 rows"):
        metrics("regression", np.zeros(2), Predictions(values=np.zeros(3)))
    with pytest.raises(ScoringError, match=r"one column per label \(2\), got shape \(4, 3\)"):
        Predictions(("a", "b"), probabilities=np.zeros((4, 3)))


def test_roc_auc_counts_tied_scores_half_as_scikit_learn_does() -> None:
    positive = np.array([True, False, True, False, True])
    scores = np.array([0.5, 0.5, 0.9, 0.1, 0.5])
    assert roc_auc(positive, scores) == pytest.approx(roc_auc_score(positive, scores), abs=1e-12)
    assert math.isnan(roc_auc(positive[:1], scores[:1]))


def churn_holdout(rng: np.random.Generator, rows: int = 1000) -> Holdout:
    region = np.asarray(["north", "south", "east"], dtype=object)[rng.integers(0, 3, rows)]
    region[:5] = None
    tenure = rng.normal(size=rows)
    tenure[5:10] = np.nan
    truth = np.where(tenure + rng.normal(size=rows) > 0, "1", "0").astype(object)
    positions = np.arange(rows)
    return Holdout(
        task="classification",
        truth=truth,
        columns={"region": region, "tenure": tenure},
        types={"region": "categorical", "tenure": "numeric"},
        scored=positions[600:],
        trusted=positions[700:],
        feature_fit=positions[:600],
        feature_scored=positions[600:],
        holdout_rows=400,
        champion_seen=0,
    )


def test_score_records_both_models_on_scored_and_trusted_rows_and_the_guardrails_facts() -> None:
    rng = np.random.default_rng(11)
    holdout = churn_holdout(rng)
    challenger = Predictions(("0", "1"), probabilities=random_probabilities(rng, 1000, 2, coarse=False))
    always_no = np.tile([0.9, 0.1], (1000, 1))
    champion = Predictions(("0", "1"), probabilities=always_no)

    scores = score(holdout, challenger, champion, min_slice_rows=80, champion_given=True, champion_not_compared=None)

    truth = holdout.truth
    trusted = holdout.trusted
    probabilities = challenger.probabilities
    assert probabilities is not None
    same(scores.challenger, sklearn_classification(["0", "1"], truth[600:], probabilities[600:]))
    same(scores.champion_trusted, sklearn_classification(["0", "1"], truth[trusted], always_no[trusted]))
    assert (scores.holdout_rows, scores.trusted_rows, scores.distinct_targets) == (400, 300, 2)
    assert scores.distinct_predictions == 2
    assert scores.champion_confusion is not None and scores.champion_confusion.classes_predicted == 1
    assert scores.champion_confusion.counts[0][0] == int((truth[trusted] == "0").sum())
    assert scores.challenger_confusion is not None and sum(map(sum, scores.challenger_confusion.counts)) == 300
    assert scores.slices is not None
    assert [(part.feature, part.rows) for part in scores.slices] == sorted(
        [("region", int((holdout.columns["region"][trusted] == level).sum())) for level in ("north", "south", "east")],
        key=lambda item: -item[1],
    )
    assert scores.feature_scores is not None and set(scores.feature_scores) == {"region", "tenure"}
    assert scores.feature_scores["tenure"] > 0.7 > scores.feature_scores["region"]


def test_without_a_champion_score_records_no_champion_facts() -> None:
    rng = np.random.default_rng(12)
    holdout = churn_holdout(rng)
    challenger = Predictions(("0", "1"), probabilities=np.tile([0.2, 0.8], (1000, 1)))

    scores = score(holdout, challenger, None, min_slice_rows=80, champion_given=False, champion_not_compared=None)

    assert scores.champion is None and scores.champion_trusted is None
    assert scores.champion_confusion is None and scores.slices is None
    assert scores.distinct_predictions == 1
    with pytest.raises(ScoringError, match="the champion's predictions cover 3 rows, the holdout 1000"):
        score(
            holdout,
            challenger,
            challenger.take(np.arange(3)),
            min_slice_rows=80,
            champion_given=True,
            champion_not_compared=None,
        )


def test_one_feature_scored_alone_catches_a_disguised_target_and_an_exact_copy_but_not_noise() -> None:
    rng = np.random.default_rng(1)
    positions = np.arange(2000)
    fit, scored = positions[:1500], positions[1500:]
    labels = rng.integers(0, 2, 2000).astype(str).astype(object)
    classes = encode_target("classification", labels)
    noise = rng.normal(size=2000)
    assert abs((feature_alone("classification", noise, "numeric", classes, fit, scored) or 0) - 0.5) < 0.1
    disguised = np.where(labels == "1", "closed", "retained").astype(object)
    assert feature_alone("classification", disguised, "categorical", classes, fit, scored) == 1.0
    amounts = encode_target("regression", noise)
    assert feature_alone("regression", noise * 3 + 1, "numeric", amounts, fit, scored) == pytest.approx(1.0)
    assert (feature_alone("regression", rng.normal(size=2000), "numeric", amounts, fit, scored) or 0) < 0.1


def test_a_holdout_whose_columns_do_not_match_its_rows_or_features_is_refused_naming_them() -> None:
    holdout = churn_holdout(np.random.default_rng(13))
    with pytest.raises(ScoringError, match=r"the holdout has 1000 rows but column\(s\) 'tenure' \(999\) do not"):
        replace(holdout, columns={**holdout.columns, "tenure": np.zeros(999)})
    with pytest.raises(ScoringError, match=r"no column for the feature\(s\) 'age'"):
        replace(holdout, types={**holdout.types, "age": "numeric"})


def test_binary_f1_is_of_the_positive_class_given_and_roc_auc_does_not_depend_on_it() -> None:
    truth = np.asarray(["malignant", "benign", "benign", "malignant", "benign", "benign"], dtype=object)
    probabilities = np.asarray([[0.2, 0.8], [0.9, 0.1], [0.6, 0.4], [0.7, 0.3], [0.3, 0.7], [0.8, 0.2]])
    predictions = Predictions(("benign", "malignant"), probabilities=probabilities)
    predicted = np.asarray(["malignant", "benign", "benign", "benign", "malignant", "benign"], dtype=object)

    of_benign = metrics("classification", truth, predictions, "benign")
    of_malignant = metrics("classification", truth, predictions, "malignant")

    assert of_benign is not None and of_malignant is not None
    assert of_benign["f1"] == pytest.approx(f1_score(truth, predicted, pos_label="benign"))
    assert of_malignant["f1"] == pytest.approx(f1_score(truth, predicted, pos_label="malignant"))
    assert of_benign["roc_auc"] == pytest.approx(of_malignant["roc_auc"])
    with pytest.raises(ScoringError, match="the positive class 'cancerous' is not one of the model's classes"):
        metrics("classification", truth, predictions, "cancerous")


def test_a_models_own_answers_are_scored_instead_of_its_most_probable_class() -> None:
    truth = np.asarray(["yes", "no", "yes", "no"], dtype=object)
    probabilities = np.asarray([[0.7, 0.3], [0.8, 0.2], [0.6, 0.4], [0.9, 0.1]])
    # A threshold of 0.25 on "yes" answers the first and third rows "yes": all right, where the most probable is not.
    answers = thresholded(probabilities, 1, 0.25)
    answered = Predictions.answered(("no", "yes"), probabilities, np.asarray(["no", "yes"], dtype=object)[answers])

    assert answers.tolist() == [1, 0, 1, 0]
    assert (metrics("classification", truth, answered) or {})["accuracy"] == 1.0
    assert (metrics("classification", truth, Predictions(("no", "yes"), probabilities)) or {})["accuracy"] == 0.5
    assert answered.take(np.asarray([2])).indices().tolist() == [1]
    with pytest.raises(ScoringError, match="answers label\\(s\\) 'maybe' outside its classes"):
        Predictions.answered(("no", "yes"), probabilities, np.asarray(["no", "maybe", "no", "no"], dtype=object))


def test_a_class_the_model_mostly_misses_gets_a_warning() -> None:
    # Seattle weather's drizzle: 1 of 11 found.
    matrix = Confusion(("drizzle", "rain", "sun"), ((1, 2, 8), (0, 40, 5), (1, 3, 90)))

    assert class_warnings(matrix) == (
        "class 'drizzle' has recall 0.09 on 11 holdout rows (below 0.5): the model misses most of it; class_weight "
        "(or, binary, decision_threshold) trades other classes' precision for it",
    )


def iris_holdout(rows: int = 30) -> tuple[Holdout, Predictions, Predictions]:
    """An iris-sized holdout, all trusted, a good challenger (one row wrong) and a slightly worse champion."""
    labels = ("setosa", "versicolor", "virginica")
    classes = np.arange(rows) % 3
    truth = np.asarray(labels, dtype=object)[classes]
    good = np.full((rows, 3), 0.05)
    good[np.arange(rows), classes] = 0.9
    good[4] = [0.1, 0.2, 0.7]
    worse = good.copy()
    worse[[6, 7, 8]] = good[[7, 8, 6]]  # three more rows wrong
    positions = np.arange(rows)
    holdout = Holdout(
        task="classification",
        truth=truth,
        columns={},
        types={},
        scored=positions,
        trusted=positions,
        feature_fit=positions[0::2],
        feature_scored=positions[1::2],
        holdout_rows=rows,
        champion_seen=0,
    )
    return holdout, Predictions(labels, probabilities=good), Predictions(labels, probabilities=worse)


def test_a_small_holdout_is_resampled_for_every_model_on_the_same_draws_and_the_same_seed_draws_the_same() -> None:
    holdout, challenger, champion = iris_holdout()

    def scored(seed: int) -> Scores:
        return score(
            holdout,
            challenger,
            champion,
            min_slice_rows=100,
            champion_given=True,
            champion_not_compared=None,
            bootstrap_below=50,
            bootstrap_seed=seed,
        )

    scores = scored(7)
    bootstrap = scores.bootstrap
    assert bootstrap is not None and scores.bootstrap_trusted is bootstrap  # no feedback: the same rows
    assert (bootstrap.rows, bootstrap.resamples, bootstrap.seed) == (30, BOOTSTRAP_RESAMPLES, 7)
    assert scores.challenger is not None
    for metric, (low, high) in bootstrap.challenger.items():
        assert low <= scores.challenger[metric] <= high, metric
    # Far better than each class's share: a bound well above 0. The champion errs on 3 more rows: on some draws
    # none of them is drawn, so the paired gain's lower bound is 0, its upper bound clearly positive.
    assert bootstrap.over_baseline["accuracy"][0] > 0.4
    assert bootstrap.over_champion is not None
    assert bootstrap.over_champion["accuracy"][0] >= 0 and bootstrap.over_champion["accuracy"][1] > 0.1
    # Lower is better: the gain is the champion's excess loss.
    assert bootstrap.over_champion["log_loss"][0] >= 0 and bootstrap.over_champion["log_loss"][1] > 0.1
    assert scored(7).bootstrap == bootstrap
    assert scored(8).bootstrap != bootstrap


def test_rows_as_many_as_the_gate_asks_are_not_resampled() -> None:
    rng = np.random.default_rng(13)
    holdout = churn_holdout(rng)  # 400 scored rows, 300 trusted
    challenger = Predictions(("0", "1"), probabilities=random_probabilities(rng, 1000, 2, coarse=False))

    scores = score(
        holdout,
        challenger,
        None,
        min_slice_rows=80,
        champion_given=False,
        champion_not_compared=None,
        bootstrap_below=350,
        bootstrap_seed=1,
    )

    assert scores.bootstrap is None
    assert scores.bootstrap_trusted is not None and scores.bootstrap_trusted.rows == 300
    assert scores.bootstrap_trusted.over_champion is None


def test_the_no_skill_baseline_predicts_each_classs_share_or_the_mean() -> None:
    truth = np.asarray(["a", "a", "a", "b"], dtype=object)
    baseline = no_skill("classification", truth, Predictions(("a", "b"), probabilities=np.eye(2)[[0, 1, 0, 1]]))
    found = metrics("classification", truth, baseline)
    assert found == {
        "accuracy": 0.75,
        "f1": 0.0,
        "roc_auc": 0.5,
        "log_loss": pytest.approx(log_loss(truth, baseline.probabilities)),
    }
    values = np.array([1.0, 2.0, 6.0])
    assert metrics("regression", values, no_skill("regression", values, Predictions(values=values)))["r2"] == 0.0  # type: ignore[index]
