import json
import math
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import pytest

from functions.common.gate import (
    Bootstrap,
    Confusion,
    Evaluation,
    GateError,
    GateSettings,
    Scores,
    Slice,
    Verdict,
    decide,
    higher_is_better,
    parse_gate_settings,
    reassess,
)

# What the guardrails judge, recorded by the training program: two classes predicted for two, no feature near
# a leak, and (with a champion) the same per-class results on the trusted rows and no slice large enough.
ANY_CHALLENGER: dict[str, Any] = {
    "distinct_predictions": 2,
    "distinct_targets": 2,
    "feature_scores": {"tenure": 0.7},
}
CONFUSION = Confusion(("0", "1"), ((120, 20), (25, 35)))
# A champion scored on 300 unseen holdout rows (100 seen ones excluded), 200 of them trusted.
COMPARED = Scores(
    holdout_rows=400,
    challenger={"roc_auc": 0.85},
    trusted_rows=200,
    challenger_trusted={"roc_auc": 0.84},
    champion_given=True,
    champion={"roc_auc": 0.83},
    champion_trusted={"roc_auc": 0.84},
    champion_seen_rows=100,
    challenger_confusion=CONFUSION,
    champion_confusion=CONFUSION,
    slices=(),
    **ANY_CHALLENGER,
)
ALONE = Scores(
    holdout_rows=400, challenger={"f1": 0.1}, trusted_rows=400, challenger_trusted={"f1": 0.1}, **ANY_CHALLENGER
)


def test_challenger_that_beats_the_champion_by_the_required_margin_passes() -> None:
    verdict = decide(GateSettings("roc_auc", min_improvement=0.01), COMPARED)
    assert verdict.passed
    assert verdict.reasons == (
        "100 of 400 holdout rows excluded: the champion was fitted on them",
        "challenger roc_auc=0.85 vs champion 0.83 on the same 300 holdout rows: improvement +0.02 meets "
        "min_improvement 0.01",
        "on the 200 trusted holdout rows: challenger roc_auc=0.84 vs champion 0.84, regression +0 within "
        "max_trusted_regression 0",
    )


def test_challenger_that_improves_less_than_the_margin_fails() -> None:
    verdict = decide(GateSettings("roc_auc", min_improvement=0.05), COMPARED)
    assert not verdict.passed
    assert "is below min_improvement" in verdict.reasons[1]


def test_error_metrics_are_better_when_lower() -> None:
    assert not higher_is_better("rmse")
    scores = replace(COMPARED, challenger={"rmse": 1.0}, champion={"rmse": 1.2})
    assert decide(
        GateSettings("rmse"), replace(scores, challenger_trusted={"rmse": 1.0}, champion_trusted={"rmse": 1.1})
    ).passed
    assert not decide(
        GateSettings("rmse"), replace(scores, challenger_trusted={"rmse": 1.2}, champion_trusted={"rmse": 1.1})
    ).passed


def test_min_metric_is_a_floor_even_without_a_champion() -> None:
    scores = Scores(
        holdout_rows=400,
        challenger={"accuracy": 0.8},
        trusted_rows=400,
        challenger_trusted={"accuracy": 0.8},
        **ANY_CHALLENGER,
    )
    verdict = decide(GateSettings("accuracy", min_metric=0.9), scores)
    assert not verdict.passed
    assert verdict.reasons == (
        "challenger accuracy=0.8 fails min_metric (>= 0.9)",
        "no champion to compare with",
        "challenger accuracy=0.8 on the 400 trusted holdout rows fails min_metric (>= 0.9)",
    )


def test_min_metric_is_a_ceiling_for_error_metrics() -> None:
    scores = Scores(
        holdout_rows=400, challenger={"mae": 1.5}, trusted_rows=400, challenger_trusted={"mae": 1.5}, **ANY_CHALLENGER
    )
    assert decide(GateSettings("mae", min_metric=2.0), scores).passed
    assert not decide(GateSettings("mae", min_metric=1.0), scores).passed


def test_without_a_champion_a_challenger_without_floor_passes() -> None:
    assert decide(GateSettings("f1"), ALONE) == Verdict(
        True,
        ("no champion to compare with", "challenger f1=0.1 on the 400 trusted holdout rows (no min_metric to meet)"),
    )


