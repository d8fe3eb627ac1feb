from pathlib import Path

import pandas as pd
import pytest

from tests.conftest import MakeJob
from tests.training.jobs import CHURN, evaluation_json, failure
from training.contract import Layout
from training.errors import TrainingFailure
from training.program import run
from training.serving_load import ServingLimits, check_serving_load


@pytest.fixture
def churn(churn_data: pd.DataFrame) -> pd.DataFrame:
    return churn_data.head(300)


def test_a_model_the_serving_memory_cannot_hold_fails_the_job_before_any_bundle_is_written(
    make_job: MakeJob, churn: pd.DataFrame
) -> None:
    base = make_job({**CHURN, "serving_memory_mb": "1", "serving_timeout_seconds": "60"}, churn)
    assert run(base) == 1
    reason = failure(base)
    assert reason.startswith("the model is too big for the serving Lambda: loading it takes ")
    assert (
        "MiB at peak, over 50% of serving_memory_mb 1 (the Lambda loads a new model beside the one it serves)" in reason
    )
    assert not Layout(base).model_dir.exists()


def test_a_model_that_loads_slower_than_the_serving_timeout_allows_fails_the_job(
    make_job: MakeJob, churn: pd.DataFrame
) -> None:
    base = make_job({**CHURN, "serving_timeout_seconds": "0.000001"}, churn)
    assert run(base) == 1
    assert "s, over 50% of serving_timeout_seconds 1e-06 (a model refresh runs inside a request)" in failure(base)


def test_a_model_that_fits_the_serving_lambda_records_its_measurement(make_job: MakeJob, churn: pd.DataFrame) -> None:
    base = make_job({**CHURN, "serving_memory_mb": "4096", "serving_timeout_seconds": "60"}, churn)
    assert run(base) == 0, failure(base)
    measured = evaluation_json(base)["details"]["serving_load"]
    assert (measured["memory_limit_mb"], measured["load_limit_seconds"]) == (2048.0, 30.0)
    # The interpreter, numpy and onnxruntime take tens of MiB; not the hundreds this test process holds.
    assert 10 < measured["peak_rss_mb"] < 150
    assert 0 < measured["load_seconds"] < 30


def test_without_serving_limits_nothing_is_measured(make_job: MakeJob, churn: pd.DataFrame) -> None:
    base = make_job(CHURN, churn)
    assert run(base) == 0, failure(base)
    assert "serving_load" not in evaluation_json(base)["details"]


def test_a_model_file_onnxruntime_cannot_load_fails_with_its_error(tmp_path: Path) -> None:
    with pytest.raises(TrainingFailure, match=r"model\.onnx cannot be loaded the way the serving Lambda loads it: "):
        check_serving_load(b"not an onnx model", ServingLimits(1024, None), tmp_path, lambda measured: "")
