"""Training writes the data-quality baseline in SageMaker Model Monitor's formats, sealed in the bundle."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from functions.common.bundle import (
    CONSTRAINTS_FILE,
    MISSING_CATEGORY,
    STATISTICS_FILE,
    BundleError,
    read_optional,
    verify_bundle,
)
from functions.common.constraints import MAX_DOMAIN_VALUES, read_constraints, suggest_constraints
from training.data_quality import training_statistics, write_data_quality
from training.feature_spec import FeatureSpec

SPEC = FeatureSpec.of({"age": "numeric", "income": "numeric", "plan": "categorical", "id": "categorical"})


def inputs() -> pd.DataFrame:
    """Model inputs as training builds them: numbers with NaN for missing, text with the missing token."""
    return pd.DataFrame(
        {
            "age": [30.0, 41.0, np.nan, 25.0],
            "income": [1200.5, -30.0, 800.0, 0.0],
            "plan": ["basic", "premium", MISSING_CATEGORY, "basic"],
            "id": [f"c{i}" for i in range(4)],
        }
    )


def test_statistics_follow_model_monitors_schema(tmp_path: Path) -> None:
    write_data_quality(tmp_path, inputs(), SPEC)

    statistics = json.loads((tmp_path / STATISTICS_FILE).read_text())
    assert statistics["version"] == 0
    assert statistics["dataset"] == {"item_count": 4}
    age, income, plan, _ = statistics["features"]
    assert age["name"] == "age"
    assert age["inferred_type"] == "Integral"
    numbers = age["numerical_statistics"]
    assert numbers["common"] == {"num_present": 3, "num_missing": 1}
    assert (numbers["min"], numbers["max"], numbers["sum"]) == (25.0, 41.0, 96.0)
    assert numbers["mean"] == pytest.approx(32.0)
    assert numbers["std_dev"] == pytest.approx(np.std([30.0, 41.0, 25.0]))
    assert income["inferred_type"] == "Fractional"
    assert plan["inferred_type"] == "String"
    strings = plan["string_statistics"]
    assert strings["common"] == {"num_present": 3, "num_missing": 1}
    assert strings["distinct_count"] == 2
    assert strings["distribution"]["categorical"]["buckets"] == [
        {"value": "basic", "count": 2},
        {"value": "premium", "count": 1},
    ]


def test_suggested_constraints_hold_observed_completeness_sign_and_small_domains(tmp_path: Path) -> None:
    many = pd.concat([inputs()] * (MAX_DOMAIN_VALUES // 4 + 1), ignore_index=True)
    many["id"] = [f"c{i}" for i in range(len(many))]

    write_data_quality(tmp_path, many, SPEC)

    constraints = read_constraints((tmp_path / CONSTRAINTS_FILE).read_bytes())
    age, income, plan, ids = constraints.features
    assert (age.inferred_type, age.completeness, age.is_non_negative) == ("Integral", 0.75, True)
    assert (income.inferred_type, income.completeness, income.is_non_negative) == ("Fractional", 1.0, False)
    assert (plan.completeness, plan.domains) == (0.75, ("basic", "premium"))
    # An id-like column has no domain: its new values are no violation.
    assert ids.domains is None
    config = constraints.monitoring_config
    assert (config.evaluate_constraints, config.emit_metrics) == (True, True)
    assert training_statistics(many, SPEC).item_count == len(many)


def test_a_boolean_feature_is_a_string_of_false_and_true_as_captures_hold_json_booleans() -> None:
    spec = FeatureSpec.of({"paperless": "boolean"})
    # A boolean's model inputs: 1.0 true, 0.0 false, NaN missing.
    statistics = training_statistics(pd.DataFrame({"paperless": [1.0, 0.0, 1.0, np.nan]}), spec)

    [paperless] = statistics.features
    assert paperless.inferred_type == "String"
    constraints = suggest_constraints(statistics)
    assert constraints.features[0].domains == ("false", "true")
    assert constraints.features[0].completeness == 0.75


def test_a_trained_bundle_seals_both_files(trained_bundle: Path, tmp_path: Path) -> None:
    metadata = verify_bundle(trained_bundle)
    assert {STATISTICS_FILE, CONSTRAINTS_FILE} <= set(metadata.files)
    constraints = read_constraints(read_optional(trained_bundle, metadata, CONSTRAINTS_FILE) or b"")
    assert [feature.name for feature in constraints.features] == list(metadata.feature_names)

    tampered = tmp_path / "bundle"
    tampered.mkdir()
    for path in trained_bundle.iterdir():
        (tampered / path.name).write_bytes(path.read_bytes())
    (tampered / CONSTRAINTS_FILE).write_text('{"version": 0, "features": []}')
    with pytest.raises(BundleError, match=f"{CONSTRAINTS_FILE} checksum mismatch"):
        read_optional(tampered, metadata, CONSTRAINTS_FILE)