def test_non_finite_challenger_metric_fails() -> None:
    verdict = decide(GateSettings("log_loss"), replace(ALONE, challenger={"log_loss": math.nan}))
    assert not verdict.passed
    assert verdict.reasons[0] == "challenger log_loss cannot be computed on the 400 scored holdout rows"


def test_without_a_champion_the_floor_applies_to_trusted_rows_too() -> None:
    # Feedback rows lift the holdout over the floor; the trusted rows alone stay below it.
    scores = replace(ALONE, challenger={"f1": 0.9}, trusted_rows=120, challenger_trusted={"f1": 0.6})
    verdict = decide(GateSettings("f1", min_metric=0.7), scores)
    assert not verdict.passed
    assert verdict.reasons[-1] == "challenger f1=0.6 on the 120 trusted holdout rows fails min_metric (>= 0.7)"


def test_a_challenger_that_wins_on_the_holdout_but_regresses_on_trusted_rows_is_rejected() -> None:
    scores = replace(COMPARED, challenger={"roc_auc": 0.95}, challenger_trusted={"roc_auc": 0.80})
    verdict = decide(GateSettings("roc_auc", max_trusted_regression=0.01), scores)
    assert not verdict.passed
    assert "improvement +0.12 meets min_improvement" in verdict.reasons[1]
    assert verdict.reasons[2] == (
        "on the 200 trusted holdout rows: challenger roc_auc=0.8 vs champion 0.84, regression +0.04 exceeds "
        "max_trusted_regression 0.01"
    )


def test_a_trusted_regression_within_the_tolerance_passes() -> None:
    scores = replace(COMPARED, challenger_trusted={"roc_auc": 0.835})
    assert not decide(GateSettings("roc_auc"), scores).passed
    assert decide(GateSettings("roc_auc", max_trusted_regression=0.01), scores).passed


def test_a_holdout_that_is_all_feedback_fails_the_gate() -> None:
    for scores in (replace(COMPARED, trusted_rows=0, challenger_trusted=None, champion_trusted=None),
                   replace(ALONE, trusted_rows=0, challenger_trusted=None)):  # fmt: skip
        verdict = decide(GateSettings(next(iter(scores.challenger or {}))), scores)
        assert not verdict.passed
        assert verdict.reasons[-1] == (
            "no trusted holdout rows (every scored row is feedback): the gate cannot rest on feedback alone"
        )


def test_too_few_unseen_rows_fail_the_gate_saying_so() -> None:
    scores = replace(COMPARED, champion_seen_rows=390, trusted_rows=10)
    verdict = decide(GateSettings("roc_auc", min_scored_rows=50), scores)
    assert not verdict.passed
    assert verdict.reasons[1] == (
        "only 10 holdout rows the champion never saw (min_scored_rows 50, min_bootstrap_rows 20): too few to "
        "compare the models"
    )
    assert verdict.reasons[2].startswith("only 10 trusted holdout rows (min_scored_rows 50, min_bootstrap_rows 20)")


def test_a_champion_without_recorded_fit_rows_is_compared_on_the_whole_holdout_and_says_so() -> None:
    verdict = decide(GateSettings("roc_auc"), replace(COMPARED, champion_seen_rows=None))
    assert verdict.passed
    assert verdict.reasons[0].startswith("rows the champion was fitted on: unknown (its bundle records none")
    assert "on the same 400 holdout rows" in verdict.reasons[1]


def test_a_champion_not_compared_passes_only_when_schema_changes_are_allowed() -> None:
    scores = replace(
        COMPARED, champion=None, champion_trusted=None, champion_seen_rows=None, champion_not_compared="new features"
    )
    allowed = decide(GateSettings("roc_auc", allow_schema_change=True), scores)
    assert allowed.passed
    assert allowed.reasons[0] == "champion not compared: new features"
    refused = decide(GateSettings("roc_auc"), scores)
    assert not refused.passed
    assert refused.reasons[0] == "champion not compared (new features) while allow_schema_change is false"


