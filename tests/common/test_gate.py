import math
from collections.abc import Callable

import pytest

from functions.common.gate import Evaluation, GateError, GateSettings, Verdict, decide, higher_is_better


def test_challenger_that_beats_the_champion_by_the_required_margin_passes() -> None:
    verdict = decide(GateSettings("roc_auc", min_improvement=0.01), {"roc_auc": 0.85}, {"roc_auc": 0.83})
    assert verdict.passed
    assert "improvement +0.02" in verdict.reasons[0]


def test_challenger_that_improves_less_than_the_margin_fails() -> None:
    verdict = decide(GateSettings("roc_auc", min_improvement=0.05), {"roc_auc": 0.85}, {"roc_auc": 0.83})
    assert not verdict.passed
    assert "is below min_improvement" in verdict.reasons[0]


def test_error_metrics_are_better_when_lower() -> None:
    assert not higher_is_better("rmse")
    assert decide(GateSettings("rmse"), {"rmse": 1.0}, {"rmse": 1.2}).passed
    assert not decide(GateSettings("rmse"), {"rmse": 1.3}, {"rmse": 1.2}).passed


def test_min_metric_is_a_floor_even_without_a_champion() -> None:
    verdict = decide(GateSettings("accuracy", min_metric=0.9), {"accuracy": 0.8}, None)
    assert not verdict.passed
    assert verdict.reasons == (
        "challenger accuracy=0.8 fails min_metric (>= 0.9)",
        "no champion to compare with",
    )


def test_min_metric_is_a_ceiling_for_error_metrics() -> None:
    assert decide(GateSettings("mae", min_metric=2.0), {"mae": 1.5}, None).passed
    assert not decide(GateSettings("mae", min_metric=1.0), {"mae": 1.5}, None).passed


def test_without_a_champion_a_challenger_without_floor_passes() -> None:
    assert decide(GateSettings("f1"), {"f1": 0.1}, None) == Verdict(True, ("no champion to compare with",))


def test_non_finite_challenger_metric_fails() -> None:
    verdict = decide(GateSettings("log_loss"), {"log_loss": math.nan}, None)
    assert not verdict.passed
    assert "not a finite number" in verdict.reasons[0]


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        (lambda: GateSettings("auc"), "unknown metric"),
        (lambda: GateSettings("r2", min_improvement=-0.1), "min_improvement"),
        (lambda: GateSettings("r2", min_improvement=math.inf), "min_improvement"),
    ],
)
def test_invalid_gate_settings_are_refused(settings: Callable[[], GateSettings], message: str) -> None:
    with pytest.raises(GateError, match=message):
        settings()


def test_metrics_without_the_gate_metric_are_an_error() -> None:
    with pytest.raises(GateError, match="challenger"):
        decide(GateSettings("r2"), {"rmse": 1.0}, None)
    with pytest.raises(GateError, match="champion"):
        decide(GateSettings("r2"), {"r2": 0.5}, {"rmse": 1.0})


def test_evaluation_round_trips_through_its_dict_form() -> None:
    settings = GateSettings("roc_auc", min_metric=0.7, min_improvement=0.01)
    challenger = {"roc_auc": 0.9, "accuracy": 0.8}
    champion = {"roc_auc": 0.85, "accuracy": 0.79}
    evaluation = Evaluation(
        settings=settings,
        holdout_rows=400,
        challenger=challenger,
        verdict=decide(settings, challenger, champion),
        champion=champion,
        champion_version="7",
        details={"task": "classification"},
    )
    data = evaluation.to_dict()
    assert data["passed"] is True
    assert data["holdout_rows"] == 400
    assert Evaluation.from_dict(data) == evaluation


def test_malformed_evaluation_is_refused() -> None:
    with pytest.raises(GateError, match="malformed"):
        Evaluation.from_dict({"metric": "roc_auc", "challenger": {}})
