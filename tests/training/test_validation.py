from pathlib import Path
from typing import Any

import joblib
import numpy as np
import onnxruntime
import pandas as pd
import pytest

from functions.common.bundle import JOBLIB_FILE, ONNX_FILE, PROBABILITIES_OUTPUT, verify_bundle
from functions.common.distribution import OTHER_CATEGORY
from tests.conftest import MakeJob
from tests.training.jobs import CHURN, evaluation_json, failure, metadata
from training.contract import Layout
from training.program import run


@pytest.fixture
def churn(churn_data: pd.DataFrame) -> pd.DataFrame:
    return churn_data.head(300).copy()


def fails_with(make_job: MakeJob, data: pd.DataFrame, *expected: str, **hyperparameters: str) -> str:
    base = make_job({**CHURN, **hyperparameters}, data)
    assert run(base) == 1
    reason = failure(base)
    for text in expected:
        assert text in reason
    assert not (Layout(base).model_dir / "metadata.json").exists()
    return reason


def test_missing_target_column_fails_with_reason_in_failure_file(make_job: MakeJob, churn: pd.DataFrame) -> None:
    reason = fails_with(make_job, churn.drop(columns="churned"), "target column 'churned' is missing")
    assert "'tenure_months'" in reason


def test_too_few_rows_fails_naming_the_count_and_threshold(make_job: MakeJob, churn: pd.DataFrame) -> None:
    fails_with(make_job, churn.head(40), "only 40 rows have a target value (min_rows 50)")


def test_a_class_with_too_few_examples_is_named_with_its_count(make_job: MakeJob, churn: pd.DataFrame) -> None:
    rare = pd.concat([churn[churn.churned == 0].head(200), churn[churn.churned == 1].head(4)])
    fails_with(make_job, rare, "class '1' has only 4 example(s) (min_class_count 10)")


def test_a_single_class_target_fails(make_job: MakeJob, churn: pd.DataFrame) -> None:
    fails_with(make_job, churn[churn.churned == 0], "has a single class '0'")


def test_a_column_with_too_many_missing_values_is_named_with_its_fraction(
    make_job: MakeJob, churn: pd.DataFrame
) -> None:
    churn["age"] = 40.0
    churn.loc[churn.index[:180], "age"] = None
    fails_with(make_job, churn, "column 'age' is 60.0% missing (max_missing_fraction 0.5)")


def test_non_numeric_values_in_an_inferred_numeric_column_are_shown(make_job: MakeJob, churn: pd.DataFrame) -> None:
    churn["age"] = churn["age"].astype(object)
    # (Empty cells are missing, not bad values; pandas' spellings of missing are named apart, see below.)
    churn.loc[churn.index[:3], "age"] = ["abc", "unknown", "abc"]
    fails_with(make_job, churn, "numeric column 'age' has 3 non-numeric value(s), e.g. 'abc', 'unknown'")


def test_pandas_missing_spellings_in_a_numeric_column_fail_naming_the_tokens_and_the_declaration_that_fixes_them(
    make_job: MakeJob, churn: pd.DataFrame
) -> None:
    churn["age"] = churn["age"].astype(object)
    churn.loc[churn.index[:3], "age"] = ["NA", "n/a", "NA"]
    churn.loc[churn.index[3], "age"] = "abc"
    reason = fails_with(
        make_job,
        churn,
        "numeric column 'age' holds 'NA', 'n/a' in 3 cell(s): text, not a missing value, unless declared "
        '(set missing_values=["NA", "n/a"] if it means missing, or declare it in categorical_features)',
        "numeric column 'age' has 1 non-numeric value(s), e.g. 'abc'",
    )
    assert "'NA'" not in reason.split("has 1 non-numeric")[1]


def test_a_numeric_column_mostly_spelled_na_stays_numeric_instead_of_silently_turning_categorical(
    make_job: MakeJob, churn: pd.DataFrame
) -> None:
    churn["age"] = churn["age"].astype(object)
    churn.loc[churn.index[:120], "age"] = "NA"
    fails_with(make_job, churn, "numeric column 'age' holds 'NA' in 120 cell(s)")

    base = make_job({**CHURN, "missing_values": "NA"}, churn)
    assert run(base) == 0, failure(base)
    age = next(f for f in metadata(base).features if f.name == "age")
    assert age.type == "numeric"
    assert metadata(base).baseline["features"]["age"]["missing"] >= 120 / 300