def test_an_undefined_champion_metric_fails_instead_of_comparing() -> None:
    verdict = decide(GateSettings("roc_auc"), replace(COMPARED, champion={}))
    assert not verdict.passed
    assert verdict.reasons[-2] == "champion roc_auc cannot be computed on the 300 scored holdout rows"


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        (lambda: GateSettings("auc"), "unknown metric"),
        (lambda: GateSettings("r2", min_improvement=-0.1), "min_improvement"),
        (lambda: GateSettings("r2", min_improvement=math.inf), "min_improvement"),
        (lambda: GateSettings("r2", max_trusted_regression=-0.1), "max_trusted_regression"),
        (lambda: GateSettings("r2", min_scored_rows=0), "min_scored_rows"),
        (lambda: GateSettings("r2", max_secondary_regression=-0.1), "max_secondary_regression"),
        (lambda: GateSettings("r2", max_slice_regression=math.nan), "max_slice_regression"),
        (lambda: GateSettings("r2", min_slice_rows=0), "min_slice_rows"),
        (lambda: GateSettings("r2", max_single_feature_score=1.5), "max_single_feature_score"),
    ],
)
def test_invalid_gate_settings_are_refused(settings: Callable[[], GateSettings], message: str) -> None:
    with pytest.raises(GateError, match=message):
        settings()


def test_gate_settings_are_parsed_from_hyperparameter_strings_ignoring_other_names() -> None:
    settings = parse_gate_settings(
        {
            "target": "churned",
            "min_metric": "0.7",
            "min_improvement": "0.01",
            "max_trusted_regression": "0.005",
            "min_scored_rows": "80",
            "allow_schema_change": "true",
            "max_secondary_regression": "0.02",
            "max_slice_regression": "0.1",
            "min_slice_rows": "300",
            "max_single_feature_score": "0.95",
        },
        "classification",
    )
    assert settings == GateSettings(
        "roc_auc",
        min_metric=0.7,
        min_improvement=0.01,
        max_trusted_regression=0.005,
        min_scored_rows=80,
        allow_schema_change=True,
        max_secondary_regression=0.02,
        max_slice_regression=0.1,
        min_slice_rows=300,
        max_single_feature_score=0.95,
    )
    assert parse_gate_settings({}, "regression") == GateSettings("rmse")


def test_bad_gate_hyperparameters_are_all_reported() -> None:
    with pytest.raises(GateError) as raised:
        parse_gate_settings({"min_improvement": "-1", "min_scored_rows": "many", "metric": "auc"}, "classification")
    assert str(raised.value) == (
        "hyperparameter 'metric'='auc' must be one of accuracy, f1, roc_auc, log_loss, rmse, mae, r2; "
        "hyperparameter 'min_improvement'='-1' must be a finite number >= 0; "
        "hyperparameter 'min_scored_rows'='many' must be an integer >= 1"
    )
    with pytest.raises(GateError, match="'metric'='rmse' is not a classification metric"):
        parse_gate_settings({"metric": "rmse"}, "classification")


def evaluation_of(scores: Scores, settings: GateSettings, verdict: Verdict | None = None) -> Evaluation:
    return Evaluation(
        settings=settings,
        scores=scores,
        verdict=verdict or decide(settings, scores),
        task="classification",
        champion_version="7",
        details={"algorithm": "random_forest"},
    )


def test_evaluation_round_trips_through_its_json_form() -> None:
    evaluation = evaluation_of(COMPARED, GateSettings("roc_auc", min_metric=0.7, min_improvement=0.01))
    data = json.loads(json.dumps(evaluation.to_dict()))
    assert data["passed"] is True
    assert (data["holdout_rows"], data["champion_seen_rows"], data["scored_rows"], data["trusted_rows"]) == (
        400,
        100,
        300,
        200,
    )
    assert (data["challenger_trusted"], data["champion_trusted"]) == ({"roc_auc": 0.84}, {"roc_auc": 0.84})
    assert Evaluation.from_dict(data) == evaluation


# evaluation.json as the training program wrote it before trusted rows and fit-row exclusions.
OLDER_EVALUATION: dict[str, Any] = {
    "metric": "roc_auc",
    "min_metric": None,
    "min_improvement": 0.0,
    "holdout_rows": 400,
    "challenger": {"roc_auc": 0.9},
    "champion": {"roc_auc": 0.8},
    "champion_version": "3",
    "passed": True,
    "reasons": ["challenger roc_auc=0.9 vs champion 0.8 on the same holdout: improvement +0.1 meets ..."],
    "details": {"task": "classification", "algorithm": "random_forest"},
}


