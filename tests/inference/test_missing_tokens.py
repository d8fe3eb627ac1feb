"""Issue 14 item 1: training and serving agree on exactly which texts are missing, recorded in the bundle.

The repro: fair-shaped data whose ``region`` is one of NA (North America), EU and APAC. pandas would read "NA" as
missing in training while /predict took it as a category never seen: 60 of 500 labels flipped.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pandas as pd
import pytest

from functions.common.bundle import JOBLIB_FILE
from functions.inference.settings import InferenceSettings
from tests.conftest import MakeJob
from tests.inference.conftest import MakeApi
from tests.training.jobs import failure, metadata
from training.contract import Layout
from training.data import load_training_data
from training.features import model_inputs
from training.program import run

ROWS = 500
FAIR = {"target": "affairs", "algorithm": "logistic_regression"}


def fair_shaped(rows: int = ROWS, seed: int = 14) -> pd.DataFrame:
    """Columns like statsmodels' fair data, plus a region that moves the label a lot."""
    rng = np.random.default_rng(seed)
    region = rng.choice(["NA", "EU", "APAC"], rows)
    frame = pd.DataFrame(
        {
            "rate_marriage": rng.integers(1, 6, rows),
            "age": rng.choice([17.5, 22.0, 27.0, 32.0, 37.0, 42.0], rows),
            "yrs_married": rng.choice([0.5, 2.5, 6.0, 9.0, 13.0, 16.5, 23.0], rows),
            "children": rng.integers(0, 5, rows),
            "religious": rng.integers(1, 5, rows),
            "occupation": rng.integers(1, 7, rows),
            "region": region,
        }
    )
    logit = 2.5 * (region == "NA") - 1.5 * (region == "APAC") - 0.6 * (frame["rate_marriage"] - 3)
    frame["affairs"] = (rng.random(rows) < 1 / (1 + np.exp(-logit))).astype(int)
    return frame


@pytest.fixture(scope="module")
def fair() -> pd.DataFrame:
    return fair_shaped()


def trained(make_job: MakeJob, frame: pd.DataFrame, **hyperparameters: str) -> Path:
    """The job's directory after training on ``frame`` as CSV (its "NA" cells written as NA)."""
    base = make_job({**FAIR, **hyperparameters}, {"fair.csv": frame})
    assert run(base) == 0, failure(base)
    return base


@pytest.fixture(scope="module")
def undeclared(make_job: MakeJob, fair: pd.DataFrame) -> Path:
    return trained(make_job, fair)


@pytest.fixture(scope="module")
def declared(make_job: MakeJob, fair: pd.DataFrame) -> Path:
    return trained(make_job, fair, missing_values='["NA"]')


def served(make_api: MakeApi, bundle: Path, instances: list[dict[str, Any]]) -> list[dict[str, Any]]:
    reply = make_api(InferenceSettings(model_dir=bundle, max_instances=ROWS)).predict(instances)
    assert reply.status == 200, reply.json
    predictions: list[dict[str, Any]] = reply.json["predictions"]
    return predictions


def as_sent(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """The rows as ``df.to_dict("records")`` sends them: "NA" is the string it is in the data."""
    records: list[dict[str, Any]] = json.loads(frame.drop(columns="affairs").to_json(orient="records"))
    return records


def test_na_is_a_category_in_training_and_serving_and_no_served_label_differs_from_the_pipelines(
    undeclared: Path, make_api: MakeApi, fair: pd.DataFrame
) -> None:
    base = undeclared
    bundle = metadata(base)
    region = next(f for f in bundle.features if f.name == "region")
    assert set(region.categories) == {"NA", "EU", "APAC"}
    assert bundle.missing_tokens == ("",)
    assert any("'region' has the level(s) 'NA'" in warning for warning in bundle.warnings)

    predictions = served(make_api, base / "model", as_sent(fair))

    assert not any("warnings" in prediction for prediction in predictions)
    pipeline = joblib.load(base / "model" / JOBLIB_FILE)
    read = load_training_data(Layout(base).channel("train")).frame
    types = {feature.name: feature.type for feature in bundle.features}
    inputs = model_inputs(read, types)
    expected = pipeline.predict_proba(inputs)
    flips = [p["label"] != str(want) for p, want in zip(predictions, pipeline.predict(inputs), strict=True)]
    assert sum(flips) == 0
    probabilities = np.array([[p["probabilities"][c] for c in bundle.classes] for p in predictions])
    assert probabilities == pytest.approx(expected, abs=1e-5)


def test_declared_na_is_missing_in_training_and_serving_alike(
    declared: Path, make_api: MakeApi, fair: pd.DataFrame
) -> None:
    base = declared
    bundle = metadata(base)
    region = next(f for f in bundle.features if f.name == "region")
    assert set(region.categories) == {"EU", "APAC"}
    assert bundle.missing_tokens == ("", "NA")
    assert bundle.baseline["features"]["region"]["missing"] == pytest.approx((fair["region"] == "NA").mean())

    sent = as_sent(fair.head(20))
    as_null = [{**row, "region": None if row["region"] == "NA" else row["region"]} for row in sent]
    with_numbers_spelled = [{**row, "age": "NA"} for row in sent]

    by_token, by_null = served(make_api, base / "model", sent), served(make_api, base / "model", as_null)
    assert [p["probabilities"] for p in by_token] == [p["probabilities"] for p in by_null]
    assert not any("warnings" in prediction for prediction in by_token)
    assert len(served(make_api, base / "model", with_numbers_spelled)) == 20


def test_a_numeric_string_that_is_not_a_declared_token_is_still_refused(
    undeclared: Path, make_api: MakeApi, fair: pd.DataFrame
) -> None:
    base = undeclared
    reply = make_api(InferenceSettings(model_dir=base / "model")).predict([{**as_sent(fair.head(1))[0], "age": "NA"}])
    assert reply.status == 422
    assert [(d["field"], d["problem"]) for d in reply.json["details"]] == [("age", "expected a number, got string")]
