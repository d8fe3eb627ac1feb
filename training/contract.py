"""The SageMaker training-container contract: directory layout, channels, metric log lines.

Standard library only: the CDK infrastructure imports this module to build CreateTrainingJob requests.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

DEFAULT_BASE_DIR = Path("/opt/ml")
BASE_DIR_ENV = "SAGEMAKER_BASE_DIR"

TRAIN_CHANNEL = "train"
# A model.tar.gz (or an extracted bundle) of the live model, scored on the challenger's holdout.
CHAMPION_CHANNEL = "champion"
CHANNELS = (TRAIN_CHANNEL, CHAMPION_CHANNEL)
# The SageMaker Python SDK's ModelTrainer adds these for its source_code (your scripts, and the drivers that run them
# from its own ContainerEntrypoint). When this program runs anyway, it was what that entry point ran: the channels
# hold nothing for it, and are ignored with a log line. Script-mode hyperparameters are refused
# (training.hyperparameters.SCRIPT_MODE_KEYS).
SDK_CODE_CHANNELS = ("code", "sm_drivers")

# Holdout metrics are logged as ``metric:<name>=<value>`` (challenger) and ``metric:champion_<name>=<value>``.
METRIC_PREFIX = "metric:"
CHAMPION_PREFIX = "champion_"
_METRICS = ("accuracy", "f1", "roc_auc", "log_loss", "rmse", "mae", "r2")
_NUMBER = r"([-+]?[0-9]+(?:\.[0-9]+)?(?:[eE][-+]?[0-9]+)?)"
METRIC_DEFINITIONS: list[dict[str, str]] = [
    {"Name": f"{prefix}{metric}", "Regex": f"{METRIC_PREFIX}{prefix}{metric}={_NUMBER}"}
    for prefix in ("", CHAMPION_PREFIX)
    for metric in _METRICS
]


def metric_line(name: str, value: float) -> str:
    """The log line SageMaker's MetricDefinitions pick up for ``name`` (e.g. ``champion_roc_auc``)."""
    return f"{METRIC_PREFIX}{name}={value:.6f}"


def base_dir_from_env() -> Path:
    return Path(os.environ.get(BASE_DIR_ENV) or DEFAULT_BASE_DIR)


@dataclass(frozen=True)
class Layout:
    """Every path the program reads or writes, under the base directory (``/opt/ml`` in SageMaker)."""

    base: Path

    @property
    def config_dir(self) -> Path:
        return self.base / "input" / "config"

    @property
    def hyperparameters(self) -> Path:
        # Every value is a string, as SageMaker writes them.
        return self.config_dir / "hyperparameters.json"

    @property
    def resource_config(self) -> Path:
        return self.config_dir / "resourceconfig.json"

    @property
    def input_data_config(self) -> Path:
        return self.config_dir / "inputdataconfig.json"

    def channel(self, name: str) -> Path:
        return self.base / "input" / "data" / name

    @property
    def model_dir(self) -> Path:
        # SageMaker tars this into <S3OutputPath>/<job>/output/model.tar.gz.
        return self.base / "model"

    @property
    def output_data_dir(self) -> Path:
        # ...and this into output.tar.gz: it carries evaluation.json.
        return self.base / "output" / "data"

    @property
    def failure_file(self) -> Path:
        # Its text becomes the job's FailureReason.
        return self.base / "output" / "failure"
