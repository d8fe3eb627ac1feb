"""Issue 14 item 3: /predict takes a boolean feature as JSON true/false, as ``df.to_dict("records")`` sends it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pandas as pd
import pytest

from functions.common.bundle import JOBLIB_FILE, read_metadata
from functions.inference.settings import InferenceSettings
from tests.conftest import MakeJob
from tests.inference.conftest import TARGET, MakeApi
from tests.training.jobs import CHURN, failure, with_paperless
from training.features import model_inputs
from training.program import run


@pytest.fixture(scope="module")
def paperless(churn_data: pd.DataFrame) -> pd.DataFrame:
    # Complete numeric columns: to_dict would send a missing number as NaN, which JSON has not.
    data = with_paperless(churn_data)
    return data.dropna(subset=[name for name in data.columns if name != "paperless"]).reset_index(drop=True)


@pytest.fixture(scope="module")
def bundle(make_job: MakeJob, paperless: pd.DataFrame) -> Path:
    base = make_job(CHURN, {"data.parquet": paperless})
    assert run(base) == 0, failure(base)
    return base / "model"


def records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    return [
        {str(name): value for name, value in row.items()}
        for row in frame.drop(columns=TARGET).head(50).to_dict("records")
    ]


def test_rows_as_to_dict_records_sends_them_predict_as_the_pipeline_does(
    make_api: MakeApi, bundle: Path, paperless: pd.DataFrame
) -> None:
    sent = records(paperless)
    assert {type(row["paperless"]) for row in sent} == {bool, type(None)}

    reply = make_api(InferenceSettings(model_dir=bundle)).predict(sent)

    assert reply.status == 200, reply.json
    metadata = read_metadata(bundle)
    types = {feature.name: feature.type for feature in metadata.features}
    expected = joblib.load(bundle / JOBLIB_FILE).predict_proba(model_inputs(paperless.head(50), types))
    served = np.array([[p["probabilities"][c] for c in metadata.classes] for p in reply.json["predictions"]])
    assert served == pytest.approx(expected, abs=1e-5)


@pytest.mark.parametrize("value", ["true", 1, 0.0])
def test_a_boolean_feature_refuses_anything_but_true_false_or_null(
    make_api: MakeApi, bundle: Path, paperless: pd.DataFrame, value: Any
) -> None:
    reply = make_api(InferenceSettings(model_dir=bundle)).predict([{**records(paperless)[0], "paperless": value}])

    assert reply.status == 422
    got = "string" if isinstance(value, str) else "number"
    assert reply.json["details"] == [
        {"instance": 0, "field": "paperless", "problem": f"expected a boolean (true or false), got {got}"}
    ]


def test_the_openapi_document_types_a_boolean_feature_as_json_booleans(make_api: MakeApi, bundle: Path) -> None:
    document = make_api(InferenceSettings(model_dir=bundle)).call("GET", "/openapi.json", content_type=None).json
    schema = document["components"]["schemas"]["Instance"]["properties"]["paperless"]
    assert schema["anyOf"][0] == {"type": ["boolean", "null"]}
    assert json.dumps(schema).count("number") == 0
