import pytest

from training.errors import TrainingFailure
from training.hyperparameters import Hyperparameters, parse_hyperparameters


def problems_of(raw: dict[str, object]) -> tuple[str, ...]:
    with pytest.raises(TrainingFailure) as caught:
        parse_hyperparameters(raw)
    return caught.value.problems


def test_only_target_is_required_and_everything_else_has_a_default() -> None:
    hp = parse_hyperparameters({"target": "churned"})
    assert hp == Hyperparameters(target="churned")
    assert (hp.algorithm, hp.test_size, hp.random_seed, hp.min_rows, hp.min_class_count) == (
        "hist_gradient_boosting",
        0.2,
        42,
        50,
        10,
    )
    assert hp.max_missing_fraction == 0.5
    assert hp.min_improvement == 0.0
    assert hp.allow_schema_change is False


def test_string_values_are_parsed_into_their_types() -> None:
    hp = parse_hyperparameters(
        {
            "target": "y",
            "task": "regression",
            "algorithm": "gradient_boosting",
            "n_estimators": "25",
            "learning_rate": "0.3",
            "test_size": "0.25",
            "random_seed": "7",
            "numeric_features": "a, b",
            "categorical_features": "c",
            "drop_columns": "id",
            "metric": "mae",
            "min_metric": "3.5",
            "min_improvement": "0.1",
            "allow_schema_change": "true",
            "champion_version": "12",
        }
    )
    assert hp.knobs == {"n_estimators": 25, "learning_rate": 0.3}
    assert hp.numeric_features == ("a", "b")
    assert hp.categorical_features == ("c",)
    assert hp.drop_columns == ("id",)
    assert (hp.test_size, hp.random_seed, hp.min_metric, hp.min_improvement) == (0.25, 7, 3.5, 0.1)
    assert hp.allow_schema_change is True
    assert hp.champion_version == "12"


def test_unknown_hyperparameter_is_an_error_naming_it() -> None:
    (problem,) = problems_of({"target": "y", "n_estimator": "10"})
    assert problem.startswith("unknown hyperparameter 'n_estimator'")
    assert "n_estimators" in problem


def test_sagemaker_own_hyperparameters_are_ignored() -> None:
    hp = parse_hyperparameters({"target": "y", "sagemaker_region": "x", "sagemaker_container_log_level": "20"})
    assert hp.target == "y"


def test_script_mode_hyperparameters_are_refused_naming_the_script_that_would_not_run() -> None:
    problems = problems_of(
        {"target": "y", "sagemaker_program": '"train.py"', "sagemaker_submit_directory": '"s3://b/code.tar.gz"'}
    )
    assert [p.split("=", 1)[0] for p in problems] == [
        "hyperparameter 'sagemaker_program'",
        "hyperparameter 'sagemaker_submit_directory'",
    ]
    assert "train.py" in problems[0]
    assert "runs only driftloop's training program" in problems[0]


def test_json_encoded_values_as_the_sagemaker_sdk_sends_them_mean_what_their_plain_forms_mean() -> None:
    plain = {
        "target": "churned",
        "algorithm": "logistic_regression",
        "C": "0.5",
        "max_iter": "5",
        "allow_schema_change": "true",
        "drop_columns": '["a","b"]',
        "missing_values": "?, n/a",
    }
    # json.dumps of each value, as framework estimators and ModelTrainer encode them.
    encoded = {
        "target": '"churned"',
        "algorithm": '"logistic_regression"',
        "C": "0.5",
        "max_iter": "5",
        "allow_schema_change": "true",
        "drop_columns": '["a", "b"]',
        "missing_values": '"?, n/a"',
    }
    assert parse_hyperparameters(encoded) == parse_hyperparameters(plain)
    # A list given as one JSON-encoded string of a JSON list, too.
    assert parse_hyperparameters({"target": "y", "drop_columns": '"[\\"Price, USD\\"]"'}).drop_columns == (
        "Price, USD",
    )


def test_a_plain_value_that_happens_to_be_json_keeps_its_plain_meaning() -> None:
    hp = parse_hyperparameters({"target": "null", "champion_version": "12", "drop_columns": '"x'})
    assert (hp.target, hp.champion_version, hp.drop_columns) == ("null", "12", ('"x',))
    (problem,) = problems_of({"target": "y", "algorithm": '"random forest"'})
    assert problem.startswith("hyperparameter 'algorithm'='\"random forest\"' must be one of")


