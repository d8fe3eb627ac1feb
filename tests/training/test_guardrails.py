"""The gate's guardrails, end to end through the training program (issue 13, item 3)."""

from pathlib import Path

import numpy as np
import pytest

from tests.conftest import MakeJob
from tests.training.jobs import CHURN, evaluation, evaluation_json
from training.program import run
from training.synthetic import generate


@pytest.fixture(scope="module")
def stump_champion(make_job: MakeJob) -> Path:
    """A weak champion that still predicts both classes: one tree of depth 2."""
    base = make_job({**CHURN, "algorithm": "random_forest", "n_estimators": 1, "max_depth": 2}, generate(2000, seed=3))
    assert run(base) == 0
    return base / "model"


def test_a_logistic_regression_that_never_predicts_churn_cannot_replace_the_champion_on_a_higher_roc_auc(
    make_job: MakeJob, stump_champion: Path
) -> None:
    # The repro: heavy regularisation leaves every probability under 0.5, so no customer is predicted
    # to churn (F1 0), while the ranking, and so the ROC AUC, beats the champion's.
    base = make_job({**CHURN, "C": 0.0001}, generate(1500, seed=11), champion=stump_champion)
    assert run(base) == 0
    result = evaluation(base)
    challenger, champion = result.scores.challenger or {}, result.scores.champion or {}
    assert challenger["f1"] == 0.0 and champion["f1"] > 0.5
    assert challenger["accuracy"] < champion["accuracy"] and challenger["roc_auc"] > champion["roc_auc"] + 0.1
    assert not result.verdict.passed
    assert (
        "the challenger predicts one class on all 300 scored holdout rows, which hold 2 distinct targets: "
        "a degenerate model never passes"
    ) in result.verdict.reasons
    assert any(reason.startswith("on the 300 trusted holdout rows: challenger recall of class '1'=0 vs champion")
               for reason in result.verdict.reasons)  # fmt: skip


def test_evaluation_json_records_the_confusion_matrices_and_per_class_metrics_on_the_trusted_rows(
    make_job: MakeJob, stump_champion: Path
) -> None:
    base = make_job(CHURN, generate(1500, seed=11), champion=stump_champion)
    assert run(base) == 0
    report = evaluation_json(base)
    for model in ("challenger_confusion", "champion_confusion"):
        confusion = report[model]
        assert confusion["labels"] == ["0", "1"]
        assert sum(map(sum, confusion["counts"])) == report["trusted_rows"] == 300
        assert set(confusion["per_class"]["1"]) == {"rows", "predicted", "recall", "f1"}
    assert {part["feature"] for part in report["slices"]} <= {"contract", "payment_method", "region"}
    assert all(part["rows"] >= 100 for part in report["slices"])
    assert set(report["feature_scores"]) == set(generate(1, seed=0).columns) - {"churned"}
    assert max(report["feature_scores"].values()) < 0.9
    assert report["passed"] is True and report["held"] is False


def test_a_first_model_whose_id_column_leaks_the_target_is_held_for_approval_naming_the_column(
    make_job: MakeJob,
) -> None:
    data = generate(1500, seed=11)
    rng = np.random.default_rng(0)
    # Account numbers handed out by outcome: churners got the 900000 range.
    leaked = data.assign(account_number=data["churned"] * 900_000 + rng.integers(0, 100_000, len(data)))
    base = make_job(CHURN, leaked)
    assert run(base) == 0
    result = evaluation(base)
    assert (result.verdict.passed, result.verdict.held) == (False, True)
    assert result.verdict.reasons[-1].startswith("held for approval: feature 'account_number' alone scores roc_auc=1 ")
    assert (result.scores.feature_scores or {})["account_number"] == 1.0
