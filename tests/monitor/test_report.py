"""Evaluating a window, the metrics it publishes and their EMF lines, and the settings, without AWS."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from functions.common.env import EnvError
from functions.common.metrics import NAMESPACE, Dimension, MonitorMetric
from functions.monitor.adapters import publish_metrics
from functions.monitor.data_quality import DataQuality
from functions.monitor.drift import MISSING
from functions.monitor.metrics import Outcome, constraint_sets, metric_data, metric_sets, outcome_set
from functions.monitor.quality import Labelled
from functions.monitor.queries import prediction_distributions
from functions.monitor.report import FeedbackCounts, LiveCounts, WindowReport, baseline, evaluate
from functions.monitor.settings import MonitorSettings
from tests.monitor.world import (
    LIMITS,
    SERVICE,
    SETTINGS,
    classification_metadata,
    emf_documents,
    emf_published,
    regression_metadata,
)

NOW = datetime(2026, 11, 27, 12, tzinfo=UTC)
START = NOW - timedelta(hours=1)


def report(metadata: dict[str, Any], captured: int, labelled: int = 0) -> WindowReport:
    """``captured`` predictions of a drifted window as the drift query counts them (tenure all in the top bin,
    every plan basic, every label "yes", no probabilities), ``labelled`` of them right."""
    live = LiveCounts(
        captured,
        features={"tenure": {9: captured}, "plan": {0: captured}},
        predictions={"label": {1: captured}, "positive_probability": {MISSING: captured}},
    )
    return evaluate(
        version="v1",
        metadata=metadata,
        time=NOW,
        start=START,
        end=NOW,
        live=live,
        labelled=Labelled(count=labelled, confusion={("yes", "yes"): labelled}),
        feedback=FeedbackCounts(received=labelled),
        limits=LIMITS,
    )


def by_dimensions(report: WindowReport) -> dict[tuple[tuple[str, str], ...], set[str]]:
    found: dict[tuple[tuple[str, str], ...], set[str]] = {}
    for datum in metric_data(metric_sets(report, SERVICE)):
        found.setdefault(datum.dimensions, set()).add(datum.name)
    return found


def test_a_sufficient_window_publishes_every_metric_per_service_and_per_version() -> None:
    found = by_dimensions(report(classification_metadata(), captured=30, labelled=10))
    alarm_metrics = {
        "CapturedRecords",
        "LabelledRecords",
        "MaxFeatureDrift",
        "PredictionDrift",
        "LiveAccuracy",
        "LiveF1",
    }
    assert found[(("Service", SERVICE),)] == alarm_metrics
    assert found[(("Service", SERVICE), ("ModelVersion", "v1"))] == alarm_metrics
    for feature in ("tenure", "plan"):
        assert found[(("Service", SERVICE), ("Feature", feature))] == {"FeatureDrift"}
        assert found[(("Service", SERVICE), ("ModelVersion", "v1"), ("Feature", feature))] == {"FeatureDrift"}


def test_an_insufficient_window_measures_no_drift_but_still_quality() -> None:
    result = report(classification_metadata(), captured=19, labelled=6)
    assert result.status == "insufficient_data"
    assert result.features == {}
    assert result.to_dict()["drift"] is None
    assert by_dimensions(result)[(("Service", SERVICE),)] == {
        "CapturedRecords",
        "LabelledRecords",
        "LiveAccuracy",
        "LiveF1",
    }


def test_exactly_min_records_is_sufficient() -> None:
    assert report(classification_metadata(), captured=LIMITS.min_records).status == "ok"


def test_a_model_without_a_baseline_is_reported_and_measures_no_drift() -> None:
    metadata = {key: value for key, value in classification_metadata().items() if key != "baseline"}
    result = report(metadata, captured=30)
    assert result.status == "no_baseline"
    assert {datum.name for datum in metric_data(metric_sets(result, SERVICE))} == {"CapturedRecords", "LabelledRecords"}


def test_a_model_without_a_task_is_refused() -> None:
    with pytest.raises(ValueError, match="no valid task"):
        report({"baseline": {}}, captured=30)


def test_settings_name_the_missing_or_malformed_variable() -> None:
    with pytest.raises(EnvError, match="DRIFTLOOP_DATA_BUCKET is required"):
        MonitorSettings.from_env({})
    env = {
        "DRIFTLOOP_DATA_BUCKET": "d",
        "DRIFTLOOP_CAPTURE_PREFIX": "captures/",
        "DRIFTLOOP_FEEDBACK_PREFIX": "feedback/",
        "DRIFTLOOP_REPORT_PREFIX": "monitoring/",
        "DRIFTLOOP_MODEL_BUCKET": "m",
        "DRIFTLOOP_WINDOW_MINUTES": "sixty",
    }
    with pytest.raises(EnvError, match="DRIFTLOOP_WINDOW_MINUTES='sixty': must be an integer"):
        MonitorSettings.from_env(env)


def test_the_settings_read_back_from_the_environment_they_render() -> None:
    rendered = SETTINGS.to_env()
    assert rendered["POWERTOOLS_SERVICE_NAME"] == SERVICE
    assert MonitorSettings.from_env(rendered) == SETTINGS


# -- the EMF lines ------------------------------------------------------------------------------------------------


@pytest.fixture
def lambda_stdout(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> pytest.CaptureFixture[str]:
    """stdout, where the EMF lines go, with the environment of the Lambda, whose service Powertools would read."""
    for name, value in SETTINGS.to_env().items():
        monkeypatch.setenv(name, value)
    return capsys


def regression_report() -> WindowReport:
    """30 predictions of 50 (tenure 0..29 in the first three bins); 10 labelled 40: every error 10."""
    live = LiveCounts(30, features={"tenure": {0: 10, 1: 10, 2: 10}}, predictions={"value": {4: 30}})
    return evaluate(
        version="v1",
        metadata=regression_metadata(),
        time=NOW,
        start=START,
        end=NOW,
        live=live,
        labelled=Labelled(count=10, scored=10, squared_error=10 * 100.0, absolute_error=10 * 10.0),
        feedback=FeedbackCounts(received=10),
        limits=LIMITS,
    )


def published_lines(result: WindowReport, capsys: pytest.CaptureFixture[str]) -> list[dict[str, Any]]:
    publish_metrics(metric_sets(result, SERVICE), NOW)
    return emf_documents(capsys.readouterr().out)


def test_every_metric_the_monitor_publishes_is_named_and_measured_as_the_contract_says(
    lambda_stdout: pytest.CaptureFixture[str],
) -> None:
    checked = DataQuality(source="training", checked=30, emit_metrics=True)
    publish_metrics([outcome_set(Outcome.COVERED, SERVICE), *constraint_sets(checked, SERVICE)], NOW)
    documents = [
        *emf_documents(lambda_stdout.readouterr().out),
        *published_lines(report(classification_metadata(), captured=30, labelled=10), lambda_stdout),
        *published_lines(regression_report(), lambda_stdout),
    ]
    directives = [directive for document in documents for directive in document["_aws"]["CloudWatchMetrics"]]
    assert {directive["Namespace"] for directive in directives} == {NAMESPACE}
    assert {name for d in directives for names in d["Dimensions"] for name in names} <= set(Dimension)
    units = {metric["Name"]: metric["Unit"] for directive in directives for metric in directive["Metrics"]}
    # Between a run's outcome, its data quality, a classification and a regression champion: every monitor metric of
    # the contract, with its unit.
    assert units == {metric.value: metric.unit.value for metric in MonitorMetric}
    # No dimension but the contract's: Powertools' own lower-case "service" would split every metric in two.
    assert all(set(document) - {"_aws"} <= set(Dimension) | set(MonitorMetric) for document in documents)


def test_each_emf_line_names_the_dimension_sets_of_its_metrics(lambda_stdout: pytest.CaptureFixture[str]) -> None:
    window, *features = published_lines(report(classification_metadata(), captured=30, labelled=10), lambda_stdout)

    [directive] = window["_aws"]["CloudWatchMetrics"]
    assert directive["Dimensions"] == [["Service"], ["Service", "ModelVersion"]]
    assert (window["Service"], window["ModelVersion"]) == (SERVICE, "v1")
    assert [document["Feature"] for document in features] == ["plan", "tenure"]
    for document in features:
        [directive] = document["_aws"]["CloudWatchMetrics"]
        assert directive["Dimensions"] == [["Service", "Feature"], ["Service", "ModelVersion", "Feature"]]
        assert directive["Metrics"] == [{"Name": "FeatureDrift", "Unit": "None"}]


def test_the_emf_lines_make_exactly_the_data_points_the_report_lists(lambda_stdout: pytest.CaptureFixture[str]) -> None:
    sets = metric_sets(report(classification_metadata(), captured=30, labelled=10), SERVICE)

    publish_metrics(sets, NOW)

    expected = {(datum.name.value, tuple(sorted(datum.dimensions))): datum.value for datum in metric_data(sets)}
    assert emf_published(lambda_stdout.readouterr().out, NOW) == expected


def test_live_f1_and_the_tracked_probability_are_of_the_champions_positive_class() -> None:
    # Breast cancer as scikit-learn ships it: 0 malignant, 1 benign; the champion was trained with positive_class=0.
    metadata = {**classification_metadata(), "classes": ["0", "1"], "positive_class": "0"}
    pairs = {("0", "0"): 8, ("0", "1"): 2, ("1", "1"): 85, ("1", "0"): 5}
    live = LiveCounts(100, features={}, predictions={})

    window = evaluate(
        version="v1",
        metadata=metadata,
        time=NOW,
        start=START,
        end=NOW,
        live=live,
        labelled=Labelled(count=100, confusion=pairs),
        feedback=FeedbackCounts(received=100),
        limits=LIMITS,
    )

    # malignant: tp 8, fp 5, fn 2 -> F1 = 16 / 23 (benign's would be 170 / 177)
    assert window.quality["f1"] == pytest.approx(16 / 23)

    def probability(classes: list[str], positive: str | None) -> str:
        found = prediction_distributions(baseline(metadata), "classification", classes, positive)
        return next(d.value for d in found if d.name == "positive_probability")

    # The probability of "0", as it would be read for a model whose second class is "0".
    assert probability(["0", "1"], "0") == probability(["1", "0"], None) != probability(["0", "1"], None)
