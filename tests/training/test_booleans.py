"""Issue 14 item 3: one boolean type, whatever the file format.

From CSV a boolean column was categorical "True"/"False", from Parquet numeric, so switching format failed the
champion's schema check.
"""

from __future__ import annotations

import pandas as pd
import pytest

from tests.conftest import MakeJob
from tests.training.jobs import CHURN, evaluation, failure, metadata, with_paperless
from training.contract import Layout
from training.program import run


@pytest.fixture(scope="module")
def paperless(churn_data: pd.DataFrame) -> pd.DataFrame:
    return with_paperless(churn_data)


@pytest.mark.parametrize("file_name", ["data.csv", "data.parquet"])
def test_a_boolean_column_is_a_boolean_feature_from_csv_and_parquet_alike(
    file_name: str, make_job: MakeJob, paperless: pd.DataFrame
) -> None:
    base = make_job(CHURN, {file_name: paperless})
    assert run(base) == 0, failure(base)
    bundle = metadata(base)
    feature = next(f for f in bundle.features if f.name == "paperless")
    assert feature.type == "boolean"
    assert feature.to_dict() == {"name": "paperless", "type": "boolean", "onnx_input": "paperless"}
    summary = bundle.baseline["features"]["paperless"]
    assert summary["type"] == "categorical"
    assert set(summary["proportions"]) == {"false", "true"}
    assert summary["missing"] == pytest.approx(paperless["paperless"].isna().mean())


def test_csv_cells_in_any_case_are_booleans_and_other_text_keeps_the_column_categorical(
    make_job: MakeJob, paperless: pd.DataFrame
) -> None:
    spelled = paperless.assign(paperless=paperless["paperless"].map({True: "TRUE", False: "false", None: None}))
    base = make_job(CHURN, {"data.csv": spelled})
    assert run(base) == 0, failure(base)
    assert next(f for f in metadata(base).features if f.name == "paperless").type == "boolean"

    spelled.loc[0, "paperless"] = "maybe"
    base = make_job(CHURN, {"data.csv": spelled})
    assert run(base) == 0, failure(base)
    assert next(f for f in metadata(base).features if f.name == "paperless").type == "categorical"


def test_a_champion_trained_on_parquet_has_the_schema_of_a_challenger_trained_on_csv(
    make_job: MakeJob, paperless: pd.DataFrame
) -> None:
    champion = make_job(CHURN, {"data.parquet": paperless})
    assert run(champion) == 0, failure(champion)

    challenger = make_job(CHURN, {"data.csv": paperless}, champion=Layout(champion).model_dir)

    assert run(challenger) == 0, failure(challenger)
    scores = evaluation(challenger).scores
    assert scores.champion_not_compared is None
    assert scores.champion is not None