def test_a_regression_target_spelled_na_fails_naming_the_token(make_job: MakeJob, churn: pd.DataFrame) -> None:
    churn["monthly_charges"] = churn["monthly_charges"].astype(object)
    churn.loc[churn.index[:5], "monthly_charges"] = "NULL"
    fails_with(
        make_job,
        churn,
        "the regression target 'monthly_charges' holds 'NULL' in 5 cell(s)",
        'set missing_values=["NULL"] if it means missing',
        target="monthly_charges",
        drop_columns="churned",
    )


def test_non_numeric_values_in_a_declared_numeric_column_are_shown(make_job: MakeJob, churn: pd.DataFrame) -> None:
    fails_with(
        make_job,
        churn,
        "numeric column 'region' has 300 non-numeric value(s), e.g. 'north', 'west', 'south', 'east'",
        numeric_features="tenure_months,region",
    )


def test_infinite_values_count_as_non_numeric(make_job: MakeJob, churn: pd.DataFrame) -> None:
    churn.loc[churn.index[0], "monthly_charges"] = np.inf
    fails_with(make_job, churn, "numeric column 'monthly_charges' has 1 non-numeric value(s), e.g. 'inf'")


def test_when_every_feature_is_constant_the_job_fails_naming_them(make_job: MakeJob, churn: pd.DataFrame) -> None:
    constant = churn[["churned"]].assign(version=3, country="nl")
    fails_with(
        make_job,
        constant,
        "every feature is constant, a single value: 'version', 'country'",
        numeric_features="version",
        categorical_features="country",
    )


def test_declared_columns_absent_from_the_data_are_named(make_job: MakeJob, churn: pd.DataFrame) -> None:
    fails_with(
        make_job,
        churn,
        "numeric_features names columns that are not in the data: 'income'",
        "drop_columns names columns that are not in the data: 'id'",
        numeric_features="age,income",
        drop_columns="id",
    )


def test_features_named_like_the_onnx_outputs_get_other_input_names(make_job: MakeJob, churn: pd.DataFrame) -> None:
    base = make_job(CHURN, churn.rename(columns={"region": "label", "age": "value"}))
    assert run(base) == 0, failure(base)
    inputs = {f.name: f.onnx_input for f in metadata(base).features}
    assert (inputs["label"], inputs["value"], inputs["contract"]) == ("label_2", "value_2", "contract")


def test_a_non_numeric_regression_target_fails(make_job: MakeJob, churn: pd.DataFrame) -> None:
    fails_with(
        make_job,
        churn,
        "the regression target 'region' has non-numeric value(s)",
        target="region",
        task="regression",
    )


def test_all_problems_are_reported_together(make_job: MakeJob, churn: pd.DataFrame) -> None:
    churn["tenure_months"] = churn["tenure_months"].astype(object)
    churn.loc[churn.index[0], "tenure_months"] = "new"
    churn.loc[churn.index[:200], "age"] = None
    reason = fails_with(make_job, churn.head(45), "training data validation failed (4 problems):\n- ")
    assert "\n- column 'age' is 100.0% missing" in reason
    assert "\n- numeric column 'tenure_months' has 1 non-numeric value(s), e.g. 'new'" in reason
    assert "\n- only 45 rows" in reason
    assert "\n- class '1' has only 8 example(s)" in reason


def test_rows_without_a_target_are_dropped_and_counted(make_job: MakeJob, churn: pd.DataFrame) -> None:
    churn["churned"] = churn["churned"].astype(object)
    churn.loc[churn.index[:30], "churned"] = None
    base = make_job(CHURN, churn)
    assert run(base) == 0
    data = metadata(base).training_data
    assert data["rows"] == 300
    assert data["rows_without_target"] == 30
    assert data["train_rows"] + data["holdout_rows"] == 270


def test_too_many_rows_without_a_target_fail(make_job: MakeJob, churn: pd.DataFrame) -> None:
    churn["churned"] = churn["churned"].astype(object)
    churn.loc[churn.index[:200], "churned"] = None
    fails_with(make_job, churn, "target 'churned' is missing in 66.7% of rows")