def test_an_older_evaluation_still_loads_and_fails_closed_when_reassessed() -> None:
    evaluation = Evaluation.from_dict(OLDER_EVALUATION)
    assert evaluation.verdict.passed
    assert (evaluation.task, evaluation.scores.trusted_rows, evaluation.scores.champion_given) == (
        "classification",
        None,
        True,
    )
    verdict = reassess(evaluation, {"target": "churned"})
    assert not verdict.passed
    assert verdict.reasons[-1] == (
        "the evaluation records no trusted holdout rows and no rows excluded as seen by the champion "
        "(written by an older training program): it cannot be judged"
    )


def test_reassess_disagrees_with_a_forged_verdict() -> None:
    losing = replace(COMPARED, challenger={"roc_auc": 0.80})
    forged = evaluation_of(losing, GateSettings("roc_auc"), verdict=Verdict(True, ("trust me",)))
    data = json.loads(json.dumps(forged.to_dict()))
    verdict = reassess(Evaluation.from_dict(data), {"min_improvement": "0"})
    assert not verdict.passed
    assert "improvement -0.03 is below min_improvement 0" in verdict.reasons[1]


def test_reassess_applies_the_pinned_settings_not_the_recorded_ones() -> None:
    # The job recorded a lax max_trusted_regression; the workflow's pinned default allows no regression.
    regressing = replace(COMPARED, challenger_trusted={"roc_auc": 0.82})
    lax = GateSettings("roc_auc", max_trusted_regression=0.05)
    evaluation = evaluation_of(regressing, lax)
    assert evaluation.verdict.passed
    assert not reassess(evaluation, {}).passed
    assert reassess(evaluation, {"max_trusted_regression": "0.05"}).passed


def test_reassess_without_a_known_task_fails_closed() -> None:
    evaluation = replace(evaluation_of(COMPARED, GateSettings("roc_auc")), task=None)
    assert reassess(evaluation, {}) == Verdict(
        False, ("the evaluation records no known task (None): it cannot be reassessed",)
    )


def test_reassess_refuses_invalid_pinned_settings() -> None:
    with pytest.raises(GateError, match="'min_scored_rows'='0' must be an integer >= 1"):
        reassess(evaluation_of(COMPARED, GateSettings("roc_auc")), {"min_scored_rows": "0"})


def test_malformed_evaluation_is_refused() -> None:
    with pytest.raises(GateError, match="malformed"):
        Evaluation.from_dict({"metric": "roc_auc", "challenger": {}})


def test_a_challenger_that_loses_recall_of_a_class_beyond_the_tolerance_fails_despite_a_higher_metric() -> None:
    # The challenger's ROC AUC is higher, but it finds 10 of the 60 positives where the champion found 35.
    scores = replace(COMPARED, challenger_confusion=Confusion(("0", "1"), ((135, 5), (50, 10))))
    verdict = decide(GateSettings("roc_auc"), scores)
    assert not verdict.passed
    assert verdict.reasons[2:4] == (
        "on the 200 trusted holdout rows: challenger recall of class '1'=0.166667 vs champion 0.583333, a loss of "
        "0.416667 beyond max_secondary_regression 0.05",
        "on the 200 trusted holdout rows: challenger f1 of class '1'=0.266667 vs champion 0.608696, a loss of "
        "0.342029 beyond max_secondary_regression 0.05",
    )
    assert verdict.reasons[-1].startswith("on the 200 trusted holdout rows: challenger roc_auc=0.84")
    assert decide(GateSettings("roc_auc", max_secondary_regression=0.5), scores).passed


def test_a_champion_that_predicts_one_class_sets_no_per_class_bar() -> None:
    # Its recall of 1 on class "0" is no achievement a better challenger must match.
    scores = replace(COMPARED, champion_confusion=Confusion(("0", "1"), ((140, 0), (60, 0))))
    assert decide(GateSettings("roc_auc"), scores).passed