def test_missing_target_is_reported() -> None:
    (problem,) = problems_of({})
    assert "'target' is required" in problem


def test_every_invalid_value_is_reported_together_and_named() -> None:
    problems = problems_of(
        {
            "target": "y",
            "n_estimators": "abc",
            "test_size": "1.5",
            "allow_schema_change": "maybe",
            "algorithm": "svm",
            "max_missing_fraction": "-0.1",
            "min_improvement": "-1",
            "random_seed": "4.5",
        }
    )
    assert problems == (
        "hyperparameter 'n_estimators'='abc' must be an integer >= 1",
        "hyperparameter 'test_size'='1.5' must be a number strictly between 0 and 1",
        "hyperparameter 'allow_schema_change'='maybe' must be true or false",
        "hyperparameter 'algorithm'='svm' must be one of logistic_regression, random_forest, "
        "gradient_boosting, hist_gradient_boosting",
        "hyperparameter 'max_missing_fraction'='-0.1' must be a number between 0 and 1",
        "hyperparameter 'min_improvement'='-1' must be a finite number >= 0",
        "hyperparameter 'random_seed'='4.5' must be an integer",
    )


def test_a_column_declared_twice_or_as_the_target_is_refused() -> None:
    problems = problems_of({"target": "y", "numeric_features": "a,y", "categorical_features": "a"})
    assert "columns declared both numeric and categorical: a" in problems
    assert "the target 'y' cannot also be a feature or a dropped column" in problems


def test_a_column_declared_as_a_feature_and_dropped_is_refused() -> None:
    (problem,) = problems_of({"target": "y", "categorical_features": "a,b", "drop_columns": "b"})
    assert problem == "columns declared as features and also in drop_columns: b"


def test_min_class_count_below_two_is_refused() -> None:
    (problem,) = problems_of({"target": "y", "min_class_count": "1"})
    assert "'min_class_count' must be at least 2" in problem


def test_a_knob_that_does_not_apply_to_the_algorithm_is_refused() -> None:
    hp = parse_hyperparameters({"target": "y", "algorithm": "logistic_regression", "n_estimators": "10"})
    with pytest.raises(TrainingFailure, match="'n_estimators' does not apply to algorithm 'logistic_regression'"):
        hp.knobs_for("classification")


def test_ridge_takes_c_but_not_max_iter() -> None:
    hp = parse_hyperparameters({"target": "y", "algorithm": "logistic_regression", "C": "2", "max_iter": "50"})
    assert hp.knobs_for("classification") == {"C": 2.0, "max_iter": 50}
    with pytest.raises(TrainingFailure, match="'max_iter' does not apply"):
        hp.knobs_for("regression")


def test_algorithm_defaults_are_applied_under_the_user_knobs() -> None:
    hp = parse_hyperparameters({"target": "y", "algorithm": "random_forest", "n_estimators": "15"})
    assert hp.knobs_for("classification") == {"n_estimators": 15, "min_samples_leaf": 2}


def test_gate_metric_defaults_per_task_and_must_belong_to_the_task() -> None:
    assert parse_hyperparameters({"target": "y"}).gate_settings("classification").metric == "roc_auc"
    assert parse_hyperparameters({"target": "y"}).gate_settings("regression").metric == "rmse"
    with pytest.raises(TrainingFailure, match="'metric'='rmse' is not a classification metric"):
        parse_hyperparameters({"target": "y", "metric": "rmse"}).gate_settings("classification")


def test_effective_hyperparameters_are_all_strings_with_defaults_resolved() -> None:
    effective = parse_hyperparameters({"target": "y", "algorithm": "random_forest"}).effective("classification")
    assert all(isinstance(value, str) for value in effective.values())
    assert effective["task"] == "classification"
    assert effective["n_estimators"] == "200"
    assert effective["metric"] == "roc_auc"
    assert effective["min_metric"] == ""


def test_data_and_serving_settings_are_parsed_and_default_to_no_tokens_a_cap_of_50_and_no_serving_check() -> None:
    defaults = parse_hyperparameters({"target": "y"})
    assert (defaults.missing_values, defaults.max_categories) == ((), 50)
    assert (defaults.serving_memory_mb, defaults.serving_timeout_seconds) == (None, None)
    hp = parse_hyperparameters(
        {
            "target": "y",
            "missing_values": "?, n/a,-",
            "max_categories": "20",
            "serving_memory_mb": "1024",
            "serving_timeout_seconds": "10",
        }
    )
    assert (hp.missing_values, hp.max_categories) == (("?", "n/a", "-"), 20)
    assert (hp.serving_memory_mb, hp.serving_timeout_seconds) == (1024, 10.0)
    effective = hp.effective("classification")
    assert (effective["serving_memory_mb"], effective["serving_timeout_seconds"]) == ("1024", "10.0")