def affairs_data(rows: int = 400, seed: int = 3) -> pd.DataFrame:
    """Shaped like statsmodels' fair data: six numeric columns and two occupations coded as integers 1-6."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "rate_marriage": rng.integers(1, 6, rows),
            "age": rng.uniform(17.5, 42, rows).round(1),
            "yrs_married": rng.uniform(0.5, 23, rows).round(1),
            "children": rng.integers(0, 6, rows),
            "religious": rng.integers(1, 5, rows),
            "educ": rng.choice([9, 12, 14, 16, 17, 20], rows),
            "occupation": rng.integers(1, 7, rows),
            "occupation_husb": rng.integers(1, 7, rows),
        }
    )
    score = 0.4 * (5 - frame.rate_marriage) + 0.05 * frame.yrs_married - 0.3 * frame.religious
    frame["affair"] = (score + rng.normal(0, 0.8, rows) > score.median()).astype(int)
    return frame


def test_declaring_some_columns_categorical_keeps_every_other_column_as_an_inferred_feature(
    make_job: MakeJob,
) -> None:
    hyperparameters = {"target": "affair", "categorical_features": "occupation,occupation_husb"}
    base = make_job({**hyperparameters, "algorithm": "logistic_regression"}, affairs_data())
    assert run(base) == 0, failure(base)
    features = {f.name: f.type for f in metadata(base).features}
    assert features == {
        **dict.fromkeys(["rate_marriage", "age", "yrs_married", "children", "religious", "educ"], "numeric"),
        "occupation": "categorical",
        "occupation_husb": "categorical",
    }


def test_declared_types_override_the_inferred_ones_and_drop_columns_alone_drops(
    make_job: MakeJob, churn: pd.DataFrame
) -> None:
    declared = {"numeric_features": "support_calls", "categorical_features": "age", "drop_columns": "region"}
    base = make_job({**CHURN, **declared}, churn)
    assert run(base) == 0, failure(base)
    features = {f.name: f.type for f in metadata(base).features}
    assert "region" not in features
    assert (features["support_calls"], features["age"]) == ("numeric", "categorical")
    assert features.keys() == set(churn.columns) - {"churned", "region"}


def test_dropped_columns_are_not_features(make_job: MakeJob, churn: pd.DataFrame) -> None:
    base = make_job({**CHURN, "drop_columns": "age,region"}, churn)
    assert run(base) == 0
    assert "age" not in metadata(base).feature_names
    assert "region" not in metadata(base).feature_names


def test_a_json_listed_drop_column_with_a_comma_in_its_name_drops_that_one_column(
    make_job: MakeJob, churn: pd.DataFrame
) -> None:
    data = churn.rename(columns={"monthly_charges": "Price, USD"}).assign(USD=1.0, Price=2.0)
    base = make_job({**CHURN, "drop_columns": '["Price, USD"]'}, data)
    assert run(base) == 0, failure(base)
    names = metadata(base).feature_names
    assert "Price, USD" not in names
    assert {"Price", "USD"} <= set(names)


def test_task_is_inferred_from_the_target(make_job: MakeJob, churn: pd.DataFrame) -> None:
    for target, task in (
        ("churned", "classification"),
        ("contract", "classification"),
        ("tenure_months", "regression"),
    ):
        base = make_job({"target": target, "algorithm": "logistic_regression"}, churn)
        assert run(base) == 0, failure(base)
        assert metadata(base).task == task


def test_many_rare_classes_are_summarised_with_a_hint(make_job: MakeJob, churn: pd.DataFrame) -> None:
    reason = fails_with(
        make_job,
        churn,
        "classes have fewer than 10 examples (min_class_count), e.g. ",
        target="monthly_charges",
        task="classification",
    )
    assert "set task=regression" in reason
    assert len(reason) < 1024


def _onnx_predictions(bundle: Path, rows: list[dict[Any, Any]]) -> np.ndarray:
    session = onnxruntime.InferenceSession(str(bundle / ONNX_FILE), providers=["CPUExecutionProvider"])
    feeds = {}
    for feature in verify_bundle(bundle).features:
        values = [[row[feature.name]] for row in rows]
        feeds[feature.onnx_input] = np.array(values, dtype=np.float32 if feature.type == "numeric" else object)
    probabilities: np.ndarray = session.run([PROBABILITIES_OUTPUT], feeds)[0]
    return probabilities


def test_a_constant_column_in_a_fresh_window_is_ignored_by_the_model_but_stays_in_the_serving_schema(
    make_job: MakeJob, churn_data: pd.DataFrame, capsys: pytest.CaptureFixture[str]
) -> None:
    first = churn_data.head(600).assign(country=np.where(np.arange(600) % 2, "nl", "be"), version=np.arange(600) % 3)
    champion = make_job(CHURN, first)
    assert run(champion) == 0, failure(champion)
    fresh = churn_data.iloc[600:1200].assign(country="nl", version=3)
    base = make_job(CHURN, fresh, champion=Layout(champion).model_dir)
    capsys.readouterr()
    assert run(base) == 0, failure(base)

    warning = (
        "constant column(s), a single value: 'country', 'version'; the model ignores them (the API still takes them)"
    )
    assert warning in metadata(base).warnings
    assert f"warning: {warning}" in capsys.readouterr().out
    features = {f.name: f for f in metadata(base).features}
    assert features["country"].categories == ("nl",)
    assert (features["version"].minimum, features["version"].maximum) == (3.0, 3.0)
    # The champion is compared: the serving schema did not change.
    assert evaluation_json(base)["champion"] is not None
    rows = fresh.drop(columns="churned").head(5).to_dict("records")
    other = [{**row, "country": "de", "version": 99} for row in rows]
    model_dir = Layout(base).model_dir
    np.testing.assert_array_equal(_onnx_predictions(model_dir, rows), _onnx_predictions(model_dir, other))


def test_a_text_column_with_one_value_and_missing_ones_is_informative_a_numeric_one_is_not(
    make_job: MakeJob, churn: pd.DataFrame
) -> None:
    churn["has_pet"] = ["yes" if i % 3 else None for i in range(len(churn))]
    churn["pets"] = np.where(np.arange(len(churn)) % 3 != 0, 1.0, np.nan)
    base = make_job(CHURN, churn)
    assert run(base) == 0, failure(base)
    constant = [w for w in metadata(base).warnings if w.startswith("constant column(s)")]
    assert constant == ["constant column(s), a single value: 'pets'; the model ignores them (the API still takes them)"]


def test_identifier_like_columns_are_warned_about(make_job: MakeJob, churn: pd.DataFrame) -> None:
    rows = len(churn)
    churn.insert(0, "Unnamed: 0", np.random.default_rng(0).permutation(rows))  # shuffled, but dense
    churn["customer"] = [f"c-{i:05d}" for i in range(rows)]
    churn["ticket"] = 100_000 + 37 * np.arange(rows)  # sparse, in row order
    churn["income"] = np.random.default_rng(1).choice(np.arange(10_000, 200_000), rows, replace=False)
    base = make_job(CHURN, churn)
    assert run(base) == 0, failure(base)
    ids = [w for w in metadata(base).warnings if "looks like an identifier" in w]
    assert [w.split(" looks like")[0] for w in ids] == ["column 'Unnamed: 0'", "column 'customer'", "column 'ticket'"]
    assert ids[0] == (
        "column 'Unnamed: 0' looks like an identifier (a distinct integer on every row); if it is one, drop it "
        "(drop_columns): ids new rows bring were never seen in training"
    )


def test_dates_as_iso_text_and_parquet_timestamps_are_warned_about(make_job: MakeJob, churn: pd.DataFrame) -> None:
    days = pd.Timestamp("2024-01-01") + pd.to_timedelta(np.arange(len(churn)) % 90, unit="D")
    churn["signed_up"] = days.strftime("%Y-%m-%d")
    churn["last_seen"] = days + pd.Timedelta(hours=5)
    base = make_job(CHURN, {"data.parquet": churn})
    assert run(base) == 0, failure(base)
    warnings = metadata(base).warnings
    assert any(
        w.startswith("column 'signed_up' holds dates as text (e.g. '2024-01-01'), each one a category")
        for w in warnings
    )
    assert any(w.startswith("column 'last_seen' holds timestamps") for w in warnings)


def test_a_high_cardinality_categorical_is_encoded_on_its_most_frequent_levels(
    make_job: MakeJob, churn_data: pd.DataFrame
) -> None:
    data = churn_data.head(1000).copy()
    rng = np.random.default_rng(0)
    data["city"] = [f"city-{n:04d}" for n in rng.zipf(1.5, len(data)) % 3000]
    base = make_job({**CHURN, "max_categories": "12"}, data)
    assert run(base) == 0, failure(base)
    bundle = metadata(base)
    city = next(f for f in bundle.features if f.name == "city")
    # The most frequent first, equal counts in name order.
    ranked = sorted(data["city"].value_counts().items(), key=lambda level: (-level[1], level[0]))
    assert city.categories == tuple(name for name, _ in ranked[:12])
    warning = next(w for w in bundle.warnings if w.startswith("categorical column 'city'"))
    assert f"has {data['city'].nunique()} levels: the model tells apart its 12 most frequent (" in warning
    pipeline = joblib.load(Layout(base).model_dir / JOBLIB_FILE)
    assert pipeline.named_steps["preprocess"].named_transformers_["capped"].transform(data[["city"]]).shape == (
        1000,
        12,
    )
    summary = bundle.baseline["features"]["city"]["proportions"]
    assert set(summary) == {*city.categories, OTHER_CATEGORY}