def test_a_regression_challenger_whose_mae_grows_beyond_the_tolerance_relative_to_the_champion_fails() -> None:
    scores = replace(
        COMPARED,
        challenger={"rmse": 1.0},
        champion={"rmse": 1.2},
        challenger_trusted={"rmse": 1.0, "mae": 0.88},
        champion_trusted={"rmse": 1.1, "mae": 0.8},
        challenger_confusion=None,
        champion_confusion=None,
    )
    verdict = decide(GateSettings("rmse"), scores)
    assert not verdict.passed
    # 10% worse than the champion's MAE: the tolerance is a share of it, whatever the target's scale.
    assert verdict.reasons[2] == (
        "on the 200 trusted holdout rows: challenger mae=0.88 vs champion 0.8, a loss of 0.1 beyond "
        "max_secondary_regression 0.05"
    )
    assert decide(GateSettings("rmse", max_secondary_regression=0.11), scores).passed


def test_a_slice_of_the_trusted_rows_that_regresses_fails_and_a_slice_with_too_few_rows_is_not_judged() -> None:
    region = Slice("region", "south", 120, challenger={"roc_auc": 0.70}, champion={"roc_auc": 0.80})
    scores = replace(COMPARED, slices=(region,))
    verdict = decide(GateSettings("roc_auc"), scores)
    assert not verdict.passed
    assert verdict.reasons[2] == (
        "on the 120 trusted holdout rows with region='south': challenger roc_auc=0.7 vs champion 0.8, a loss of 0.1 "
        "beyond max_slice_regression 0.05"
    )
    assert decide(GateSettings("roc_auc", min_slice_rows=121), scores).passed
    undefined = replace(region, challenger={}, champion={})  # one class in the slice: no ROC AUC there
    assert decide(GateSettings("roc_auc"), replace(COMPARED, slices=(undefined,))).passed


@pytest.mark.parametrize(("metric", "what"), [("roc_auc", "class"), ("rmse", "value")])
def test_a_model_that_predicts_one_class_or_a_constant_never_passes_even_without_a_champion(
    metric: str, what: str
) -> None:
    scores = replace(ALONE, challenger={metric: 0.9}, challenger_trusted={metric: 0.9}, distinct_predictions=1)
    verdict = decide(GateSettings(metric), scores)
    assert not verdict.passed
    assert verdict.reasons[1] == (
        f"the challenger predicts one {what} on all 400 scored holdout rows, which hold 2 distinct targets: "
        "a degenerate model never passes"
    )
    assert decide(GateSettings(metric), replace(scores, distinct_targets=1)).passed


def test_a_near_perfect_score_from_one_feature_holds_a_passing_challenger_for_approval() -> None:
    leaked = replace(COMPARED, feature_scores={"tenure": 0.7, "account_id": 0.999})
    verdict = decide(GateSettings("roc_auc"), leaked)
    assert (verdict.passed, verdict.held) == (False, True)
    assert verdict.reasons[-1] == (
        "held for approval: feature 'account_id' alone scores roc_auc=0.999 on the scored holdout rows "
        "(max_single_feature_score 0.99), more likely a leak (an id or the target in disguise) than a signal"
    )
    # A challenger that fails anyway is rejected, not held; a higher threshold lets it pass.
    assert decide(GateSettings("roc_auc", min_improvement=0.1), leaked) == replace(
        decide(GateSettings("roc_auc", min_improvement=0.1), COMPARED), held=False
    )
    assert decide(GateSettings("roc_auc", max_single_feature_score=1.0), leaked).passed


def test_the_guardrails_facts_and_a_held_verdict_round_trip_and_are_reassessed_under_the_pinned_settings() -> None:
    scores = replace(
        COMPARED,
        slices=(Slice("region", "south", 120, challenger={"roc_auc": 0.7}, champion={"roc_auc": 0.8}),),
        feature_scores={"account_id": 0.999},
    )
    evaluation = evaluation_of(scores, GateSettings("roc_auc", max_slice_regression=0.2))
    data = json.loads(json.dumps(evaluation.to_dict()))
    assert (data["passed"], data["held"], data["max_single_feature_score"]) == (False, True, 0.99)
    assert data["challenger_confusion"]["per_class"]["1"] == {
        "rows": 60,
        "predicted": 55,
        "recall": 35 / 60,
        "f1": 70 / 115,
    }
    assert data["challenger_confusion"]["counts"] == [[120, 20], [25, 35]]
    assert Evaluation.from_dict(data) == evaluation
    # Register's pinned defaults judge the slice the job's lax setting let through.
    verdict = reassess(Evaluation.from_dict(data), {})
    assert (verdict.passed, verdict.held) == (False, False)
    assert "region='south'" in verdict.reasons[2]