def test_invalid_data_and_serving_settings_are_named() -> None:
    problems = problems_of(
        {
            "target": "y",
            "missing_values": "?,?",
            "max_categories": "0",
            "serving_memory_mb": "1.5",
            "serving_timeout_seconds": "0",
        }
    )
    assert problems == (
        "hyperparameter 'missing_values'='?,?' lists ? more than once",
        "hyperparameter 'max_categories'='0' must be an integer >= 1",
        "hyperparameter 'serving_memory_mb'='1.5' must be an integer >= 1",
        "hyperparameter 'serving_timeout_seconds'='0' must be a finite number > 0",
    )


def test_list_hyperparameters_accept_a_json_list_kept_exactly() -> None:
    hp = parse_hyperparameters(
        {
            "target": "y",
            "drop_columns": '["Price, USD", "Weight"]',
            "missing_values": '[" ?"]',
            "categorical_features": '["occupation"]',
            "numeric_features": '["age, years"]',
        }
    )
    assert (hp.drop_columns, hp.missing_values) == (("Price, USD", "Weight"), (" ?",))
    assert (hp.categorical_features, hp.numeric_features) == (("occupation",), ("age, years",))
    assert hp.effective("regression")["drop_columns"] == '["Price, USD", "Weight"]'


def test_a_malformed_json_list_is_refused_naming_the_hyperparameter() -> None:
    (problem,) = problems_of({"target": "y", "drop_columns": '["Price, USD", 3]'})
    assert problem.startswith("hyperparameter 'drop_columns'='[\"Price, USD\", 3]' starts with '[' but is not")


def test_class_settings_are_parsed_and_recorded_among_the_effective_ones() -> None:
    hp = parse_hyperparameters(
        {"target": "y", "positive_class": "malignant", "class_weight": '{"malignant": 3}', "decision_threshold": "0.3"}
    )

    assert (hp.positive_class, hp.class_weight, hp.decision_threshold) == ("malignant", {"malignant": 3.0}, 0.3)
    assert parse_hyperparameters({"target": "y", "class_weight": "balanced"}).class_weight == "balanced"
    effective = hp.effective("classification")
    assert effective["positive_class"] == "malignant"
    assert parse_hyperparameters({"target": "y", "class_weight": effective["class_weight"]}).class_weight == {
        "malignant": 3.0
    }
    assert Hyperparameters(target="y").effective("classification")["decision_threshold"] == ""


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ({"class_weight": "heavy"}, "'class_weight'='heavy' must be 'balanced' or a JSON object of label -> weight"),
        ({"class_weight": '{"drizzle": -1}'}, "gives label 'drizzle' the weight -1; a weight must be a finite number"),
        ({"class_weight": '{"drizzle": true}'}, "gives label 'drizzle' the weight True"),
        ({"decision_threshold": "1"}, "'decision_threshold'='1' must be a number strictly between 0 and 1"),
        ({"positive_class": " "}, "'positive_class'=' ' must not be empty"),
    ],
)
def test_bad_class_settings_are_reported_with_the_setting_and_why(raw: dict[str, str], expected: str) -> None:
    assert any(expected in problem for problem in problems_of({"target": "y", **raw}))


def test_class_settings_are_checked_against_the_targets_classes() -> None:
    hp = Hyperparameters(target="y", positive_class="rain", decision_threshold=0.4, class_weight={"hail": 2.0})

    assert hp.class_problems("classification", ["drizzle", "rain", "sun"]) == [
        "hyperparameter 'positive_class' applies to binary classification only, not classification with 3 classes",
        "hyperparameter 'decision_threshold' applies to binary classification only, not classification with 3 classes",
        "hyperparameter 'class_weight' names label(s) 'hail' that are not among the target's classes 'drizzle', "
        "'rain', 'sun'",
    ]
    assert hp.class_problems("regression", []) == [
        "hyperparameter 'positive_class' applies to binary classification only, not regression",
        "hyperparameter 'decision_threshold' applies to binary classification only, not regression",
        "hyperparameter 'class_weight' applies to classification only, not regression",
    ]
    assert Hyperparameters(target="y", positive_class="rain").class_problems("classification", ["rain", "sun"]) == []
