import numpy as np
import pandas as pd
import pytest

from tests.conftest import MakeJob
from tests.training.jobs import CHURN, failure, metadata
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
    # (pandas reads "n/a", "NA" and empty cells as missing, not as bad values.)
    churn.loc[churn.index[:3], "age"] = ["abc", "unknown", "abc"]
    fails_with(make_job, churn, "numeric column 'age' has 3 non-numeric value(s), e.g. 'abc', 'unknown'")


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


def test_constant_columns_are_named(make_job: MakeJob, churn: pd.DataFrame) -> None:
    churn["country"] = "nl"
    churn["version"] = 3
    fails_with(make_job, churn, "constant column(s), a single distinct value: 'country', 'version'")


def test_declared_columns_absent_from_the_data_are_named(make_job: MakeJob, churn: pd.DataFrame) -> None:
    fails_with(
        make_job,
        churn,
        "numeric_features names columns that are not in the data: 'income'",
        "drop_columns names columns that are not in the data: 'id'",
        numeric_features="age,income",
        drop_columns="id",
    )


def test_a_feature_named_like_an_onnx_output_is_refused(make_job: MakeJob, churn: pd.DataFrame) -> None:
    fails_with(make_job, churn.rename(columns={"region": "label"}), "reserved for the model's outputs: 'label'")


def test_a_non_numeric_regression_target_fails(make_job: MakeJob, churn: pd.DataFrame) -> None:
    fails_with(
        make_job,
        churn,
        "the regression target 'region' has non-numeric value(s)",
        target="region",
        task="regression",
    )


def test_all_problems_are_reported_together(make_job: MakeJob, churn: pd.DataFrame) -> None:
    churn["country"] = "nl"
    churn.loc[churn.index[:200], "age"] = None
    reason = fails_with(make_job, churn.head(45), "training data validation failed (4 problems):\n- ")
    assert "\n- column 'age' is 100.0% missing" in reason
    assert "\n- constant column(s), a single distinct value: 'country'" in reason
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


def test_declared_feature_lists_are_exactly_the_features(make_job: MakeJob, churn: pd.DataFrame) -> None:
    base = make_job({**CHURN, "numeric_features": "tenure_months", "categorical_features": "contract,age"}, churn)
    assert run(base) == 0
    features = {f.name: f.type for f in metadata(base).features}
    assert features == {"tenure_months": "numeric", "contract": "categorical", "age": "categorical"}


def test_dropped_columns_are_not_features(make_job: MakeJob, churn: pd.DataFrame) -> None:
    base = make_job({**CHURN, "drop_columns": "age,region"}, churn)
    assert run(base) == 0
    assert "age" not in metadata(base).feature_names
    assert "region" not in metadata(base).feature_names


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
