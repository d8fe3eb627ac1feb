import hashlib
from pathlib import Path

import pandas as pd
import pytest

from tests.conftest import MakeJob
from tests.training.jobs import CHURN, failure, metadata
from training.contract import Layout
from training.data import load_training_data
from training.program import run


def test_csv_and_parquet_files_found_recursively_are_concatenated_in_name_order(
    make_job: MakeJob, churn_data: pd.DataFrame
) -> None:
    files = {
        "b/part-2.parquet": churn_data.iloc[200:300],
        "a.csv": churn_data.iloc[:100],
        "b/part-1.csv": churn_data.iloc[100:200],
    }
    base = make_job(CHURN, files)
    channel = Layout(base).channel("train")
    (channel / "_SUCCESS").write_text("")
    (channel / ".hidden.csv").write_text("junk\n")

    assert run(base) == 0
    data = metadata(base).training_data
    assert data["files"] == ["a.csv", "b/part-1.csv", "b/part-2.parquet"]
    assert data["rows"] == 300
    digest = hashlib.sha256(b"".join((channel / name).read_bytes() for name in data["files"]))
    assert data["sha256"] == digest.hexdigest()


def test_files_in_another_column_order_are_aligned(tmp_path: Path, churn_data: pd.DataFrame) -> None:
    churn_data.head(5).to_csv(tmp_path / "1.csv", index=False)
    churn_data.head(5)[list(reversed(churn_data.columns))].to_csv(tmp_path / "2.csv", index=False)
    frame = load_training_data(tmp_path).frame
    assert list(frame.columns) == list(churn_data.columns)
    assert frame["region"].tolist() == churn_data["region"].head(5).tolist() * 2


def test_files_that_disagree_on_columns_name_the_file_that_differs(make_job: MakeJob, churn_data: pd.DataFrame) -> None:
    files = {
        "1.csv": churn_data.head(100),
        "2.csv": churn_data.head(100).drop(columns="age").assign(income=1.0),
        "3.csv": churn_data.head(100),
    }
    base = make_job(CHURN, files)
    assert run(base) == 1
    assert failure(base) == (
        "the training files disagree on their columns: "
        "2.csv has different columns from 1.csv: missing ['age'], extra ['income']"
    )


def test_an_empty_train_channel_fails(make_job: MakeJob) -> None:
    base = make_job(CHURN, {})
    assert run(base) == 1
    assert "holds no .csv or .parquet file" in failure(base)


def test_a_file_without_even_a_header_fails_naming_it(make_job: MakeJob, churn_data: pd.DataFrame) -> None:
    base = make_job(CHURN, churn_data.head(100))
    (Layout(base).channel("train") / "zz.csv").write_text("")
    assert run(base) == 1
    assert failure(base) == "training file zz.csv is empty (a header row is required)"


def test_an_unreadable_parquet_file_fails_naming_it(make_job: MakeJob, churn_data: pd.DataFrame) -> None:
    base = make_job(CHURN, churn_data.head(100))
    (Layout(base).channel("train") / "broken.parquet").write_bytes(b"not parquet")
    assert run(base) == 1
    assert failure(base).startswith("training file broken.parquet cannot be read")


def test_parquet_and_csv_spell_class_labels_the_same(make_job: MakeJob, churn_data: pd.DataFrame) -> None:
    data = churn_data.head(300).assign(churned=churn_data["churned"].head(300).astype(bool))
    classes = []
    for name in ("data.csv", "data.parquet"):
        base = make_job(CHURN, {name: data})
        assert run(base) == 0, failure(base)
        classes.append(metadata(base).classes)
    assert classes == [("False", "True"), ("False", "True")]


@pytest.mark.parametrize("file_name", ["data.csv", "data.parquet"])
def test_declared_missing_value_tokens_are_missing_values_in_csv_and_parquet(
    file_name: str, make_job: MakeJob, churn_data: pd.DataFrame
) -> None:
    # Ages as text, as a Parquet text column holding the tokens must be.
    data = churn_data.head(300).assign(age=churn_data["age"].head(300).map(lambda v: None if pd.isna(v) else f"{v:g}"))
    data.loc[data.index[:30], "age"] = "?"
    data.loc[data.index[30:40], "age"] = "unknown"
    data.loc[data.index[:20], "region"] = "?"
    base = make_job({**CHURN, "missing_values": "?,unknown"}, {file_name: data})
    assert run(base) == 0, failure(base)
    bundle = metadata(base)
    region = next(f for f in bundle.features if f.name == "region")
    assert "?" not in region.categories
    assert next(f for f in bundle.features if f.name == "age").type == "numeric"
    assert bundle.baseline["features"]["age"]["missing"] == pytest.approx(
        40 / 300 + churn_data["age"].iloc[40:300].isna().sum() / 300
    )
    assert bundle.baseline["features"]["region"]["missing"] == pytest.approx(20 / 300)
    assert bundle.hyperparameters["missing_values"] == "?,unknown"


