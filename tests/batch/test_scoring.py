"""Scoring one CSV object: the API's answers for the valid rows, a counted error line for each bad row, the object
refused only when it cannot be read as CSV with every feature."""

from __future__ import annotations

import io
import json
import shutil
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from functions.batch.scoring import Capture, ObjectCounts, ObjectRefused, score_stream
from functions.common.bundle import read_metadata, write_metadata
from functions.common.records import (
    PREDICTION_ID_LENGTH,
    FixedKeys,
    IdKey,
    InvalidPredictionId,
    PredictionRecord,
    prediction_time,
)
from functions.inference.capture import DeliveryFailed, Record
from functions.inference.id_keys import LOCAL_KEYS
from functions.inference.model import Model, load_model
from functions.inference.service import answer
from tests.batch.conftest import TARGET, csv_bytes
from tests.conftest import MakeJob
from tests.prediction_ids import ID_KEY
from tests.training.jobs import CHURN, failure, with_paperless
from training.program import run


class RecordingSink:
    def __init__(self, fail: bool = False) -> None:
        self.records: list[PredictionRecord] = []
        self.fail = fail

    def write(self, records: Sequence[Record]) -> None:
        if self.fail:
            raise DeliveryFailed("stream down", len(records))
        self.records.extend(record for record in records if isinstance(record, PredictionRecord))


def score(
    model: Model, body: bytes, *, chunk_rows: int = 1000, capture: Capture | None = None
) -> tuple[list[dict[str, Any]], ObjectCounts]:
    output = io.BytesIO()
    counts = score_stream(model, io.BytesIO(body), output, chunk_rows=chunk_rows, keys=LOCAL_KEYS, capture=capture)
    return [json.loads(line) for line in output.getvalue().splitlines()], counts


