"""``driftloop train`` and ``driftloop serve``: what a person runs on their own machine."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn

from cli.main import main
from functions.inference.settings import InferenceSettings
from tests.training.jobs import poisoned_champion
from tests.training.test_positive_class import imbalanced
from training.synthetic import generate


@pytest.fixture
def started(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[InferenceSettings]]:
    """Stands in for uvicorn: records the settings the app would read when it starts. The command sets them in
    this process's environment, which is put back afterwards."""
    saved = dict(os.environ)
    for name in InferenceSettings.variables().values():
        os.environ.pop(name, None)
    seen: list[InferenceSettings] = []

    def run(app: str, **_options: Any) -> None:
        assert app == "functions.inference.app:app"
        seen.append(InferenceSettings.from_env(dict(os.environ)))

    monkeypatch.setattr(uvicorn, "run", run)
    yield seen
    os.environ.clear()
    os.environ.update(saved)


def test_serve_gives_the_app_the_bundle_folder_and_keeps_the_callers_other_settings(
    started: list[InferenceSettings], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("DRIFTLOOP_MAX_INSTANCES", "7")
    assert main(["serve", "--model-dir", str(tmp_path), "--refresh-seconds", "5"]) == 0
    [settings] = started
    assert (settings.model_dir, settings.model_bucket, settings.refresh_seconds) == (tmp_path.resolve(), None, 5.0)
    assert settings.max_instances == 7


def test_serve_from_a_bucket_gives_the_app_the_registry(started: list[InferenceSettings]) -> None:
    assert main(["serve", "--bucket", "models", "--prefix", "reg/"]) == 0
    [settings] = started
    assert (settings.model_dir, settings.model_bucket, settings.registry_prefix) == (None, "models", "reg/")


def test_serve_with_a_bad_setting_in_the_environment_names_it_and_starts_nothing(
    started: list[InferenceSettings], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("DRIFTLOOP_MAX_INSTANCES", "many")
    assert main(["serve", "--bucket", "models"]) != 0
    assert "DRIFTLOOP_MAX_INSTANCES='many'" in capsys.readouterr().err
    assert started == []


def test_train_with_a_champion_whose_pickle_is_malicious_compares_with_it_and_never_runs_the_pickle(
    trained_bundle: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    archive, marker = poisoned_champion(trained_bundle, tmp_path)
    data = tmp_path / "fresh.csv"
    generate(1500, seed=11).to_csv(data, index=False)

    code = main(["train", "--data", str(data), "--out", str(tmp_path / "run"), "--hp", "target=churned",
                 "--champion", str(archive)])  # fmt: skip

    assert code == 0
    assert "champion roc_auc on the same holdout: " in capsys.readouterr().out
    assert not marker.exists()


def test_train_on_invalid_data_says_the_reason_once(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = tmp_path / "bad.csv"
    generate(300, seed=3).drop(columns=["churned"]).to_csv(data, index=False)

    code = main(["train", "--data", str(data), "--out", str(tmp_path / "run"), "--hp", "target=churned"])

    out = capsys.readouterr().out
    assert code != 0
    assert out.count("target column 'churned' is missing") == 1
    assert f"the reason is above, and in {tmp_path / 'run'}" in out


def test_train_prints_per_class_metrics_and_warns_of_a_class_the_model_misses(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    inputs, target = imbalanced(2000)  # a rare "drizzle" an unweighted model mostly misses, as on seattle weather
    data = tmp_path / "weather.csv"
    inputs.assign(weather=target).to_csv(data, index=False)

    code = main(["train", "--data", str(data), "--out", str(tmp_path / "run"), "--hp", "target=weather",
                 "--hp", "algorithm=logistic_regression"])  # fmt: skip

    out = capsys.readouterr().out
    assert code == 0
    assert "  class    precision  recall     f1  support" in out
    rows = {line.split()[0]: line.split()[1:] for line in out.splitlines() if line.startswith(("  drizzle", "  sun"))}
    assert float(rows["drizzle"][1]) < 0.5 <= float(rows["sun"][1])
    assert int(rows["drizzle"][3]) + int(rows["sun"][3]) == 400  # the holdout
    assert out.count("warning: class 'drizzle' has recall") == 2  # the job's log, and the summary
