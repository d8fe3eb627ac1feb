import json
import math

import numpy as np
import pytest

from functions.common.bundle import MISSING_CATEGORY
from functions.common.distribution import (
    OTHER_CATEGORY,
    Baseline,
    CategoricalSummary,
    DistributionError,
    NumericSummary,
    bin_proportions,
    categorical_summary,
    category_proportions,
    numeric_summary,
    summary_from_dict,
)


def test_ten_distinct_values_fall_one_per_decile_bin() -> None:
    summary = numeric_summary(range(1, 11))
    # Linear quantiles of 1..10 at 10%..90%: 1.9, 2.8, ..., 9.1.
    assert summary.edges == pytest.approx([1.9, 2.8, 3.7, 4.6, 5.5, 6.4, 7.3, 8.2, 9.1])
    assert summary.proportions == pytest.approx([0.1] * 10)
    assert summary.missing == 0.0


def test_tied_quantiles_merge_into_unique_edges_and_ties_go_to_the_lower_bin() -> None:
    summary = numeric_summary([0, 0, 0, 0, 0, 1, 1, 2, 3, 4], bins=5)
    # Quantiles at 20/40/60/80%: 0, 0, 1, 2.2 -> unique edges 0, 1, 2.2.
    assert summary.edges == pytest.approx([0.0, 1.0, 2.2])
    # x <= 0: five zeros; 0 < x <= 1: two ones; 1 < x <= 2.2: the 2; above: 3 and 4.
    assert summary.proportions == pytest.approx([0.5, 0.2, 0.1, 0.2])


def test_constant_column_has_one_edge_and_everything_in_the_first_bin() -> None:
    summary = numeric_summary([3.0, 3.0, 3.0])
    assert summary == NumericSummary(edges=(3.0,), proportions=(1.0, 0.0), missing=0.0)


def test_all_missing_values_give_no_edges_zero_proportions_and_full_missing() -> None:
    summary = numeric_summary([None, math.nan, math.inf])
    assert summary == NumericSummary(edges=(), proportions=(0.0,), missing=1.0)


def test_empty_input_gives_no_edges_and_no_missing() -> None:
    assert numeric_summary([]) == NumericSummary(edges=(), proportions=(0.0,), missing=0.0)


def test_missing_fraction_counts_none_nan_and_infinity() -> None:
    summary = numeric_summary([1.0, None, 3.0, math.nan, -math.inf, 5.0, 7.0, 9.0])
    assert summary.missing == pytest.approx(3 / 8)
    assert sum(summary.proportions) == pytest.approx(1.0)


def test_bin_i_holds_values_above_the_previous_edge_up_to_and_including_its_own() -> None:
    assert bin_proportions([1.0, 2.0], [0.0, 1.0, 1.5, 2.0, 2.5]) == pytest.approx([0.4, 0.4, 0.2])
    assert bin_proportions([1.0, 2.0], np.array([0.0, 1.0, 1.5, 2.0, 2.5])) == pytest.approx([0.4, 0.4, 0.2])


def test_bin_proportions_matches_numpy_searchsorted_left() -> None:
    rng = np.random.default_rng(0)
    values = rng.integers(0, 20, 500).astype(float)
    edges = [2.0, 5.0, 5.5, 13.0]
    expected = np.bincount(np.searchsorted(edges, values, side="left"), minlength=5) / 500
    assert bin_proportions(edges, values) == pytest.approx(expected)


def test_single_bin_has_no_edges() -> None:
    assert numeric_summary([1, 2, 3], bins=1) == NumericSummary(edges=(), proportions=(1.0,), missing=0.0)


def test_zero_bins_is_refused() -> None:
    with pytest.raises(DistributionError, match="bins"):
        numeric_summary([1.0], bins=0)


def test_categorical_summary_treats_none_nan_and_the_missing_token_as_missing() -> None:
    summary = categorical_summary(["a", "b", "a", None, MISSING_CATEGORY, math.nan])
    assert summary.proportions == pytest.approx({"a": 2 / 3, "b": 1 / 3})
    assert summary.missing == pytest.approx(0.5)


def test_categorical_summary_of_nothing_is_empty() -> None:
    assert categorical_summary([]) == CategoricalSummary(proportions={}, missing=0.0)
    assert categorical_summary([None]) == CategoricalSummary(proportions={}, missing=1.0)


def test_category_proportions_keeps_every_baseline_category_and_counts_unseen_as_other() -> None:
    shares = category_proportions(["a", "b"], ["a", "c", "c", None])
    assert shares == pytest.approx({"a": 1 / 3, "b": 0.0, OTHER_CATEGORY: 2 / 3})
    assert category_proportions(["a"], []) == {"a": 0.0}


def test_baseline_survives_a_json_round_trip() -> None:
    baseline = Baseline(
        rows=10,
        features={"age": numeric_summary(range(10)), "region": categorical_summary(["n", "s", None])},
        prediction=categorical_summary(["0", "1", "1"]),
        prediction_rows=3,
        positive_probability=numeric_summary([0.1, 0.7, 0.9]),
    )
    data = json.loads(json.dumps(baseline.to_dict()))
    assert data["features"]["age"]["type"] == "numeric"
    assert data["features"]["region"]["type"] == "categorical"
    assert Baseline.from_dict(data) == baseline


@pytest.mark.parametrize(
    ("summary", "message"),
    [
        ({"type": "numeric", "edges": [2.0, 1.0], "proportions": [0.2, 0.3, 0.5], "missing": 0}, "sorted"),
        ({"type": "numeric", "edges": [1.0], "proportions": [1.0], "missing": 0}, "expected 2"),
        ({"type": "numeric", "edges": [], "proportions": [1.0], "missing": "x"}, "missing"),
        ({"type": "categorical", "proportions": [0.5], "missing": 0}, "object"),
        ({"type": "histogram", "missing": 0}, "unknown summary type"),
    ],
)
def test_malformed_summaries_are_refused(summary: dict[str, object], message: str) -> None:
    with pytest.raises(DistributionError, match=message):
        summary_from_dict(summary)


def test_malformed_baseline_is_refused() -> None:
    with pytest.raises(DistributionError, match="malformed"):
        Baseline.from_dict({"rows": 1, "prediction": {"type": "categorical", "proportions": {}, "missing": 0}})