def test_an_evaluation_without_the_guardrails_facts_fails_closed_when_reassessed() -> None:
    unrecorded = replace(
        COMPARED,
        distinct_predictions=None,
        challenger_confusion=None,
        slices=None,
        feature_scores=None,
    )
    verdict = reassess(evaluation_of(unrecorded, GateSettings("roc_auc")), {})
    assert not verdict.passed
    assert [reason.split(" (")[0] for reason in verdict.reasons[2:6]] == [
        "the evaluation records no count of distinct predictions",
        "the evaluation records no confusion matrices of the trusted rows",
        "the evaluation records no slices of the trusted rows",
        "the evaluation records no score of each feature alone",
    ]


def test_reassess_fails_closed_on_an_evaluation_of_another_positive_class_than_the_pinned_one() -> None:
    evaluation = replace(evaluation_of(COMPARED, GateSettings("f1")), positive_class="benign")
    round_tripped = Evaluation.from_dict(json.loads(json.dumps(evaluation.to_dict())))

    assert round_tripped.positive_class == "benign"
    assert reassess(round_tripped, {"positive_class": "malignant"}) == Verdict(
        False,
        ("the evaluation scored F1 of the class 'benign', not the pinned positive_class 'malignant': it cannot be "
         "reassessed",),
    )  # fmt: skip
    assert reassess(replace(round_tripped, positive_class="malignant"), {"positive_class": "malignant"}).passed


# A first model on an iris-sized holdout: 30 rows, all trusted, resampled.
SMALL_BOOTSTRAP = Bootstrap(
    rows=30,
    resamples=1000,
    seed=7,
    confidence=0.95,
    challenger={"roc_auc": (0.93, 0.99), "accuracy": (0.8, 0.97)},
    over_baseline={"roc_auc": (0.42, 0.49), "accuracy": (0.45, 0.63)},
    over_champion=None,
)
SMALL = Scores(
    holdout_rows=30,
    challenger={"roc_auc": 0.96, "accuracy": 0.9},
    trusted_rows=30,
    challenger_trusted={"roc_auc": 0.96, "accuracy": 0.9},
    bootstrap=SMALL_BOOTSTRAP,
    bootstrap_trusted=SMALL_BOOTSTRAP,
    **ANY_CHALLENGER,
)


def test_a_first_model_on_a_small_holdout_passes_when_its_bootstrap_bound_beats_no_skill_and_the_floor() -> None:
    verdict = decide(GateSettings("accuracy", min_metric=0.75), SMALL)
    assert verdict.passed
    assert verdict.reasons[-1] == (
        "small data: 30 trusted holdout rows, fewer than min_scored_rows 50, judged on bootstrap bounds (1000 "
        "resamples, each bound 95% one-sided): challenger accuracy=0.8 at the pessimistic end of [0.8, 0.97] meets "
        "min_metric (>= 0.75); gain over a no-skill baseline (each class's share, or the mean) in accuracy "
        "[0.45, 0.63], lower bound above 0"
    )


def test_on_a_small_holdout_the_floor_is_met_by_the_pessimistic_bound_not_the_point_estimate() -> None:
    verdict = decide(GateSettings("accuracy", min_metric=0.85), SMALL)
    assert not verdict.passed
    assert verdict.reasons[0] == "challenger accuracy=0.9 meets min_metric (>= 0.85)"
    assert (
        "challenger accuracy=0.8 at the pessimistic end of [0.8, 0.97] fails min_metric (>= 0.85)"
        in (verdict.reasons[-1])
    )


