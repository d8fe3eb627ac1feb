"""SageMaker Model Monitor's constraints.json and statistics.json, as driftloop reads and writes them."""

from __future__ import annotations

import json
from typing import Any

import pytest

from functions.common.constraints import (
    DEFAULT_DATATYPE_CHECK_THRESHOLD,
    CheckType,
    ConstraintsError,
    FeatureStatistics,
    NumericStatistics,
    Statistics,
    StringStatistics,
    Violation,
    parse_constraints,
    read_constraints,
    suggest_constraints,
    violations_document,
)

# A baseline as Model Monitor's prebuilt container writes it, fields driftloop does not use included.
MODEL_MONITOR_BASELINE: dict[str, Any] = {
    "version": 0.0,
    "features": [
        {"name": "age", "inferred_type": "Integral", "completeness": 1.0, "num_constraints": {"is_non_negative": True}},
        {
            "name": "state",
            "inferred_type": "String",
            "completeness": 0.98,
            "string_constraints": {"domains": ["CA", "NY", "TX"]},
            "monitoringConfigOverrides": {"domain_content_threshold": 0.9},
        },
        {"name": "notes", "inferred_type": "Unknown", "completeness": 0.5},
    ],
    "monitoring_config": {
        "evaluate_constraints": "Enabled",
        "emit_metrics": "Enabled",
        "datatype_check_threshold": 1.0,
        "domain_content_threshold": 1.0,
        "distribution_constraints": {
            "perform_comparison": "Enabled",
            "comparison_threshold": 0.1,
            "comparison_method": "Robust",
        },
    },
}


def test_a_model_monitor_baseline_is_read_and_written_back_with_the_fields_driftloop_ignores() -> None:
    constraints = read_constraints(json.dumps(MODEL_MONITOR_BASELINE))

    age, state, notes = constraints.features
    assert (age.inferred_type, age.completeness, age.is_non_negative, age.numeric) == ("Integral", 1.0, True, True)
    assert (state.domains, state.completeness, state.numeric) == (("CA", "NY", "TX"), 0.98, False)
    assert (notes.inferred_type, notes.domains, notes.is_non_negative) == ("Unknown", None, None)
    assert constraints.to_dict() == MODEL_MONITOR_BASELINE
    assert read_constraints(constraints.to_json()) == constraints


def test_missing_monitoring_config_takes_model_monitors_defaults() -> None:
    config = parse_constraints({"version": 0, "features": []}).monitoring_config
    assert (config.evaluate_constraints, config.emit_metrics) == (True, True)
    assert config.datatype_check_threshold == DEFAULT_DATATYPE_CHECK_THRESHOLD == 1.0


def test_driftloops_own_range_is_read_from_num_constraints() -> None:
    feature = {"name": "tenure", "inferred_type": "Fractional", "num_constraints": {"min": 0, "max": 120.5}}
    [tenure] = parse_constraints({"features": [feature]}).features
    assert (tenure.minimum, tenure.maximum, tenure.is_non_negative) == (0.0, 120.5, None)


@pytest.mark.parametrize(
    ("document", "reason"),
    [
        ([], "constraints.json must be a JSON object, got an array"),
        ({"features": None}, "features must be an array, got null"),
        ({"features": ["age"]}, "features[0] must be a JSON object, got a string"),
        ({"features": [{"inferred_type": "String"}]}, "features[0].name must be a non-empty string"),
        ({"features": [{"name": "a"}, {"name": "a"}]}, "features 'a' appear more than once"),
        ({"features": [{"name": "a", "completeness": "high"}]}, "feature 'a'.completeness must be a finite number"),
        (
            {"features": [{"name": "a", "inferred_type": "Integral", "num_constraints": {"is_non_negative": "yes"}}]},
            "feature 'a': num_constraints.is_non_negative must be true or false, got 'yes'",
        ),
        (
            {"features": [{"name": "a", "inferred_type": "Integral", "num_constraints": {"min": 5, "max": 1}}]},
            "feature 'a': num_constraints.min 5 is above max 1",
        ),
        (
            {"features": [{"name": "a", "inferred_type": "Integral", "string_constraints": {"domains": ["x"]}}]},
            "feature 'a': string_constraints.domains need the String inferred_type, not Integral",
        ),
        (
            {"features": [{"name": "a", "inferred_type": "String", "string_constraints": {"domains": [1, 2]}}]},
            "feature 'a': string_constraints.domains must be an array of strings",
        ),
        (
            {"features": [], "monitoring_config": {"datatype_check_threshold": 2}},
            "monitoring_config.datatype_check_threshold must be between 0 and 1, got 2",
        ),
    ],
)
def test_a_broken_file_names_the_feature_and_field_at_fault(document: Any, reason: str) -> None:
    with pytest.raises(ConstraintsError) as error:
        parse_constraints(document)
    assert reason in str(error.value)


def test_a_file_that_is_not_json_is_refused() -> None:
    with pytest.raises(ConstraintsError, match="not valid JSON"):
        read_constraints(b"{features: []")


def test_statistics_suggest_constraints_like_a_baselining_job() -> None:
    statistics = Statistics(
        10,
        (
            FeatureStatistics("age", "Integral", NumericStatistics(8, 2, 40.0, 320.0, 3.0, 18.0, 70.0)),
            FeatureStatistics("balance", "Fractional", NumericStatistics(10, 0, 1.5, 15.0, 9.0, -20.0, 30.0)),
            FeatureStatistics("plan", "String", StringStatistics(10, 0, 2, (("gold", 7), ("basic", 3)))),
        ),
    )

    age, balance, plan = suggest_constraints(statistics).features

    assert (age.completeness, age.is_non_negative) == (0.8, True)
    assert (balance.completeness, balance.is_non_negative) == (1.0, False)
    assert plan.domains == ("basic", "gold")
    document = json.loads(statistics.to_json())
    assert document["dataset"] == {"item_count": 10}
    assert document["features"][0]["numerical_statistics"]["common"] == {"num_present": 8, "num_missing": 2}
    assert document["features"][2]["string_statistics"]["distinct_count"] == 2


def test_violations_have_constraint_violations_json_shape() -> None:
    found = [Violation("age", CheckType.COMPLETENESS, "3 of 10 values missing")]
    assert violations_document(found) == {
        "violations": [
            {
                "feature_name": "age",
                "constraint_check_type": "completeness_check",
                "description": "3 of 10 values missing",
            }
        ]
    }
