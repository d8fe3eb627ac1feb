"""HoldOut: the run's holdout leaves the assembled set before the training job can read it."""

from __future__ import annotations

import io
from typing import TYPE_CHECKING, Any

import pandas as pd
import pytest

from functions.common.layout import holdout_rows_folder
from functions.common.registry import new_version_id
from functions.workflow.errors import WorkflowError
from functions.workflow.holdout import hold_out_step, holdout_position
from functions.workflow.state import RunState
from tests.plugins.aws import DATA_BUCKET
from tests.workflow.support import SETTINGS

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client


def _frame(rows: int, offset: int = 0) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "tenure": [str(offset + i) for i in range(rows)],
            "Contract Type": ["month, to month" if i % 3 else "" for i in range(rows)],
            "churned": ["1" if i % 4 == 0 else "0" for i in range(rows)],
        }
    )


def _assembled(s3: S3Client, version: str) -> dict[str, Any]:
    """An assembled folder as Assemble and the UNLOAD leave it: a base CSV, Athena's suffix-less Parquet with
    lower-case names, and a file that is not data."""
    folder = f"{SETTINGS.assembled_prefix}{version}/"
    s3.put_object(Bucket=DATA_BUCKET, Key=folder + "base/part-1.csv", Body=_frame(1000).to_csv(index=False).encode())
    feedback = _frame(500, offset=5000).rename(columns=str.lower)
    buffer = io.BytesIO()
    feedback.to_parquet(buffer, index=False)
    s3.put_object(Bucket=DATA_BUCKET, Key=folder + "feedback/20261207_query_0001", Body=buffer.getvalue())
    s3.put_object(Bucket=DATA_BUCKET, Key=folder + "base/README.txt", Body=b"not data")
    return {
        "guard": {"version": version},
        "assembly_plan": {"prefix": folder, "uri": "s3://x", "base_fingerprint": "f"},
    }


def _read_csv(s3: S3Client, key: str) -> pd.DataFrame:
    return pd.read_csv(io.BytesIO(s3.get_object(Bucket=DATA_BUCKET, Key=key)["Body"].read()), dtype=str)


def _read_parquet(s3: S3Client, key: str) -> pd.DataFrame:
    return pd.read_parquet(io.BytesIO(s3.get_object(Bucket=DATA_BUCKET, Key=key)["Body"].read()))


def test_hold_out_moves_a_share_of_trusted_and_feedback_rows_out_of_the_training_set(s3: S3Client) -> None:
    version = new_version_id()
    state = _assembled(s3, version)

    result = hold_out_step(SETTINGS, s3, RunState.parse(state)).to_json()

    folder = holdout_rows_folder(SETTINGS.holdout_prefix, version)
    assert result["folder"] == folder
    counts = result["counts"]
    assert counts["files"] == 2
    assert 150 <= counts["base"]["held"] <= 250 and counts["base"]["kept"] + counts["base"]["held"] == 1000
    assert 60 <= counts["feedback"]["held"] <= 140 and counts["feedback"]["kept"] + counts["feedback"]["held"] == 500
    kept = _read_csv(s3, state["assembly_plan"]["prefix"] + "base/part-1.csv")
    held = _read_csv(s3, folder + "base/part-1.csv")
    # Every row is in exactly one place, cells unchanged (commas, empty cells), and the job's copy has no held row.
    assert len(kept) == counts["base"]["kept"] and len(held) == counts["base"]["held"]
    assert not set(kept["tenure"]) & set(held["tenure"])
    original = _frame(1000).replace("", None)
    merged = pd.concat([kept, held]).sort_values("tenure", key=lambda c: c.astype(int)).reset_index(drop=True)
    pd.testing.assert_frame_equal(merged.fillna(""), original.fillna(""), check_dtype=False)
    feedback_kept = _read_parquet(s3, state["assembly_plan"]["prefix"] + "feedback/20261207_query_0001")
    feedback_held = _read_csv(s3, folder + "feedback/20261207_query_0001.csv")
    assert list(feedback_kept.columns) == ["tenure", "contract type", "churned"]
    assert len(feedback_kept) + len(feedback_held) == 500
    assert s3.get_object(Bucket=DATA_BUCKET, Key=state["assembly_plan"]["prefix"] + "base/README.txt")[
        "Body"
    ].read() == (b"not data")


def test_the_same_rows_are_held_out_in_every_run_so_the_champion_never_trained_on_them(s3: S3Client) -> None:
    first, second = new_version_id(), new_version_id()
    hold_out_step(SETTINGS, s3, RunState.parse(_assembled(s3, first)))
    hold_out_step(SETTINGS, s3, RunState.parse(_assembled(s3, second)))

    held = [_read_csv(s3, holdout_rows_folder(SETTINGS.holdout_prefix, v) + "base/part-1.csv") for v in (first, second)]
    pd.testing.assert_frame_equal(held[0], held[1])


def test_a_retried_hold_out_moves_nothing_more(s3: S3Client) -> None:
    version = new_version_id()
    state = RunState.parse(_assembled(s3, version))
    hold_out_step(SETTINGS, s3, state)
    kept = _read_csv(s3, f"{SETTINGS.assembled_prefix}{version}/base/part-1.csv")

    again = hold_out_step(SETTINGS, s3, state).to_json()

    assert again["counts"]["base"] == {"kept": len(kept), "held": 0}
    pd.testing.assert_frame_equal(_read_csv(s3, f"{SETTINGS.assembled_prefix}{version}/base/part-1.csv"), kept)


def test_holdout_membership_depends_on_the_cells_not_on_the_run() -> None:
    cells = ["12", "month-to-month", None, 3.5]
    assert holdout_position(cells) == holdout_position(list(cells))
    assert 0 <= holdout_position(cells) < 1
    assert holdout_position(["12"]) != holdout_position(["13"])


def test_hold_out_before_assemble_refuses_naming_where_its_input_belongs(s3: S3Client) -> None:
    with pytest.raises(WorkflowError, match=r"\$\.assembly_plan\.prefix"):
        hold_out_step(SETTINGS, s3, RunState.parse({"guard": {"version": new_version_id()}}))
