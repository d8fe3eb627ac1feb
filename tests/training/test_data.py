import hashlib
from pathlib import Path

import pandas as pd

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
