"""Batch scoring on the local cloud: the deployed state machine's Distributed Map scores every CSV object under a
prefix with the champion, writes the API's answers beside each, and reports the counts (bad rows included)."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pandas as pd
import pytest

from functions.batch.layout import BATCH
from tests.integration.support import Deployed, wait_for

pytestmark = pytest.mark.integration

TARGET = "churned"


def instances(frame: pd.DataFrame) -> list[dict[str, Any]]:
    return list(json.loads(frame.drop(columns=[TARGET]).to_json(orient="records")))


def answers(lines: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The model's answers without what differs between two servings of one row (its fresh id, its row number)."""
    return [{k: v for k, v in line.items() if k not in ("prediction_id", "row")} for line in lines]


def test_batch_scoring_writes_the_apis_predictions_beside_each_object_and_reports_counts(
    deployed: Deployed, served_champion: str
) -> None:
    from training.synthetic import generate

    rows = generate(8, seed=5).reset_index(drop=True)
    first, second = rows.head(4), rows.tail(4).reset_index(drop=True)
    second_csv = second.to_csv(index=False).splitlines()
    bad = second_csv[2].split(",")
    bad[0] = "many"  # tenure_months: not a number, the second data row
    second_csv[2] = ",".join(bad)
    prefix = f"{BATCH.input_prefix}it-{uuid.uuid4().hex[:8]}/"
    bucket = deployed.deployment.data_bucket
    deployed.s3.put_object(Bucket=bucket, Key=prefix + "first.csv", Body=first.to_csv(index=False).encode())
    deployed.s3.put_object(Bucket=bucket, Key=prefix + "second.csv", Body=("\n".join(second_csv) + "\n").encode())

    machine = deployed.deployment.outputs["BatchStateMachineArn"]
    request = {"input": f"s3://{bucket}/{prefix}", "tolerated_failure_percent": 0}
    arn = deployed.sfn.start_execution(
        stateMachineArn=machine, name=f"it-batch-{uuid.uuid4().hex[:8]}", input=json.dumps(request)
    )["executionArn"]

    def ended() -> dict[str, Any] | None:
        described: dict[str, Any] = deployed.sfn.describe_execution(executionArn=arn)
        return None if described["status"] == "RUNNING" else described

    described = wait_for("the batch run to end", ended, timeout=240)
    assert described["status"] == "SUCCEEDED", described
    summary = json.loads(described["output"])
    assert summary["model_version"] == served_champion
    counts = {name: summary[name] for name in ("objects", "scored_objects", "failed_objects", "rows", "bad_rows")}
    assert counts == {"objects": 2, "scored_objects": 2, "failed_objects": 0, "rows": 8, "bad_rows": 1}
    assert summary["scored_rows"] == 7

    def predictions(key: str) -> list[dict[str, Any]]:
        body = deployed.s3.get_object(Bucket=bucket, Key=BATCH.output_key(key))["Body"].read()
        return [json.loads(line) for line in body.splitlines()]

    assert answers(predictions(prefix + "first.csv")) == answers(deployed.api.predict(instances(first))["predictions"])
    lines = predictions(prefix + "second.csv")
    assert [line["row"] for line in lines] == [1, 2, 3, 4]
    assert lines[1]["errors"] == [{"field": "tenure_months", "problem": "expected a number"}]
    good = second.drop(index=1)
    api = deployed.api.predict(instances(good))["predictions"]
    assert answers([line for line in lines if "errors" not in line]) == answers(api)