def test_a_model_without_skill_on_a_small_holdout_is_not_promoted() -> None:
    no_skill = replace(SMALL_BOOTSTRAP, over_baseline={"roc_auc": (-0.17, 0.08), "accuracy": (-0.2, 0.1)})
    verdict = decide(GateSettings("roc_auc"), replace(SMALL, bootstrap=no_skill, bootstrap_trusted=no_skill))
    assert not verdict.passed
    assert verdict.reasons[-1].endswith(
        "gain over a no-skill baseline (each class's share, or the mean) in roc_auc [-0.17, 0.08], no skill shown: "
        "the lower bound is not above 0"
    )


def test_a_ten_row_holdout_fails_even_on_bootstrap_bounds_saying_why() -> None:
    tiny = replace(SMALL, holdout_rows=10, trusted_rows=10, bootstrap=None, bootstrap_trusted=None)
    verdict = decide(GateSettings("roc_auc"), tiny)
    assert not verdict.passed
    assert verdict.reasons[-1] == (
        "only 10 trusted holdout rows (min_scored_rows 50, min_bootstrap_rows 20): too few to check the challenger "
        "on data that is not feedback"
    )


def test_a_small_holdout_without_recorded_bootstrap_bounds_fails_closed() -> None:
    verdict = decide(GateSettings("roc_auc"), replace(SMALL, bootstrap=None, bootstrap_trusted=None))
    assert not verdict.passed
    assert verdict.reasons[-1] == (
        "small data: 30 trusted holdout rows, fewer than min_scored_rows 50, and the evaluation records no "
        "bootstrap bounds for them: the gate fails closed"
    )


def test_a_challenger_on_a_small_holdout_passes_a_champion_only_when_the_lower_bound_of_its_gain_suffices() -> None:
    def against(gain: tuple[float, float]) -> Scores:
        paired = replace(SMALL_BOOTSTRAP, over_champion={"roc_auc": gain})
        return replace(
            SMALL,
            champion_given=True,
            champion={"roc_auc": 0.9},
            champion_trusted={"roc_auc": 0.9},
            champion_seen_rows=0,
            challenger_confusion=CONFUSION,
            champion_confusion=CONFUSION,
            slices=(),
            bootstrap=paired,
            bootstrap_trusted=paired,
        )

    # The point estimate improves by 0.06; on 30 rows that may be noise.
    noisy = decide(GateSettings("roc_auc"), against((-0.01, 0.12)))
    assert not noisy.passed
    assert noisy.reasons[1].endswith(
        "gain over the champion in roc_auc [-0.01, 0.12], lower bound is below min_improvement 0"
    )
    assert noisy.reasons[-1].endswith(
        "gain over the champion in roc_auc [-0.01, 0.12], lower bound is below -max_trusted_regression 0"
    )
    assert (
        decide(GateSettings("roc_auc", max_trusted_regression=0.02), against((-0.01, 0.12)))
        .reasons[-1]
        .endswith("lower bound meets -max_trusted_regression -0.02")
    )
    assert decide(GateSettings("roc_auc"), against((0.01, 0.12))).passed
    assert not decide(GateSettings("roc_auc", min_improvement=0.02), against((0.01, 0.12))).passed


def test_enough_rows_are_judged_on_point_estimates_whatever_bounds_are_recorded() -> None:
    no_skill = replace(SMALL_BOOTSTRAP, rows=400, over_baseline={"roc_auc": (-0.2, 0.1)})
    assert decide(GateSettings("roc_auc"), replace(COMPARED, bootstrap=no_skill, bootstrap_trusted=no_skill)).passed


def test_bootstrap_bounds_round_trip_and_min_bootstrap_rows_is_pinned_like_the_other_settings() -> None:
    settings = parse_gate_settings({"min_bootstrap_rows": "40"}, "classification")
    assert settings.min_bootstrap_rows == 40
    evaluation = Evaluation(settings, SMALL, decide(settings, SMALL), task="classification")
    loaded = Evaluation.from_dict(json.loads(json.dumps(evaluation.to_dict())))
    assert loaded == evaluation
    assert not decide(settings, loaded.scores).passed  # 30 rows: below 40
    assert reassess(loaded, {}).passed
    with pytest.raises(GateError, match="'min_bootstrap_rows'='0' must be an integer >= 1"):
        parse_gate_settings({"min_bootstrap_rows": "0"}, "classification")