def api_answers(model: Model, instances: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """What /predict answers for these instances, without the prediction ids (fresh on every call)."""
    batch = model.schema.validate({"instances": instances}, len(instances))
    return [without_id(line) for line in answer(model, batch, datetime.now(UTC), ID_KEY)]


def without_id(line: dict[str, Any]) -> dict[str, Any]:
    return {name: value for name, value in line.items() if name not in ("prediction_id", "row")}


def instances_of(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """The rows as a JSON client sends them: numbers as floats, missing values as null."""
    features = frame.drop(columns=[TARGET])
    records = json.loads(features.to_json(orient="records"))
    return [{name: (float(v) if isinstance(v, int) else v) for name, v in record.items()} for record in records]


def test_batch_prediction_ids_are_minted_with_the_keys_the_api_verifies(model: Model, rows: pd.DataFrame) -> None:
    lines, _ = score(model, rows.to_csv(index=False).encode())

    ids = [line["prediction_id"] for line in lines]
    assert all(prediction_time(i, LOCAL_KEYS) for i in ids)
    with pytest.raises(InvalidPredictionId):
        prediction_time(ids[0], FixedKeys(IdKey.generate()))


def test_each_row_gets_the_answer_the_api_gives_for_it(model: Model, rows: pd.DataFrame) -> None:
    lines, counts = score(model, csv_bytes(rows))
    assert [line["row"] for line in lines] == list(range(1, len(rows) + 1))
    assert [without_id(line) for line in lines] == api_answers(model, instances_of(rows))
    assert all(len(line["prediction_id"]) == PREDICTION_ID_LENGTH for line in lines)
    assert (counts.rows, counts.scored, counts.bad_rows) == (len(rows), len(rows), 0)
    # The target is a column the model does not take: ignored, and said so.
    assert counts.ignored_columns == [TARGET]


def test_bad_rows_are_counted_and_explained_while_the_others_are_scored(model: Model, rows: pd.DataFrame) -> None:
    text = csv_bytes(rows).decode().splitlines()
    header, data = text[0], text[1:]
    width = len(header.split(","))
    data[1] = ",".join(["many", *data[1].split(",")[1:]])  # tenure_months is not a number
    data[3] = data[3] + ",extra"  # one cell too many
    data[5] = ",".join(["1e39", *data[5].split(",")[1:]])  # beyond float32: the API refuses it too
    lines, counts = score(model, ("\n".join([header, *data]) + "\n").encode())
    bad = {line["row"]: line["errors"] for line in lines if "errors" in line}
    assert sorted(bad) == [2, 4, 6]
    assert bad[2] == [{"field": "tenure_months", "problem": "expected a number"}]
    assert bad[4] == [{"field": None, "problem": f"{width + 1} cells, the header has {width}"}]
    assert bad[6][0]["field"] == "tenure_months" and "out of range" in bad[6][0]["problem"]
    good = [index for index in range(len(rows)) if index + 1 not in bad]
    scored = [without_id(line) for line in lines if "errors" not in line]
    assert scored == api_answers(model, instances_of(rows.iloc[good]))
    assert (counts.rows, counts.scored, counts.bad_rows) == (10, 7, 3)
    assert [problem["row"] for problem in counts.problems] == [2, 4, 6]


def test_empty_cells_are_missing_values_as_null_is_in_the_api(model: Model, rows: pd.DataFrame) -> None:
    frame = rows.head(2).copy()
    frame["age"] = frame["age"].astype(object)
    frame.loc[0, "age"] = None
    frame.loc[1, "region"] = None
    lines, counts = score(model, csv_bytes(frame))
    assert counts.bad_rows == 0
    assert [without_id(line) for line in lines] == api_answers(model, instances_of(frame))


def test_cells_equal_to_the_models_missing_tokens_are_missing_values_and_other_text_is_not(
    model: Model, rows: pd.DataFrame, trained_bundle: Path, tmp_path: Path
) -> None:
    declared = tmp_path / "declared"
    shutil.copytree(trained_bundle, declared)
    write_metadata(declared, replace(read_metadata(declared), missing_tokens=("", " ?", "NA")))
    frame = rows.head(2).astype({"age": object})
    frame.loc[0, "age"] = "NA"
    frame.loc[1, "region"] = " ?"  # a token as training read the cell: with its space
    as_null = frame.astype(object).replace({"NA": None, " ?": None})

    lines, counts = score(load_model(declared, source="test"), csv_bytes(frame))

    assert counts.bad_rows == 0
    assert [without_id(line) for line in lines] == api_answers(model, instances_of(as_null))
    refused, counts = score(model, csv_bytes(frame))
    assert counts.bad_rows == 1
    assert refused[0]["errors"] == [{"field": "age", "problem": "expected a number"}]


def test_boolean_cells_in_any_case_are_booleans_and_other_text_is_a_bad_row(
    make_job: MakeJob, churn_data: pd.DataFrame
) -> None:
    data = with_paperless(churn_data)
    base = make_job(CHURN, {"data.parquet": data})
    assert run(base) == 0, failure(base)
    model = load_model(base / "model", source="test")
    frame = data.dropna().head(4).astype({"paperless": object})
    frame["paperless"] = ["True", "FALSE", "", "yes"]
    as_json = [
        {**row, "paperless": value} for row, value in zip(instances_of(frame.head(3)), [True, False, None], strict=True)
    ]

    lines, counts = score(model, csv_bytes(frame))

    assert [without_id(line) for line in lines[:3]] == api_answers(model, as_json)
    assert (counts.bad_rows, lines[3]["errors"]) == (1, [{"field": "paperless", "problem": "expected true or false"}])


def test_chunks_change_nothing_but_memory(model: Model, rows: pd.DataFrame) -> None:
    whole, _ = score(model, csv_bytes(rows))
    chunked, counts = score(model, csv_bytes(rows), chunk_rows=3)
    assert [without_id(line) for line in chunked] == [without_id(line) for line in whole]
    assert [line["row"] for line in chunked] == list(range(1, 11))
    assert counts.scored == 10


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"", "empty"),
        (b"tenure_months,age\n1,2\n", "lacks the features"),
        (b"\xff\xfe\x00garbage\n", "not UTF-8"),
    ],
)
def test_an_object_is_refused_only_when_it_cannot_be_read_with_every_feature(
    model: Model, body: bytes, reason: str
) -> None:
    with pytest.raises(ObjectRefused, match=reason):
        score(model, body)


def test_a_feature_named_twice_in_the_header_refuses_the_object(model: Model, rows: pd.DataFrame) -> None:
    frame = rows.head(1).copy()
    body = csv_bytes(frame).decode().replace("churned", "age", 1).encode()
    with pytest.raises(ObjectRefused, match="more than once"):
        score(model, body)


def test_captured_records_are_the_scored_rows_as_the_api_captures_them(model: Model, rows: pd.DataFrame) -> None:
    sink = RecordingSink()
    lines, counts = score(model, csv_bytes(rows), chunk_rows=4, capture=Capture(sink, "batch/run-1"))
    assert counts.captured == 10 and counts.capture_lost == 0
    assert [record.prediction_id for record in sink.records] == [line["prediction_id"] for line in lines]
    record = sink.records[0]
    assert record.model_version == "v-test" and record.request_id == "batch/run-1" and record.caller is None
    assert record.features == instances_of(rows)[0]
    assert record.label == lines[0]["label"]


def test_a_capture_outage_is_counted_and_scoring_goes_on(model: Model, rows: pd.DataFrame) -> None:
    lines, counts = score(model, csv_bytes(rows), capture=Capture(RecordingSink(fail=True), "batch/run-1"))
    assert counts.scored == 10 and counts.captured == 0 and counts.capture_lost == 10
    assert len(lines) == 10
