from training.feature_spec import FeatureSpec, onnx_input_names


def test_onnx_input_names_spell_any_column_name_as_an_identifier() -> None:
    names = onnx_input_names(["Unnamed: 0", "sepal length (cm)", "pétal.wïdth", "1st", "温度", "tenure_months"])
    assert names == {
        "Unnamed: 0": "Unnamed_0",
        "sepal length (cm)": "sepal_length_cm",
        "pétal.wïdth": "petal_width",
        "1st": "_1st",
        "温度": "_",
        "tenure_months": "tenure_months",
    }


def test_onnx_input_names_are_unique_and_a_valid_name_keeps_its_own() -> None:
    names = onnx_input_names(["a b", "a_b", "a-b", "a_b_2", "label", "value", "probabilities"])
    assert names == {
        "a b": "a_b_3",
        "a_b": "a_b",
        "a-b": "a_b_4",
        "a_b_2": "a_b_2",
        "label": "label_2",
        "value": "value_2",
        "probabilities": "probabilities_2",
    }


def test_a_valid_name_keeps_its_spelling_even_when_an_earlier_column_spells_into_it() -> None:
    names = onnx_input_names(["naïve", "x y", "x.y", "naive"])
    assert names == {"naïve": "naive_2", "x y": "x_y", "x.y": "x_y_2", "naive": "naive"}
    assert list(names) == ["naïve", "x y", "x.y", "naive"]


def test_the_model_types_leave_out_the_ignored_features() -> None:
    spec = FeatureSpec({"a": "numeric", "b": "categorical", "c": "numeric"}, {}, ignored=frozenset({"b"}))
    assert spec.model_types == {"a": "numeric", "c": "numeric"}
    assert FeatureSpec.of({"a b": "numeric"}).onnx_inputs == {"a b": "a_b"}