def test_a_json_listed_token_keeps_its_space_and_makes_exactly_those_cells_missing(
    make_job: MakeJob, churn_data: pd.DataFrame
) -> None:
    # As in the adult census data: a " ?" cell is missing, a "?" one is a value.
    data = churn_data.head(300).copy()
    data.loc[data.index[:20], "region"] = " ?"
    data.loc[data.index[20:40], "region"] = "?"
    base = make_job({**CHURN, "missing_values": '[" ?"]'}, {"data.csv": data})
    assert run(base) == 0, failure(base)
    bundle = metadata(base)
    region = next(f for f in bundle.features if f.name == "region")
    assert " ?" not in region.categories
    assert "?" in region.categories
    assert bundle.baseline["features"]["region"]["missing"] == pytest.approx(20 / 300)
    assert bundle.hyperparameters["missing_values"] == '[" ?"]'


def test_missing_value_tokens_leave_parquet_numbers_alone(tmp_path: Path) -> None:
    pd.DataFrame({"code": ["-1", "?", "a"], "amount": [-1.0, 2.0, 3.0]}).to_parquet(tmp_path / "data.parquet")
    frame = load_training_data(tmp_path, ["-1", "?"]).frame
    assert frame["code"].isna().tolist() == [True, True, False]
    assert frame["amount"].tolist() == [-1.0, 2.0, 3.0]


def unloaded(frame: pd.DataFrame, path: Path) -> None:
    """``frame`` as Athena's UNLOAD writes it: Parquet, every column text (NULL when missing), names in lower case,
    a file name without a suffix."""
    text = frame.astype(object).where(frame.notna(), None).map(lambda v: None if v is None else f"{v}")
    path.parent.mkdir(parents=True, exist_ok=True)
    text.rename(columns=str.lower).to_parquet(path)


def test_feedback_unloaded_by_athena_is_read_beside_the_base_data_by_its_parquet_magic(
    make_job: MakeJob, churn_data: pd.DataFrame
) -> None:
    base = make_job({**CHURN, "test_size": "0.2"}, {"base/history.csv": churn_data.head(400)})
    channel = Layout(base).channel("train")
    unloaded(churn_data.iloc[400:500], channel / "feedback" / "20261207_093000_00001_abcde_0a1b2c3d")
    (channel / "feedback" / "20261207_093000_00001_abcde_empty").write_bytes(b"")  # no rows: nothing written

    assert run(base) == 0, failure(base)
    data = metadata(base).training_data
    assert data["files"] == ["base/history.csv", "feedback/20261207_093000_00001_abcde_0a1b2c3d"]
    assert data["rows"] == 500


def test_unloaded_feedback_columns_match_the_base_headers_case(tmp_path: Path, churn_data: pd.DataFrame) -> None:
    data = churn_data.head(5).rename(columns={"region": "Region", "churned": "Churned"})
    data.to_csv(tmp_path / "base.csv", index=False)
    unloaded(data, tmp_path / "feedback" / "part_0")
    frame = load_training_data(tmp_path).frame
    assert list(frame.columns) == list(data.columns)
    assert frame["Region"].tolist() == data["Region"].tolist() * 2


def test_a_file_under_feedback_without_a_suffix_that_is_not_parquet_fails_naming_it(
    make_job: MakeJob, churn_data: pd.DataFrame
) -> None:
    base = make_job(CHURN, churn_data.head(100))
    channel = Layout(base).channel("train")
    (channel / "notes").write_text("a suffix-less file outside feedback/ is not data\n")
    (channel / "feedback").mkdir()
    (channel / "feedback" / "part_0").write_text("a,b\n1,2\n")
    assert run(base) == 1
    assert failure(base) == "training file feedback/part_0 has no .csv or .parquet suffix and is not Parquet"
