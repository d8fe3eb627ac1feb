import json
import re
import runpy
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from functions.common.gate import CLASSIFICATION_METRICS, EVALUATION_FILE, REGRESSION_METRICS
from tests.conftest import MakeJob
from tests.training.jobs import CHURN, evaluation_json, failure
from training.contract import BASE_DIR_ENV, METRIC_DEFINITIONS, Layout, metric_line
from training.program import main, run

REPO = Path(__file__).resolve().parents[2]


def test_layout_follows_the_sagemaker_directory_tree() -> None:
    layout = Layout(Path("/opt/ml"))
    assert layout.hyperparameters == Path("/opt/ml/input/config/hyperparameters.json")
    assert layout.resource_config == Path("/opt/ml/input/config/resourceconfig.json")
    assert layout.input_data_config == Path("/opt/ml/input/config/inputdataconfig.json")
    assert layout.channel("train") == Path("/opt/ml/input/data/train")
    assert layout.model_dir == Path("/opt/ml/model")
    assert layout.output_data_dir == Path("/opt/ml/output/data")
    assert layout.failure_file == Path("/opt/ml/output/failure")


def test_contract_and_package_import_nothing_heavy() -> None:
    code = (
        "import sys, training, training.contract; "
        "heavy = {'numpy', 'pandas', 'sklearn', 'onnx', 'onnxruntime', 'skl2onnx'} & set(sys.modules); "
        "assert not heavy, heavy"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO)


def test_metric_definitions_cover_every_metric_for_challenger_and_champion() -> None:
    names = {definition["Name"] for definition in METRIC_DEFINITIONS}
    metrics = CLASSIFICATION_METRICS + REGRESSION_METRICS
    assert names == {*metrics, *(f"champion_{m}" for m in metrics)}
    assert len(METRIC_DEFINITIONS) <= 40  # CreateTrainingJob's limit


@pytest.mark.parametrize("value", [0.9123, -12.5, 3e-9, 12345678.0])
def test_each_metric_line_is_matched_by_exactly_its_own_definition(value: float) -> None:
    for name in ("roc_auc", "champion_roc_auc", "r2", "champion_r2"):
        line = metric_line(name, value)
        matching = [d["Name"] for d in METRIC_DEFINITIONS if re.search(d["Regex"], line)]
        assert matching == [name]
        (definition,) = (d for d in METRIC_DEFINITIONS if d["Name"] == name)
        match = re.search(definition["Regex"], line)
        assert match is not None
        assert float(match.group(1)) == pytest.approx(value, abs=1e-6)


def test_a_run_writes_the_bundle_and_the_evaluation(make_job: MakeJob, churn_data: pd.DataFrame) -> None:
    base = make_job(CHURN, churn_data.head(400))
    assert run(base) == 0
    layout = Layout(base)
    assert sorted(p.name for p in layout.model_dir.iterdir()) == [
        "constraints.json",
        "fit_rows.u64",
        "metadata.json",
        "model.joblib",
        "model.onnx",
        "statistics.json",
    ]
    assert (layout.output_data_dir / EVALUATION_FILE).is_file()
    assert not layout.failure_file.exists()


