"""Shared fixtures: synthetic churn data, SageMaker job directories, and real trained bundles.

- ``churn_data``: 2000 synthetic customers (``training.synthetic.generate``, seed 7), target ``churned``.
- ``make_job``: ``make_job(hyperparameters, train, champion=None)`` lays out a SageMaker base directory
  (``input/config/hyperparameters.json`` with string values, the ``train`` channel, an optional
  ``champion`` channel) in a fresh temporary directory and returns it; run it with
  ``training.program.run(base)``.
- ``trained_bundle``: the ``model/`` directory of a logistic-regression bundle trained on ``churn_data``.
- ``trained_forest_bundle``: the same with a small random forest.

The bundles are shared by the whole session: copy one before modifying it.

Training imports are deferred to the fixtures so that suites that never train stay light.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Mapping
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

# The moto-backed AWS fixtures (aws, s3, registry), Athena run by the local cloud's engine over them (athena), and
# the real local AWS (local_cloud, local_client, local_aws_env: LocalStack without Docker, one instance per
# session), for every suite.
pytest_plugins = ["tests.plugins.aws", "tests.plugins.athena", "tests.plugins.local_cloud"]

# train: one DataFrame (written as train/data.csv) or several, keyed by their file name in the channel
# (.csv or .parquet). champion: a model.tar.gz or a bundle directory, copied into the champion channel.
MakeJob = Callable[..., Path]


def lay_out_job(
    base: Path,
    hyperparameters: Mapping[str, object],
    train: pd.DataFrame | Mapping[str, pd.DataFrame],
    champion: Path | None = None,
) -> Path:
    config = base / "input" / "config"
    config.mkdir(parents=True, exist_ok=True)
    # SageMaker passes every hyperparameter value as a string.
    (config / "hyperparameters.json").write_text(json.dumps({k: str(v) for k, v in hyperparameters.items()}))
    channel = base / "input" / "data" / "train"
    channel.mkdir(parents=True, exist_ok=True)
    files = {"data.csv": train} if isinstance(train, pd.DataFrame) else train
    for name, frame in files.items():
        path = channel / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if name.endswith(".parquet"):
            frame.to_parquet(path, index=False)
        else:
            frame.to_csv(path, index=False)
    if champion is not None:
        target = base / "input" / "data" / "champion"
        if champion.is_dir():
            shutil.copytree(champion, target)
        else:
            target.mkdir(parents=True)
            shutil.copy(champion, target / champion.name)
    return base


@pytest.fixture(scope="session")
def make_job(tmp_path_factory: pytest.TempPathFactory) -> MakeJob:
    def make(
        hyperparameters: Mapping[str, object],
        train: pd.DataFrame | Mapping[str, pd.DataFrame],
        champion: Path | None = None,
    ) -> Path:
        return lay_out_job(tmp_path_factory.mktemp("job"), hyperparameters, train, champion)

    return make


@pytest.fixture(scope="session")
def churn_data() -> pd.DataFrame:
    from training.synthetic import generate

    return generate(2000, seed=7)


def _train(make_job: MakeJob, data: pd.DataFrame, hyperparameters: Mapping[str, object]) -> Path:
    from training.program import run

    base = make_job(hyperparameters, data)
    assert run(base) == 0, (base / "output" / "failure").read_text()
    return base / "model"


@pytest.fixture(scope="session")
def trained_bundle(make_job: MakeJob, churn_data: pd.DataFrame) -> Path:
    return _train(make_job, churn_data, {"target": "churned", "algorithm": "logistic_regression"})


@pytest.fixture(scope="session")
def trained_forest_bundle(make_job: MakeJob, churn_data: pd.DataFrame) -> Path:
    return _train(
        make_job,
        churn_data,
        {"target": "churned", "algorithm": "random_forest", "n_estimators": "30", "max_depth": "8"},
    )


def iris_like(rows: int = 150, seed: int = 0) -> pd.DataFrame:
    """Shaped like iris: four measurements, three species of equal counts, each feature alone a partial signal."""
    rng = np.random.default_rng(seed)
    species = np.array(["setosa", "versicolor", "virginica"])[np.arange(rows) % 3]
    step = np.arange(rows) % 3
    return pd.DataFrame(
        {
            "sepal_length": (5.0 + 0.6 * step + rng.normal(0, 0.5, rows)).round(1),
            "sepal_width": (3.4 - 0.3 * step + rng.normal(0, 0.35, rows)).round(1),
            "petal_length": (1.5 + 1.4 * step + rng.normal(0, 0.9, rows)).round(1),
            "petal_width": (0.3 + 0.7 * step + rng.normal(0, 0.45, rows)).round(1),
            "species": species,
        }
    )


def diamonds_like(rows: int, seed: int = 0) -> pd.DataFrame:
    """Shaped like the diamonds data set: six numeric columns, three categoricals, a price that a forest fits
    leaf by leaf (it grows with the rows)."""
    rng = np.random.default_rng(seed)
    carat = rng.gamma(2.0, 0.4, rows) + 0.2
    size = carat ** (1 / 3) * 6.4
    color = rng.choice(list("DEFGHIJ"), rows)
    return pd.DataFrame(
        {
            "carat": carat.round(2),
            "cut": rng.choice(["Fair", "Good", "Very Good", "Premium", "Ideal"], rows),
            "color": color,
            "clarity": rng.choice(["I1", "SI2", "SI1", "VS2", "VS1", "VVS2", "VVS1", "IF"], rows),
            "depth": rng.normal(61.7, 1.4, rows).round(1),
            "table": rng.normal(57.4, 2.2, rows).round(0),
            "x": size.round(2),
            "y": (size + rng.normal(0, 0.03, rows)).round(2),
            "z": (size * 0.61).round(2),
            "price": (
                3800 * carat**1.7 * np.where(np.isin(color, list("DEF")), 1.05, 1.0) * rng.lognormal(0, 0.15, rows)
            ).round(0),
        }
    )