def test_logged_metric_lines_match_the_metric_definitions(
    make_job: MakeJob, churn_data: pd.DataFrame, trained_bundle: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base = make_job(CHURN, churn_data.sample(400, random_state=1), champion=trained_bundle)
    assert run(base) == 0
    logged = capsys.readouterr().out
    report = evaluation_json(base)
    expected = {**report["challenger"], **{f"champion_{k}": v for k, v in report["champion"].items()}}
    found = {}
    for definition in METRIC_DEFINITIONS:
        matches = re.findall(definition["Regex"], logged)
        if matches:
            found[definition["Name"]] = float(matches[-1])
    assert found == pytest.approx(expected, abs=1e-6)


def test_cli_takes_the_train_command_and_a_base_dir(make_job: MakeJob, churn_data: pd.DataFrame) -> None:
    base = make_job(CHURN, churn_data.head(300))
    assert main(["train", "--base-dir", str(base)]) == 0
    assert (base / "model" / "model.onnx").is_file()


def test_sagemaker_base_dir_environment_variable_is_honoured(
    make_job: MakeJob, churn_data: pd.DataFrame, monkeypatch: pytest.MonkeyPatch
) -> None:
    base = make_job(CHURN, churn_data.head(300))
    monkeypatch.setenv(BASE_DIR_ENV, str(base))
    assert main(["train"]) == 0
    assert (base / "model" / "metadata.json").is_file()


def test_python_dash_m_training_train_exits_non_zero_with_the_reason_on_failure(
    make_job: MakeJob, churn_data: pd.DataFrame, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    base = make_job({"target": "no_such_column"}, churn_data.head(100))
    monkeypatch.setenv(BASE_DIR_ENV, str(base))
    # What `docker run <image> train` runs: `python -m training train`, in-process to spare a 8 s interpreter start.
    monkeypatch.setattr(sys, "argv", ["python -m training", "train"])
    with pytest.raises(SystemExit) as exited:
        runpy.run_module("training", run_name="__main__")
    assert exited.value.code == 1
    assert "target column 'no_such_column' is missing" in failure(base)
    assert "target column 'no_such_column' is missing" in capsys.readouterr().out


def test_missing_hyperparameters_file_fails_with_reason(tmp_path: Path) -> None:
    assert run(tmp_path) == 1
    assert failure(tmp_path).startswith("hyperparameters.json is missing")


def test_hyperparameters_file_that_is_not_an_object_fails(make_job: MakeJob, churn_data: pd.DataFrame) -> None:
    base = make_job(CHURN, churn_data.head(10))
    Layout(base).hyperparameters.write_text('["target", "churned"]')
    assert run(base) == 1
    assert "must hold a JSON object" in failure(base)


def test_invalid_hyperparameters_fail_the_job_before_reading_data(tmp_path: Path) -> None:
    layout = Layout(tmp_path)
    layout.config_dir.mkdir(parents=True)
    layout.hyperparameters.write_text(json.dumps({"target": "y", "max_dpeth": "3"}))
    assert run(tmp_path) == 1
    assert "unknown hyperparameter 'max_dpeth'" in failure(tmp_path)


def test_unknown_channel_or_pipe_mode_in_input_data_config_fails(make_job: MakeJob, churn_data: pd.DataFrame) -> None:
    base = make_job(CHURN, churn_data.head(10))
    Layout(base).input_data_config.write_text(
        json.dumps({"train": {"TrainingInputMode": "Pipe"}, "validation": {"TrainingInputMode": "File"}})
    )
    assert run(base) == 1
    reason = failure(base)
    assert "unknown channel 'validation'" in reason
    assert "channel 'train' uses Pipe mode" in reason


def test_the_sagemaker_sdk_code_channels_are_ignored_with_a_log_line(
    make_job: MakeJob, churn_data: pd.DataFrame, capsys: pytest.CaptureFixture[str]
) -> None:
    base = make_job(CHURN, churn_data.head(300))
    Layout(base).input_data_config.write_text(
        json.dumps({name: {"TrainingInputMode": "File"} for name in ("train", "code", "sm_drivers")})
    )
    assert run(base) == 0
    logged = capsys.readouterr().out
    assert "ignoring channel 'code'" in logged
    assert "ignoring channel 'sm_drivers'" in logged


def test_more_than_one_host_fails(make_job: MakeJob, churn_data: pd.DataFrame) -> None:
    base = make_job(CHURN, churn_data.head(10))
    Layout(base).resource_config.write_text(json.dumps({"current_host": "algo-1", "hosts": ["algo-1", "algo-2"]}))
    assert run(base) == 1
    assert "distributed training is not supported" in failure(base)


def test_a_stale_failure_file_is_removed_by_a_successful_run(make_job: MakeJob, churn_data: pd.DataFrame) -> None:
    base = make_job(CHURN, churn_data.head(300))
    Layout(base).failure_file.parent.mkdir(parents=True)
    Layout(base).failure_file.write_text("old failure")
    assert run(base) == 0
    assert not Layout(base).failure_file.exists()


def test_an_unexpected_error_still_leaves_a_reason(
    make_job: MakeJob, churn_data: pd.DataFrame, monkeypatch: pytest.MonkeyPatch
) -> None:
    def explode(*args: object) -> None:
        raise RuntimeError("disk on fire")

    monkeypatch.setattr("training.program.build_baseline", explode)
    base = make_job(CHURN, churn_data.head(300))
    assert run(base) == 1
    assert failure(base) == "unexpected error: RuntimeError: disk on fire"


def test_hyperparameters_are_read_as_strings_and_plain_json_scalars_are_tolerated(
    make_job: MakeJob, churn_data: pd.DataFrame
) -> None:
    base = make_job(CHURN, churn_data.head(300))
    written = json.loads(Layout(base).hyperparameters.read_text())
    assert all(isinstance(value, str) for value in written.values())
    Layout(base).hyperparameters.write_text(json.dumps({**written, "test_size": 0.25, "allow_schema_change": False}))
    assert run(base) == 0
    assert evaluation_json(base)["holdout_rows"] == 75
